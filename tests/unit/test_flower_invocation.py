"""How `videofleet flower` runs Flower: authenticated, persistent, no secret in its arguments."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from producer.ops.flower import FlowerOptions, flower_invocation, flower_links
from schema.settings import Settings

ENVIRON = {"PATH": "/usr/bin", "FLOWER_URL": "https://flower.example", "FLOWER_PORT": "1"}


def test_flower_refuses_to_start_without_credentials() -> None:
    # given no FLOWER_BASIC_AUTH, when the invocation is built, then it is refused with the fix
    with pytest.raises(click.UsageError, match="FLOWER_BASIC_AUTH"):
        flower_invocation(Settings(), FlowerOptions(), ENVIRON)


def test_credentials_and_broker_travel_in_the_environment_not_the_arguments() -> None:
    # given credentials and a broker URL with a password
    settings = Settings(
        flower_basic_auth="ops:pa55word,viewer:other", broker_url="redis://:brokerpw@redis:6379/0"
    )
    # when the invocation is built
    argv, env = flower_invocation(
        settings, FlowerOptions(port=5566, db=Path("/state/f.db")), ENVIRON
    )
    # then Flower gets them from the environment, persists its state, and listens where asked
    assert env["FLOWER_BASIC_AUTH"] == "ops:pa55word,viewer:other"
    assert env["BROKER_URL"] == "redis://:brokerpw@redis:6379/0"
    assert not any("pa55word" in a or "brokerpw" in a for a in argv)
    assert argv[1:5] == [
        "-m",
        "producer.ops.flower_login",
        "--config=producer.ops.flower_config",
        "flower",
    ]
    assert "--persistent=True" in argv
    assert "--db=/state/f.db" in argv
    assert "--port=5566" in argv
    assert "--state_save_interval=60000" in argv


def test_videofleets_own_flower_variables_do_not_reach_flower() -> None:
    # given FLOWER_URL (videofleet's) and a stray FLOWER_PORT in the environment
    _, env = flower_invocation(Settings(flower_basic_auth="a:b"), FlowerOptions(), ENVIRON)
    # then Flower, which stops at unknown FLOWER_* options, sees only the credentials
    assert sorted(k for k in env if k.startswith("FLOWER_")) == ["FLOWER_BASIC_AUTH"]
    assert env["PATH"] == "/usr/bin"


def test_unauthenticated_must_be_asked_for_and_opens_the_api_explicitly() -> None:
    _, env = flower_invocation(Settings(), FlowerOptions(unauthenticated=True), ENVIRON)
    assert env["FLOWER_UNAUTHENTICATED_API"] == "true"
    assert "FLOWER_BASIC_AUTH" not in env


def test_links_point_at_the_first_step_and_a_search_by_row_id() -> None:
    links = flower_links("https://ops.example/flower/", "row-1", "wf-1")
    assert links.first_step == "https://ops.example/flower/task/wf-1"
    assert links.all_steps == "https://ops.example/flower/api/tasks?search=args%3Arow-1"


@pytest.mark.parametrize("value", ["ops", "ops:", ":pw", "ops:pw,", "ops:pw,viewer"])
def test_malformed_flower_credentials_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="FLOWER_BASIC_AUTH must be user:password"):
        Settings(flower_basic_auth=value)
