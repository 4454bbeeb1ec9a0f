"""The pure parts of the metrics: queue key names, quantiles, durations from metadata."""

from __future__ import annotations

import json

import pytest

from producer.ops.metrics import lane_depths, quantile, queue_keys, step_durations
from schema.metadata import decode


def test_queue_depth_reads_every_priority_list() -> None:
    assert queue_keys("video-events") == ["video-events"] + [
        f"video-events\x06\x16{n}" for n in range(1, 10)
    ]


def test_lane_depths_sum_each_lanes_priority_lists() -> None:
    # priority 0 (no priority), then 1-3 interactive, 4-6 normal, 7-9 bulk
    lengths = [5, 1, 0, 2, 10, 0, 0, 100, 200, 300]
    assert lane_depths(lengths) == {"none": 5, "interactive": 3, "normal": 10, "bulk": 600}


@pytest.mark.parametrize(
    ("q", "expected"), [(0.0, 1.0), (0.5, 2.0), (0.9, 4.0), (0.99, 4.0), (1.0, 4.0)]
)
def test_nearest_rank_quantile(q: float, expected: float) -> None:
    assert quantile([1.0, 2.0, 3.0, 4.0], q) == expected


def test_step_durations_skip_rows_without_usable_timings() -> None:
    docs = [
        {"timings_s": {"validate-video": 2.0, "total": 5.0}},
        {"timings_s": {"validate-video": 1.0}},
        {"timings_s": {"validate-video": 3.0, "generate-thumbnails": "slow"}},
        {"timings_s": "broken"},
        {},
    ]
    durations = step_durations([decode(json.dumps(doc)) for doc in docs])
    assert durations == {"validate-video": [1.0, 2.0], "total": [5.0]}
