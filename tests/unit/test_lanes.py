"""The priority table: depth-first within a lane, higher lanes first, all within kombu's 0-9."""

from __future__ import annotations

import itertools

import pytest

from schema.broker import priorities_enabled, redis_priority_options
from schema.lanes import LANES, PRIORITY_STEPS, UNPRIORITISED, Lane, lane_of, priority
from schema.settings import Settings
from schema.status import STEPS, Step


def test_the_table_as_documented() -> None:
    table = {lane: [priority(lane, step) for step in STEPS] for lane in LANES}
    assert table == {
        Lane.INTERACTIVE: [3, 2, 1],
        Lane.NORMAL: [6, 5, 4],
        Lane.BULK: [9, 8, 7],
    }


@pytest.mark.parametrize("lane", LANES)
def test_a_chains_later_steps_go_before_new_chains_first_steps(lane: Lane) -> None:
    numbers = [priority(lane, step) for step in STEPS]
    assert numbers == sorted(numbers, reverse=True)
    assert all(priority(lane, step) < priority(lane, Step.VALIDATE) for step in STEPS[1:])


def test_every_step_of_a_higher_lane_goes_before_any_step_of_a_lower_one() -> None:
    for higher, lower in itertools.pairwise(LANES):
        assert max(priority(higher, s) for s in STEPS) < min(priority(lower, s) for s in STEPS)


def test_every_priority_is_a_kombu_level_and_maps_back_to_its_lane() -> None:
    for lane in LANES:
        for step in STEPS:
            level = priority(lane, step)
            assert level in PRIORITY_STEPS
            assert level != UNPRIORITISED
            assert 0 <= level <= 9  # kombu clamps anything else
            assert lane_of(level) is lane
    assert lane_of(UNPRIORITISED) is None


def test_priorities_are_on_for_redis_off_for_rabbitmq_and_off_by_setting() -> None:
    assert priorities_enabled(Settings(broker_url="redis://127.0.0.1:6379/0"))
    assert not priorities_enabled(Settings(broker_url="amqp://guest:guest@127.0.0.1:5672//"))
    off = Settings(broker_url="redis://127.0.0.1:6379/0", queue_priorities=False)
    assert not priorities_enabled(off)


def test_redis_reads_the_lowest_priority_list_first() -> None:
    options = redis_priority_options()
    assert options["queue_order_strategy"] == "priority"
    assert options["priority_steps"] == sorted(PRIORITY_STEPS)
