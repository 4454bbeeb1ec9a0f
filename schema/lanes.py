"""Priority lanes: which message of ``video-events`` a worker takes next (Redis broker).

Each chain is sent in a *lane*, chosen by who asked for the video:

- ``interactive``: an upload through the upload API (a person is waiting at the upload page);
- ``normal``: a bucket notification (webhook, pull consumer);
- ``bulk``: the poller, requeues, recovery and backfills.

Every step of a chain carries its priority in its own message, set by the producer when it sends
the chain (the first message's ``priority`` and each later step's signature options), so the
workers need no code to follow it: Celery sends the next step with its signature's options, and
a retry with the priority it was delivered with.

On Redis kombu keeps one list per priority (``video-events`` for 0, ``video-events\\x06\\x16N``
for N > 0) and, with ``queue_order_strategy="priority"``, a worker pops the lowest number first,
FIFO within one number. The table puts a lane's later steps before its first steps
(depth-first: a started video finishes before a new one starts) and a higher lane before a lower
one. Priority 0 is left to messages sent without one (the D1 mirror, messages from before
priorities were turned on): they are few and short.

    lane          validate  thumbnails  update
    interactive       3          2          1
    normal            6          5          4
    bulk              9          8          7
"""

from __future__ import annotations

from enum import StrEnum

from schema.status import STEPS, Step


class Lane(StrEnum):
    """Who asked for a video, highest lane first."""

    INTERACTIVE = "interactive"
    NORMAL = "normal"
    BULK = "bulk"


# The kombu priority levels videofleet uses on Redis: 0 (no priority) and the table's numbers.
PRIORITY_STEPS: tuple[int, ...] = tuple(range(10))
# A message without a priority lands in the plain list, read first.
UNPRIORITISED = 0
LANES: tuple[Lane, ...] = (Lane.INTERACTIVE, Lane.NORMAL, Lane.BULK)


def priority(lane: Lane, step: Step) -> int:
    """The Redis priority of ``step`` in ``lane`` (lower is served first); pure.

    Lanes are bands of ``len(STEPS)`` numbers; within a band the last step has the lowest.
    """
    band = LANES.index(lane) * len(STEPS)
    return UNPRIORITISED + band + len(STEPS) - STEPS.index(step)


def lane_of(level: int) -> Lane | None:
    """The lane whose band holds the priority ``level``; None for unprioritised messages."""
    if level == UNPRIORITISED:
        return None
    return LANES[(level - UNPRIORITISED - 1) // len(STEPS)]


__all__ = ["LANES", "PRIORITY_STEPS", "UNPRIORITISED", "Lane", "lane_of", "priority"]
