"""A bare Celery chain of three no-op tasks, configured like the fleet's (the baseline).

Run by ``bench.fleet`` as ``celery -A bench.noop worker -Q bench-noop`` on the fleet's broker;
the last task stamps the time it ran into Redis (``BENCH_STAMP_REDIS_URL``, else the broker's)
so the bench can read when the chain ended.
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

from schema.settings import Settings
from workers.app import celery_config

QUEUE = "bench-noop"
app = Celery("bench-noop")


def _configure(sender: Celery, **_: object) -> None:
    sender.conf.update({**celery_config(Settings()), "task_default_queue": QUEUE})


app.on_configure.connect(_configure)


@app.task(name="bench.noop.step")
def step(chain_id: str) -> None:
    """Do nothing: the cost measured is Celery's own."""


@app.task(name="bench.noop.last")
def last(chain_id: str) -> None:
    """Record when the chain ended (epoch ms)."""
    # A Redis of the bench's choosing: the broker may be RabbitMQ.
    client = redis.Redis.from_url(os.environ.get("BENCH_STAMP_REDIS_URL", Settings().broker_url))
    client.set(f"bench:noop:{chain_id}", int(time.time() * 1000), ex=600)
    client.close()
