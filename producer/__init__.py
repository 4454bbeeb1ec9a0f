"""The producer: notifications in, task rows and published chains out."""

from producer.ingest import Outcome, Result, ingest
from producer.publish import ChainPublisher
from schema.errors import BrokerUnavailable

__all__ = ["BrokerUnavailable", "ChainPublisher", "Outcome", "Result", "ingest"]
