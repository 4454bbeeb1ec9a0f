"""The poller's watermark arithmetic, without a bucket."""

from __future__ import annotations

from producer.transports.poller import Watermark

HOUR_MS = 3_600_000


def test_an_object_is_new_until_its_version_is_seen() -> None:
    state = Watermark(since_ms=1000)
    assert state.is_new("a.mp4", "e1", 1000)
    state.seen["a.mp4"] = ("e1", 1000)
    assert not state.is_new("a.mp4", "e1", 1000)
    assert state.is_new("a.mp4", "e2", 2000)  # overwritten: a new version
    assert not state.is_new("old.mp4", "e1", 999)  # behind the watermark


def test_a_finished_scan_moves_the_watermark_and_forgets_what_fell_behind() -> None:
    state = Watermark(
        since_ms=0,
        scan_cursor="z.mp4",
        scan_max_ms=10 * HOUR_MS,
        seen={"old.mp4": ("e", 8 * HOUR_MS), "recent.mp4": ("e", 9 * HOUR_MS + 1)},
    )
    state.finish_scan(HOUR_MS)
    assert (state.since_ms, state.scan_cursor, state.scan_max_ms) == (9 * HOUR_MS, None, 0)
    assert state.seen == {"recent.mp4": ("e", 9 * HOUR_MS + 1)}


def test_the_watermark_never_moves_back() -> None:
    state = Watermark(since_ms=5 * HOUR_MS, scan_max_ms=2 * HOUR_MS)
    state.finish_scan(HOUR_MS)
    assert state.since_ms == 5 * HOUR_MS


def test_an_empty_scan_keeps_the_watermark() -> None:
    state = Watermark(since_ms=5 * HOUR_MS, seen={"a.mp4": ("e", 5 * HOUR_MS)})
    state.finish_scan(HOUR_MS)
    assert (state.since_ms, state.seen) == (5 * HOUR_MS, {"a.mp4": ("e", 5 * HOUR_MS)})


def test_mid_scan_only_old_entries_behind_the_cursor_are_forgotten() -> None:
    state = Watermark(
        since_ms=0,
        scan_cursor="m.mp4",
        scan_max_ms=10 * HOUR_MS,
        seen={
            "a.mp4": ("e", 1),  # behind the cursor and old: can go
            "b.mp4": ("e", 9 * HOUR_MS + 5),  # behind the cursor but recent: stays
            "x.mp4": ("e", 1),  # ahead of the cursor: still to be listed, stays
        },
    )
    state.forget_behind(HOUR_MS)
    assert sorted(state.seen) == ["b.mp4", "x.mp4"]
