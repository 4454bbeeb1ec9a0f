"""The producer: notifications in, task rows and published chains out."""

from producer.ingest import IngestOutcome, IngestResult, ingest
from producer.poller import Poller
from producer.publish import ChainPublisher
from producer.rules import EventRules
from producer.sources import parse_body
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
