"""Prometheus metrics and health for the long-running commands (listen, serve, schedule).

Each server owns a :class:`prometheus_client.CollectorRegistry` (not the global one), so
several can live in one process (tests) and nothing is exported that was not meant to be.
Every one of them also exports :class:`StateCollector`: what the state directory says about
the last reindex and sync, and the documents per instance, read when scraped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from explorer.config import Config
from explorer.jobs.state import read_json, state_dir

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DOCUMENTS_TTL = 15.0  # seconds a documents-per-instance count is reused between scrapes


def outcomes_path(cfg: Config) -> Any:
    return state_dir(cfg) / f"outcomes-{cfg.meilisearch.index}.json"


def record_outcome(cfg: Config, job: str, exit_code: int, at: float | None = None) -> None:
    """Remember how a reindex or sync ended (listen and serve report it too)."""
    from explorer.jobs.state import write_json

    path = outcomes_path(cfg)
    data = read_json(path)
    data[job] = {"exit_code": exit_code, "at": time.time() if at is None else at}
    write_json(path, data)


class StateCollector(Collector):
    """Last reindex and sync (time, outcome) and documents per instance, at scrape time."""

    def __init__(self, cfg: Config, *, with_documents: bool = True) -> None:
        self.cfg = cfg
        self.with_documents = with_documents
        self._docs: tuple[float, dict[str, int] | None] = (0.0, None)

    def _documents(self) -> dict[str, int] | None:
        at, cached = self._docs
        if time.monotonic() - at < DOCUMENTS_TTL:
            return cached
        from explorer.errors import ExplorerError
        from explorer.jobs.stats import index_counts

        try:
            counts = index_counts(self.cfg.meilisearch)["instance_id"]
        except ExplorerError:
            return None  # Meilisearch down, no index yet: no samples, the scrape still works
        self._docs = (time.monotonic(), counts)
        return counts

    def collect(self) -> Iterator[Metric]:
        from explorer.jobs.reindex import last_report
        from explorer.jobs.sync import load_state

        last = last_report(self.cfg) or {}
        swapped = GaugeMetricFamily(
            "explorer_last_reindex_timestamp_seconds",
            "When the last successful reindex swapped its index in (Unix time).",
        )
        if last.get("finished_at"):
            swapped.add_metric([], float(last["finished_at"]))
        yield swapped
        synced = GaugeMetricFamily(
            "explorer_last_sync_timestamp_seconds",
            "When each instance was last synced (Unix time).",
            labels=["instance"],
        )
        for inst, info in sorted(load_state(self.cfg).get("instances", {}).items()):
            if info.get("at"):
                synced.add_metric([inst], float(info["at"]))
        yield synced
        outcome = GaugeMetricFamily(
            "explorer_job_last_exit_code",
            "Exit code of the last scheduled reindex or sync (0 ok, 3 swap refused).",
            labels=["job"],
        )
        ended = GaugeMetricFamily(
            "explorer_job_last_run_timestamp_seconds",
            "When the last scheduled reindex or sync ended (Unix time).",
            labels=["job"],
        )
        for job, info in sorted(read_json(outcomes_path(self.cfg)).items()):
            if isinstance(info, dict) and "exit_code" in info:
                outcome.add_metric([job], float(info["exit_code"]))
                ended.add_metric([job], float(info.get("at") or 0))
        yield outcome
        yield ended
        if self.with_documents:
            docs = GaugeMetricFamily(
                "explorer_documents", "Chats in the live index per instance.", labels=["instance"]
            )
            for inst, n in sorted((self._documents() or {}).items()):
                docs.add_metric([inst], float(n))
            yield docs


def new_registry(cfg: Config) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StateCollector(cfg))
    return registry


def routes(
    registry: CollectorRegistry, health: Callable[[], tuple[bool, dict[str, Any]]] | None = None
) -> list[Route]:
    """``GET /metrics`` (Prometheus text format) and ``GET /healthz`` for a Starlette app.

    ``health`` returns (healthy, details); unhealthy answers 503 so an orchestrator restarts
    or stops routing to the process.
    """

    async def metrics(request: Request) -> Response:
        import anyio.to_thread

        # Collectors may ask Meilisearch: off the event loop.
        body = await anyio.to_thread.run_sync(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        ok, details = health() if health else (True, {})
        return JSONResponse({"status": "ok" if ok else "unhealthy", **details},
                            status_code=200 if ok else 503)  # fmt: skip

    return [Route("/metrics", metrics, methods=["GET"]), Route("/healthz", healthz)]
