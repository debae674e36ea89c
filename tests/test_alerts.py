"""The alert rules in deploy/prometheus: valid, unit-tested by promtool, and loaded by a real
Prometheus that scrapes a real `explorer listen` (Debian's `prometheus` package; `make tools`
installs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from explorer.dev.meili_server import free_port
from explorer.doors.metrics import record_outcome
from explorer.jobs.reindex import last_report
from explorer.jobs.sync import sync
from tests.conftest import SANDBOX_INSTANCE
from tests.test_listen import World, wait_until, world  # noqa: F401 - the fixture

DEPLOY = Path(__file__).resolve().parent.parent / "deploy/prometheus"
RULES = DEPLOY / "alerts.yml"


def binary(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: `make tools` installs Debian's prometheus package"
    return found


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary("promtool"), *args], capture_output=True, text=True,
                          cwd=DEPLOY, check=False, timeout=60)  # fmt: skip


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_the_rules_and_the_sample_scrape_config_are_valid() -> None:
    rules = promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_alert_says_what_to_do_and_waits_before_firing() -> None:
    for rule in alert_rules():
        assert rule.get("for"), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]


def test_each_alert_fires_when_it_should_and_stays_silent_when_it_should_not() -> None:
    """The unit tests cover every alert both ways, and promtool passes them."""
    fires: set[str] = set()
    silent: set[str] = set()
    for case in yaml.safe_load((DEPLOY / "alerts.test.yml").read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert fires == names and silent == names
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


# -- a real Prometheus --------------------------------------------------------------------


class Prometheus:
    """A running Prometheus: its HTTP API, and where its listen target goes."""

    def __init__(self, url: str, targets: Path) -> None:
        self.url = url
        self.targets = targets

    def scrape_listen(self, address: str) -> None:
        """Point the listen job at ``address`` (a file_sd file, replaced whole)."""
        part = self.targets.with_suffix(".part")
        part.write_text(json.dumps([{"targets": [address]}]))
        part.replace(self.targets)

    def get(self, path: str, **params: str) -> Any:
        resp = httpx.get(f"{self.url}/api/v1/{path}", params=params)
        resp.raise_for_status()
        body = resp.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("query", query=expr)["result"]
        return result

    def alerts(self, name: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get("alerts")["alerts"]
        return [a for a in found if a["labels"]["alertname"] == name]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    """Prometheus on the sample config with 1 s scrapes and rule evaluations; the listen
    job's target comes later (``scrape_listen``), every other target is a port nothing
    answers on. Started first: Prometheus 2.42 takes its first targets 5 s after start."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    targets = tmp_path / "listen.json"
    targets.write_text("[]")
    nobody = f"127.0.0.1:{free_port()}"
    for job in config["scrape_configs"]:
        if job["job_name"] == "explorer-listen":
            del job["static_configs"]
            job["file_sd_configs"] = [{"files": [str(targets)]}]
        else:
            job["static_configs"] = [{"targets": [nobody]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary("prometheus"), f"--config.file={path}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"{url}/-/ready").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, "Prometheus to be ready")
        yield Prometheus(url, targets)
    finally:
        proc.terminate()
        proc.wait(30)


def test_prometheus_scrapes_listen_and_evaluates_the_rules_on_what_it_stores(
    world: Callable[..., World],  # noqa: F811 - the fixture imported above
    prometheus: Prometheus,
) -> None:
    w = world(chats=40)  # reindexed: the last swap is on /metrics
    sync(w.cfg)
    record_outcome(w.cfg, "sync", 1)  # as `explorer schedule` records a failed sync
    prometheus.scrape_listen(w.url.removeprefix("http://"))

    # explorer's `job` label arrives as `exported_job`, the one the rule selects on.
    failing = wait_until(lambda: prometheus.alerts("ExplorerSyncFailing"), "ExplorerSyncFailing")
    (alert,) = failing
    assert alert["state"] == "pending" and alert["labels"]["exported_job"] == "sync"

    (up,) = prometheus.query('up{job="explorer-listen"}')
    assert up["value"][1] == "1"
    (depth,) = prometheus.query("explorer_webhook_queue_depth")
    assert depth["metric"]["job"] == "explorer-listen" and depth["value"][1] == "0"
    (swapped,) = prometheus.query("explorer_last_reindex_timestamp_seconds")
    assert float(swapped["value"][1]) == last_report(w.cfg)["finished_at"]  # type: ignore[index]
    # explorer's `instance` (the Wawp instance) arrives as `exported_instance`.
    synced = f'explorer_last_sync_timestamp_seconds{{exported_instance="{SANDBOX_INSTANCE}"}}'
    assert prometheus.query(synced)

    # Every metric a rule reads is one Prometheus stores from explorer: a misspelt name
    # would never fire.
    stored = set(prometheus.get("label/__name__/values"))
    read = {name for rule in alert_rules() for name in re.findall(r"\bexplorer_\w+", rule["expr"])}
    assert read <= stored, read - stored

    def evaluated() -> list[dict[str, Any]] | None:
        (group,) = prometheus.get("rules")["groups"]
        rules: list[dict[str, Any]] = group["rules"]
        return rules if all(r["health"] != "unknown" for r in rules) else None

    rules = wait_until(evaluated, "every rule evaluated once")
    assert [r["name"] for r in rules] == [r["alert"] for r in alert_rules()]
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r["lastError"]) for r in rules]

    # serve and schedule are not running: their targets are down, the rule for that pends.
    def down() -> set[str]:
        return {a["labels"]["job"] for a in prometheus.alerts("ExplorerMetricsDown")}

    wait_until(lambda: down() == {"explorer-serve", "explorer-schedule"}, "the down targets")
    # The evaluation that made ExplorerSyncFailing pend saw listen's scrape, whole.
    quiet = {"ExplorerReindexStale", "ExplorerReindexNeverSucceeded", "ExplorerSyncStale",
             "ExplorerMeilisearchUnreachable", "ExplorerWebhookQueueGrowing"}  # fmt: skip
    assert not [a for name in quiet for a in prometheus.alerts(name)]
