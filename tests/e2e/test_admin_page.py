"""The admin page in headless Chromium: a real failed task, a real click, a real worker.

The task fails honestly (storage is down for longer than its retries last); with storage back,
an admin opens ``/admin/``, sees it with its error, clicks Requeue, accepts the confirmation, and
the task completes through the fleet's worker. Screenshots go to ``artifacts/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import HttpCredentials, Page, expect

from producer.dev.browser import chromium
from producer.dev.devserver import serve
from producer.dev.localstack import free_port
from schema.metadata import as_document
from schema.settings import Settings
from tests.integration.conftest import Fleet

pytestmark = pytest.mark.e2e

ADMIN = ("ops", "a-long-admin-password")


@pytest.fixture
def admin_server(fleet: Fleet) -> Iterator[str]:
    """The producer's HTTP app with admin credentials, served by uvicorn on a free port."""
    settings = Settings.model_validate(
        {**fleet.settings.model_dump(), "admin_username": ADMIN[0], "admin_password": ADMIN[1]}
    )
    with serve(settings, free_port()) as base_url:
        yield base_url


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    credentials: HttpCredentials = {"username": ADMIN[0], "password": ADMIN[1]}
    with chromium(tmp_path / "chromium-profile", http_credentials=credentials) as context:
        yield context.new_page()


def test_admin_requeues_a_failed_task_from_the_page_and_it_completes(
    fleet: Fleet, h264_mp4: Path, admin_server: str, page: Page, artifacts_dir: Path
) -> None:
    # given a video uploaded while storage was down for longer than its retries lasted
    body = fleet.upload(h264_mp4, "uploads/during-outage.mp4")
    fleet.s3_server.stop()
    try:
        [outcome] = fleet.deliver(body)
        failed = fleet.wait(outcome.task_id)
    finally:
        fleet.s3_server.start()
    assert failed.status == "failed"
    backend = fleet.worker_name.removeprefix("test-")
    # when an admin opens the page, the failed task is listed with its error
    page.goto(f"{admin_server}/admin/")
    row = page.locator(f'tr[data-task-id="{failed.id}"]')
    expect(row).to_have_attribute("data-status", "failed")
    expect(row).to_contain_text("uploads/during-outage.mp4")
    expect(row).to_contain_text("validate-video: gave up after 3 retries")
    expect(page.locator('button[data-status="failed"]')).to_have_text("failed (1)")
    before = artifacts_dir / f"admin-page-failed-{backend}.png"
    page.screenshot(path=str(before), full_page=True)
    # and clicks Requeue, accepting the confirmation
    dialogs: list[str] = []

    def accept(dialog: object) -> None:
        dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    page.once("dialog", accept)
    row.get_by_role("button", name="Requeue").click()
    expect(page.locator("#message")).to_contain_text("Requeued uploads/during-outage.mp4")
    assert dialogs == ["Requeue uploads/during-outage.mp4? It resumes at validate-video."]
    # then the task completes through the worker, and the page shows it
    page.locator('button[data-status="all"]').click()
    expect(row).to_have_attribute("data-status", "completed", timeout=90_000)
    expect(page.locator('button[data-status="failed"]')).to_have_text("failed (0)")
    after = artifacts_dir / f"admin-page-completed-{backend}.png"
    page.screenshot(path=str(after), full_page=True)
    print(f"screenshots: {before} {after}")
    done = fleet.row(failed.id)
    assert done.status == "completed"
    [record] = as_document(done.metadata)["requeues"]
    assert record["by"] == ADMIN[0]
    assert len(fleet.thumbnail_keys("thumbnails/uploads/during-outage.mp4/")) == 5


def test_admin_requeues_all_matching_tasks_after_confirming_their_number(
    fleet: Fleet, not_a_video: Path, h264_mp4: Path, admin_server: str, page: Page
) -> None:
    # given two failed uploads under one prefix, one under another, and a completed video
    ids = {}
    for key in ("uploads/batch/a.mp4", "uploads/batch/b.mp4", "uploads/other/c.mp4"):
        [outcome] = fleet.deliver(fleet.upload(not_a_video, key))
        ids[key] = outcome.task_id
    [good] = fleet.deliver(fleet.upload(h264_mp4, "uploads/batch/good.mp4"))
    for task_id in [*ids.values(), good.task_id]:
        fleet.wait(task_id)
    # when the admin filters the failed ones by prefix and requeues all that match
    page.goto(f"{admin_server}/admin/")
    expect(page.locator('button[data-status="failed"]')).to_have_text("failed (3)")
    page.get_by_label("Key prefix").fill("uploads/batch/")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator('button[data-status="failed"]')).to_have_text("failed (2)")
    dialogs: list[str] = []

    def accept(dialog: object) -> None:
        dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.accept()  # type: ignore[attr-defined]

    page.once("dialog", accept)
    page.get_by_role("button", name="Requeue all matching").click()
    # then the confirmation named their number, and exactly those two ran again
    expect(page.locator("#message")).to_have_text("Requeued 2 task(s).")
    assert dialogs == ["Requeue 2 matching task(s)?"]
    for key, task_id in ids.items():
        row = fleet.wait(task_id)
        requeues = as_document(row.metadata).get("requeues") or []
        assert len(requeues) == (1 if key.startswith("uploads/batch/") else 0), key
    assert as_document(fleet.row(good.task_id).metadata).get("requeues") is None
