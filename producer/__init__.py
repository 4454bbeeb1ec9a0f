"""The producer: notifications in, task rows and published chains out."""

from producer.events.ingest import IngestOutcome, IngestResult, ingest
from producer.events.publish import ChainPublisher
from producer.events.rules import EventRules
from producer.events.sources import parse_body
from producer.transports.poller import Poller
from schema.errors import BrokerUnavailable

__all__ = [
    "BrokerUnavailable",
    "ChainPublisher",
    "EventRules",
    "IngestOutcome",
    "IngestResult",
    "Poller",
    "ingest",
    "parse_body",
]
