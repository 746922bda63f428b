"""``taskq metrics``: the cluster's metrics from its events, served for Prometheus at /metrics."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import click

from taskq.drivers.cli import app_option, command_app
from taskq.errors import ConfigError

if TYPE_CHECKING:
    from taskq import App
    from taskq_prometheus.cluster import ClusterMetrics

logger = logging.getLogger(__name__)

#: Seconds one read of events may wait for the first (then the stop flag is looked at).
READ_WAIT = 0.5
#: Seconds before reading events again after the broker was lost: first, and at most.
RECONNECT_START = 1.0
RECONNECT_MAX = 30.0


@click.command()
@app_option
@click.option("--port", type=click.IntRange(1, 65535), default=9808, show_default=True, help="Port to serve on.")
@click.option("--address", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option(
    "--queues",
    "-Q",
    default=None,
    metavar="A,B",
    help="Queues whose depth to report (default: the queues a worker consumes by default).",
)
@click.option(
    "--max-task-names",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Distinct task names labelled one by one; the rest are counted under 'other'.",
)
@click.option(
    "-l", "--loglevel", default="warning", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@click.pass_context
def metrics(
    ctx: click.Context, port: int, address: str, queues: str | None, max_task_names: int, loglevel: str
) -> None:
    """Serve the cluster's metrics for Prometheus at /metrics, from its events (workers need -E
    for task metrics) and the queues' depth, until Ctrl-C (taskq-prometheus)."""
    from taskq_prometheus._http import MetricsServer
    from taskq_prometheus.cluster import ClusterMetrics

    logging.basicConfig(level=loglevel.upper(), format="[%(asctime)s: %(levelname)s] %(message)s")
    app = command_app(ctx)
    names = [name.strip() for name in queues.split(",") if name.strip()] if queues else None
    cluster = ClusterMetrics(app, queues=names, names_max=max_task_names)
    server = MetricsServer(cluster.render, address, port, setting="--port")
    stop = threading.Event()
    click.echo(f"serving the cluster's metrics at http://{address}:{server.port}/metrics", err=True)
    try:
        follow_events(app, cluster, stop)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        cluster.close()


def follow_events(app: App, cluster: ClusterMetrics, stop: threading.Event) -> None:
    """Feed ``cluster`` the events of ``app``'s broker until ``stop`` is set; when the broker
    goes away, count it, wait (longer each time) and read again."""
    failures = 0
    while not stop.is_set():
        transport = app.new_transport()
        try:
            reader = transport.event_reader()
        except NotImplementedError as exc:
            transport.close()
            raise ConfigError(f"taskq metrics reads the cluster's events, but {exc}") from None
        except Exception as exc:
            transport.close()
            failures += 1
            _lost(cluster, exc, failures, stop)
            continue
        try:
            if failures:
                cluster.reconnects.inc()
                logger.warning("reading events again")
                failures = 0
            while not stop.is_set():
                for event in reader.read(READ_WAIT):
                    cluster.event(event)
        except Exception as exc:
            failures += 1
            _lost(cluster, exc, failures, stop)
        finally:
            for closing in (reader.close, transport.close):
                try:
                    closing()
                except Exception:
                    logger.debug("closing the event reader failed", exc_info=True)


def _lost(cluster: ClusterMetrics, exc: BaseException, failures: int, stop: threading.Event) -> None:
    cluster.connection_errors.inc()
    delay = min(RECONNECT_MAX, RECONNECT_START * 2 ** (failures - 1))
    logger.warning("lost the broker's events (%s: %s); reading again in %.1fs", type(exc).__name__, exc, delay)
    stop.wait(delay)


__all__ = ["follow_events", "metrics"]
