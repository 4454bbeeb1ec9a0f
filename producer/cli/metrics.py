"""``videofleet metrics``: the fleet's Prometheus metrics on a port of their own."""

from __future__ import annotations

import click
from prometheus_client import CollectorRegistry, start_http_server

from producer.ops.metrics import FleetCollector, broker_client
from schema.db import make_engine
from schema.settings import Settings


@click.command("metrics")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9808, show_default=True, help="Port to listen on.")
@click.pass_obj
def metrics_command(settings: Settings, address: str, port: int) -> None:
    """Serve the fleet's Prometheus metrics on their own port (where no producer runs)."""
    engine = make_engine(settings.database_url)
    broker = broker_client(settings.broker_url)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(engine, broker, window_s=settings.metrics_window_s))
    server, thread = start_http_server(port, addr=address, registry=registry)
    click.echo(f"metrics on http://{address}:{server.server_port}/metrics", err=True)
    try:
        thread.join()
    finally:
        server.shutdown()
        broker.close()
        engine.dispose()
