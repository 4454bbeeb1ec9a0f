"""The Celery settings Flower's app reads (``celery --config producer.ops.flower_config flower``).

Flower counts a Redis queue's depth over the app's ``priority_steps``; without these it would
read kombu's default levels (0, 3, 6, 9) and miss the chain steps waiting in the other lane
lists (``schema.lanes``).
"""

from __future__ import annotations

from schema.broker import redis_priority_options
from schema.message import QUEUE

broker_transport_options = redis_priority_options()
# The queue Flower reports before it has heard which queues the workers consume.
task_default_queue = QUEUE
