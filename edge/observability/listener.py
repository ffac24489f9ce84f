"""``GET /metrics`` on an address of its own (``edge serve --metrics-listen``), never on the public
listener: the metrics name tenants, machines and models, which are the operator's to see.

A plain aiohttp site, for the operator's Prometheus on loopback or a private network; it serves
nothing else (any other path is a 404)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from edge.observability.metrics import EdgeMetrics

PATH = "/metrics"


class MetricsListenFailed(Exception):
    """The metrics address cannot be listened on (taken, not this machine's, …)."""


@dataclass(slots=True)
class MetricsListener:
    runner: web.AppRunner
    port: int  # the one bound (the address may have asked for 0)
    metrics: EdgeMetrics

    async def stop(self) -> None:
        await self.runner.cleanup()


async def serve_metrics(metrics: EdgeMetrics, host: str, port: int) -> MetricsListener:
    """Serve ``metrics`` at ``http://host:port/metrics`` until ``stop()``.
    ``MetricsListenFailed`` naming the address when it cannot be listened on."""
    render = make_aiohttp_handler(metrics.registry, disable_compression=True)

    async def scrape(request: web.Request) -> web.StreamResponse:
        await metrics.learn_tenants()  # so that the live metrics name tenants by slug
        return await render(request)

    app = web.Application()
    app.router.add_get(PATH, scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise MetricsListenFailed(f"cannot serve metrics on {host}:{port}: {exc}") from exc
    bound: int = runner.addresses[0][1]
    return MetricsListener(runner, bound, metrics)
