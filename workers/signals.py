"""Process hooks of the worker, registered once: fresh resources in every prefork child."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown

from workers.context import reset_deps


@worker_process_init.connect
def _on_child_start(**_: Any) -> None:
    # Connections inherited through fork() belong to the parent; each child opens its own.
    reset_deps()


@worker_process_shutdown.connect
def _on_child_stop(**_: Any) -> None:
    reset_deps()
