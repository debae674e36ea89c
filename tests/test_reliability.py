"""Reliability: kills, interrupts, outages and faults never leave a partial index live.

Reindexes here run as real `explorer` processes (so SIGKILL is a real crash) against the
sandbox and a real Meilisearch.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import meilisearch
import pytest
from click.testing import CliRunner

from explorer.cli import cli
from explorer.config import load_config
from explorer.dev.meili_server import MeiliServer, free_port
from explorer.dev.sandbox import Sandbox, sandbox_process
from explorer.errors import MeiliError
from explorer.jobs.reindex import reindex
from tests.conftest import explorer_env, ground_truth

INST = "INST00000001"
ROOT = Path(__file__).resolve().parent.parent
CONCURRENCY = 4  # wawp.concurrency's default, which write_config keeps


def write_config(path: Path, **wawp: Any) -> Path:
    settings = {"warmup_seconds": 0, "page_size": 50, "retry_budget_seconds": 60, **wawp}
    lines = "".join(f"{k} = {v!r}\n" for k, v in settings.items())
    path.write_text(f"[wawp]\n{lines}\n[reindex]\nbatch_size = 200\n")
    return path


def env_for(
    sb: Sandbox, token: str, meili_url: str, key: str, index: str, cfg: Path
) -> dict[str, str]:
    # a whole environment: these run as child processes
    return {
        **os.environ,
        **explorer_env(sb, token, meili_url, key, index, EXPLORER_CONFIG=str(cfg)),
    }


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "explorer.cli", "-v", "reindex", "-q", *args],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> bool:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            return False
        if needle in line:
            return True
    return False


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def live_jids(client: meilisearch.Client, index: str) -> set[str] | None:
    try:
        docs = client.index(index).get_documents({"limit": 100_000, "fields": ["jid"]}).results
    except meilisearch.errors.MeilisearchApiError:
        return None
    return {d.jid for d in docs}


def builds(client: meilisearch.Client, index: str) -> list[str]:
    return [
        i["uid"]
        for i in client.get_raw_indexes({"limit": 1000})["results"]
        if i["uid"].startswith(f"{index}__build_")
    ]


def test_sigkill_at_any_point_never_leaves_a_partial_index(
    make_sandbox: Callable[..., Sandbox],
    token: str,
    meili: MeiliServer,
    meili_client: meilisearch.Client,
    index_name: str,
    tmp_path: Path,
) -> None:
    sb = make_sandbox(chats=1500, latency_ms=4)
    env = env_for(
        sb, token, meili.url, meili.master_key, index_name, write_config(tmp_path / "c.toml")
    )
    assert finish(spawn(env))[0] == 0
    store = sb.store(INST)
    rng = random.Random(42)
    kill_points = ["waiting for"] * 3 + ["swapping"] * 3 + ["random"] * 6
    outcomes = []
    for point in kill_points:
        old = live_jids(meili_client, index_name)
        store.delete(rng.sample(sorted(ground_truth(sb)), 15))
        store.add(15)
        new = ground_truth(sb)
        proc = spawn(env)
        if point == "random":
            time.sleep(rng.uniform(0.05, 1.2))
        else:
            assert wait_for_line(proc, point), f"never reached {point!r}"
        proc.send_signal(signal.SIGKILL)
        proc.communicate()  # reap it and close its pipes
        seen = live_jids(meili_client, index_name)
        assert seen in (old, new), f"partial index live after a kill at {point}"
        outcomes.append("new" if seen == new else "old")
        code, _, err = finish(spawn(env))
        assert code == 0, err
        assert live_jids(meili_client, index_name) == ground_truth(sb)
        assert builds(meili_client, index_name) == []
    assert "old" in outcomes  # kills did land before swaps
    docs = json.dumps(
        meili_client.index(index_name).get_documents({"limit": 5000}).results, default=vars
    )
    assert token not in docs and meili.master_key not in docs


@pytest.mark.usefixtures("sigint_heard")
def test_sigint_exits_promptly_and_resumes(
    make_sandbox: Callable[..., Sandbox],
    token: str,
    meili: MeiliServer,
    meili_client: meilisearch.Client,
    index_name: str,
    tmp_path: Path,
) -> None:
    # 100 ms a page: the crawl goes on for about a second after its first batch, so the
    # signal lands mid-crawl even on a loaded machine (at 10 ms the whole run could end
    # before the test had read the line).
    sb = make_sandbox(chats=4000, latency_ms=100)
    env = env_for(
        sb, token, meili.url, meili.master_key, index_name, write_config(tmp_path / "c.toml")
    )
    assert finish(spawn(env))[0] == 0
    old = live_jids(meili_client, index_name)
    sb.store(INST).add(10)
    proc = spawn(env)
    assert wait_for_line(proc, "sent ")  # mid-crawl: the first batch went to Meilisearch
    asked = sb.chat_requests
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, timeout=30)
    # It stops at once: after the signal it asks for no page beyond those in flight or read
    # ahead (a window's worth each), where the rest of the crawl is some 80 pages.
    after = sb.chat_requests - asked
    assert after <= 3 * CONCURRENCY, f"{after} pages asked for after SIGINT"
    assert code == 130 and "Interrupted" in err and "resumes" in err
    assert "Traceback" not in err
    assert live_jids(meili_client, index_name) == old
    code, out, err = finish(spawn(env))
    assert code == 0 and "(resumed)" in out, err
    assert live_jids(meili_client, index_name) == ground_truth(sb)


def test_meilisearch_outage_mid_reindex_then_resume(
    make_sandbox: Callable[..., Sandbox], token: str, tmp_path: Path
) -> None:
    port = free_port()
    server = MeiliServer(tmp_path / "own-meili", port=port, master_key="outage-master-key-123456")
    server.start()
    try:
        sb = make_sandbox(chats=2500, latency_ms=8)
        path = write_config(tmp_path / "c.toml")
        env = env_for(sb, token, server.url, server.master_key, "chats", path)
        env.pop("EXPLORER_CONFIG")
        cfg = load_config(path, env=env)
        client = meilisearch.Client(server.url, server.master_key)
        reindex(cfg)
        old = live_jids(client, "chats")
        sb.store(INST).add(5)

        def outage(batches: int) -> None:
            if batches == 2:
                server.stop()  # Meilisearch goes away in the middle of the build

        with pytest.raises(MeiliError) as exc:
            reindex(cfg, after_batch=outage)
        assert "unreachable" in str(exc.value) and "\n" not in str(exc.value)
        server.start()
        assert live_jids(client, "chats") == old  # the live index is intact
        report = reindex(cfg)
        assert report.resumed and live_jids(client, "chats") == ground_truth(sb)
    finally:
        server.stop()


@pytest.mark.parametrize("key_kind", ["wrong", "search-only"])
def test_bad_meilisearch_key_is_one_line_and_writes_nothing(
    make_sandbox: Callable[..., Sandbox], token: str, meili: MeiliServer,
    meili_client: meilisearch.Client, index_name: str, tmp_path: Path, key_kind: str,
) -> None:  # fmt: skip
    sb = make_sandbox(chats=50)
    key = (
        "definitely-not-a-key-1234"
        if key_kind == "wrong"
        else meili_client.create_key(
            {"actions": ["search"], "indexes": ["*"], "expiresAt": None}
        ).key
    )
    env = env_for(sb, token, meili.url, key, index_name, write_config(tmp_path / "c.toml"))
    result = CliRunner().invoke(cli, ["reindex", "-q"], env=env)
    assert result.exit_code in (1, 2)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "API key" in lines[0] and key not in lines[0]
    assert live_jids(meili_client, index_name) is None and builds(meili_client, index_name) == []


def test_wawp_faults_still_give_the_exact_set(
    make_sandbox: Callable[..., Sandbox], token: str, meili: MeiliServer,
    meili_client: meilisearch.Client, index_name: str, tmp_path: Path,
) -> None:  # fmt: skip
    """5% 5xx, 429 bursts, a 30 s cold start and latency spikes beyond the timeout, at once."""
    sb = make_sandbox(
        chats=1500, error_rate=0.05, burst_every=15, burst_length=2, retry_after=0.3,
        cold_start=30, cold_mode="422", spike_rate=0.05, spike_ms=1500, fault_seed=9,
    )  # fmt: skip
    path = write_config(tmp_path / "c.toml", timeout=1.0, retry_budget_seconds=120)
    env = env_for(sb, token, meili.url, meili.master_key, index_name, path)
    result = CliRunner().invoke(cli, ["reindex", "-q", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert sb.cold_replies > 0  # the crawl met the cold start and waited it out (exact set)
    report = json.loads(result.stdout)
    assert report["retries"] > 0
    assert live_jids(meili_client, index_name) == ground_truth(sb)


def test_wawp_down_for_good_fails_clearly_and_leaves_live_untouched(
    make_sandbox: Callable[..., Sandbox], token: str, meili: MeiliServer,
    meili_client: meilisearch.Client, index_name: str, tmp_path: Path,
) -> None:  # fmt: skip
    good = make_sandbox(chats=100)
    path = write_config(tmp_path / "c.toml", retry_budget_seconds=1)
    env = env_for(good, token, meili.url, meili.master_key, index_name, path)
    assert CliRunner().invoke(cli, ["reindex", "-q"], env=env).exit_code == 0
    before = live_jids(meili_client, index_name)
    broken = make_sandbox(chats=100, error_rate=1.0)
    result = CliRunner().invoke(cli, ["reindex", "-q"], env={**env, "WAWP_BASE_URL": broken.url})
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert "gave up after" in line and "retry budget" in line and token not in line
    assert live_jids(meili_client, index_name) == before


def test_churn_during_reindex_keeps_every_surviving_chat(
    make_sandbox: Callable[..., Sandbox], token: str, meili: MeiliServer,
    meili_client: meilisearch.Client, index_name: str, tmp_path: Path,
) -> None:  # fmt: skip
    sb = make_sandbox(chats=2000, churn=4, fault_seed=3)
    before = ground_truth(sb)
    env = env_for(
        sb, token, meili.url, meili.master_key, index_name, write_config(tmp_path / "c.toml")
    )
    assert CliRunner().invoke(cli, ["reindex", "-q"], env=env).exit_code == 0
    after = ground_truth(sb)
    store = sb.store(INST)
    ever = {"@".join(store.gen.user_and_server(i)) for i in range(store.next_index)}
    live = live_jids(meili_client, index_name)
    assert live is not None and before & after <= live <= ever


def test_searches_keep_answering_through_a_reindex_and_swap(
    token: str, meili: MeiliServer, meili_client: meilisearch.Client, index_name: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """20 searches/s from 4 clients against a 200,000-chat index while it is rebuilt."""
    import httpx

    with sandbox_process(200_000, {INST: token}) as (url, _):
        path = write_config(tmp_path / "c.toml", page_size=200, concurrency=6)
        env = {
            **os.environ, "WAWP_BASE_URL": url, "WAWP_INSTANCE_ID": INST,
            "WAWP_ACCESS_TOKEN": token, "MEILI_URL": meili.url, "MEILI_API_KEY": meili.master_key,
            "EXPLORER_INDEX": index_name, "EXPLORER_CONFIG": str(path),
        }  # fmt: skip
        first = subprocess.run([sys.executable, "-m", "explorer.cli", "reindex", "-q"], env=env,
                               cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
        assert first.returncode == 0, first.stderr
        results: list[tuple[float, str, int, float]] = []  # (time, phase, status, hits)
        phase = ["before"]
        stop = threading.Event()
        words = ["maria", "ahmed", "group", "ana", "silva", "support", "family", "lucas"]

        def client_loop(n: int) -> None:
            with httpx.Client(headers={"Authorization": f"Bearer {meili.master_key}",
                                       "Accept-Encoding": "identity"}) as http:  # fmt: skip
                k = 0
                while not stop.is_set():
                    t0 = time.monotonic()
                    r = http.post(f"{meili.url}/indexes/{index_name}/search",
                                  json={"q": words[(n + k) % len(words)], "limit": 5})  # fmt: skip
                    hits = len(r.json().get("hits", [])) if r.status_code == 200 else -1
                    results.append((time.monotonic() - t0, phase[0], r.status_code, hits))
                    k += 1
                    stop.wait(max(0.0, 0.2 - (time.monotonic() - t0)))  # 5/s per client

        threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(4)
        phase[0] = "during"
        second = subprocess.run([sys.executable, "-m", "explorer.cli", "reindex", "-q"], env=env,
                                cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
        phase[0] = "after"
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join()
        assert second.returncode == 0, second.stderr
        assert all(status == 200 for _, _, status, _ in results), "a search failed"
        assert all(hits > 0 for _, _, _, hits in results), "a search came back empty"
        for name in ("before", "during"):
            lat = sorted(r[0] * 1000 for r in results if r[1] == name)
            print(f"{name}: {len(lat)} searches, p50 {lat[len(lat) // 2]:.1f} ms, "
                  f"p99 {lat[int(len(lat) * 0.99) - 1]:.1f} ms")  # fmt: skip
        assert len([r for r in results if r[1] == "during"]) > 100
