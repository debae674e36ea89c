"""One request budget across instances, adapting to the API: Pace, and parallel reindexes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import meilisearch
import pytest

from explorer.config import load_config
from explorer.dev.meili_server import MeiliServer
from explorer.dev.sandbox import Sandbox
from explorer.errors import WawpAuthError
from explorer.jobs.reindex import reindex
from explorer.secrets import Secret
from explorer.source.crawl import Crawler, CrawlOptions
from explorer.source.pace import Pace
from explorer.source.wawp import RetryPolicy, WawpClient
from tests.conftest import explorer_env, ground_truth, register_secret


def test_slots_never_exceed_the_total_or_the_per_instance_cap() -> None:
    pace = Pace(4, per_instance=2, adaptive=False)
    busy: dict[str, int] = {}
    peaks = {"total": 0, "one": 0}
    lock = threading.Lock()

    def work(instance: str) -> None:
        with pace.slot(instance):
            with lock:
                busy[instance] = busy.get(instance, 0) + 1
                peaks["total"] = max(peaks["total"], sum(busy.values()))
                peaks["one"] = max(peaks["one"], busy[instance])
            time.sleep(0.01)
            with lock:
                busy[instance] -= 1

    threads = [threading.Thread(target=work, args=(f"i{n % 3}",)) for n in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peaks == {"total": 4, "one": 2}


def test_throttling_halves_the_window_once_per_round_trip_then_it_recovers() -> None:
    now = [0.0]
    pace = Pace(8, clock=lambda: now[0])
    pace.observe(0.1, throttled=False)
    for _ in range(5):  # one burst of 429s: one cut, not five
        pace.observe(0.1, throttled=True)
    assert pace.window == 4 and pace.stats.cuts == 1 and pace.stats.throttled == 5
    now[0] = 0.5
    pace.observe(0.1, throttled=True)  # the same storm, within the hold: no second cut
    assert pace.window == 4
    now[0] = 1.2
    pace.observe(0.1, throttled=True)
    assert pace.window == 2 and pace.stats.cuts == 2
    for _ in range(60):  # held: no growth within a second of the cut
        pace.observe(0.1, throttled=False)
    assert pace.window == 2
    for step in range(1, 20):  # then a tenth more every half second
        now[0] = 2.2 + step * 0.5
        pace.observe(0.1, throttled=False)
    assert pace.window == 8
    assert [w for _, w in pace.stats.history][:4] == [8, 4, 2, 2.2]


def test_a_rate_limit_sets_the_window_just_under_the_rate_it_allowed() -> None:
    now = [0.0]
    pace = Pace(8, clock=lambda: now[0])
    for n in range(40):  # 40 good replies of 20 ms in the last second
        now[0] = n * 0.025
        pace.observe(0.02, throttled=False)
    pace.observe(0.02, throttled=True)
    assert pace._window == pytest.approx(40 * 0.02 * 0.9)  # about 36 requests per second
    assert pace._spacing() == pytest.approx(0.02 / 0.72)


def test_a_window_just_over_the_rate_limit_steps_back_under_it_not_to_half() -> None:
    now = [0.0]
    pace = Pace(8, clock=lambda: now[0])
    pace._window = 0.95  # grown back just past what 40 requests/s of 20 ms replies allow
    for n in range(40):
        now[0] = n * 0.025
        pace.observe(0.02, throttled=False)
    pace.observe(0.02, throttled=True)
    assert pace._window == pytest.approx(0.72)  # not 0.475: the sawtooth stays near the rate


def test_much_slower_replies_count_as_congestion_but_jitter_does_not() -> None:
    now = [0.0]
    pace = Pace(8, clock=lambda: now[0])
    for _ in range(10):
        pace.observe(0.1, throttled=False)
    pace.observe(0.2, throttled=False)  # twice as slow: jitter
    assert pace.window == 8
    pace.observe(1.5, throttled=False)  # fifteen times slower: congestion
    assert pace.window == 4 and pace.stats.slow == 1


def test_below_one_in_flight_the_window_spaces_requests_out() -> None:
    now = [0.0]
    pace = Pace(8, clock=lambda: now[0])
    pace.observe(0.02, throttled=False)
    for n in range(5):
        now[0] = n * 1.5
        pace.observe(0.02, throttled=True)
    assert pace.window == 1 and pace._spacing() == pytest.approx(0.02 / 0.25)


def test_a_rate_limited_account_is_crawled_with_few_retries(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    """Against 25 requests per second, 8 at a time with 20 ms replies would ask for ~400/s."""

    def crawl(adaptive: bool) -> tuple[int, int, list[str]]:
        sb = make_sandbox(chats=2000, latency_ms=20, rate_limit=25)
        pace = Pace(8, adaptive=adaptive)
        retry = RetryPolicy(budget_seconds=60, base_delay=0.05, max_delay=0.5)
        with WawpClient(sb.url, "INST00000001", Secret(token), retry=retry, pace=pace) as client:
            crawler = Crawler(client, CrawlOptions(page_size=20, concurrency=8, warmup_seconds=0))
            jids = [c.jid for p in crawler.pages() for c in p.chats]
        assert sorted(jids) == sorted(ground_truth(sb))
        return sb.throttled, crawler.stats.requests, jids

    fixed_429s, _, _ = crawl(adaptive=False)
    paced_429s, requests, _ = crawl(adaptive=True)
    assert paced_429s < fixed_429s * 0.7, (paced_429s, fixed_429s)
    assert paced_429s < requests / 5


@pytest.fixture
def many(
    make_sandbox: Callable[..., Sandbox], meili: MeiliServer, index_name: str, tmp_path: Path
) -> Callable[..., Any]:
    def make(instances: int, extra: str = "", bad: str | None = None) -> tuple[Sandbox, Any]:
        tokens = {
            f"MANY{n:08d}": register_secret(f"many-token-{n:04d}-abcdefgh")
            for n in range(instances)
        }
        sb = make_sandbox(chats=120, instances=tokens, latency_ms=10)
        blocks = "".join(
            f'\n[[wawp.instances]]\nid = "{i}"\naccess_token = "{t}"\n'
            for i, t in {**tokens, **({bad: "wrong-token-123"} if bad else {})}.items()
        )
        path = tmp_path / "many.toml"
        path.write_text(f"[wawp]\nwarmup_seconds = 0\npage_size = 20\n{extra}\n{blocks}")
        env = explorer_env(sb, "unused", meili.url, meili.master_key, index_name)
        env.pop("WAWP_INSTANCE_ID")
        env.pop("WAWP_ACCESS_TOKEN")
        return sb, load_config(path, env=env)

    return make


def test_instances_are_crawled_in_parallel_under_one_budget(
    many: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg = many(6, "concurrency = 2\ntotal_concurrency = 3\n")
    report = reindex(cfg)
    assert report.swapped
    assert 2 <= sb.max_in_flight <= 3  # parallel, and never over the total
    client = meilisearch.Client(meili.url, meili.master_key)
    docs = client.index(index_name).get_documents(
        {"limit": 10_000, "fields": ["instance_id", "jid"]}
    )
    by_instance: dict[str, set[str]] = {}
    for d in docs.results:
        by_instance.setdefault(d.instance_id, set()).add(d.jid)
    assert by_instance == {i: ground_truth(sb, i) for i in sb.stores}
    assert report.pace is not None and report.pace.history[0] == (0.0, 3)


def test_one_failing_instance_fails_the_run_and_names_the_others(
    many: Callable[..., Any], meili: MeiliServer, index_name: str
) -> None:
    sb, cfg = many(4, "total_concurrency = 4\n", bad="MANY00000002")
    with pytest.raises(WawpAuthError) as info:
        reindex(cfg)
    message = str(info.value)
    assert "MANY00000002" in message and "other instances:" in message
    assert all(f"MANY0000000{n}" in message for n in (0, 1, 3))
    client = meilisearch.Client(meili.url, meili.master_key)
    with pytest.raises(meilisearch.errors.MeilisearchApiError):
        client.get_index(index_name)  # nothing was swapped live


def test_growth_stops_just_under_a_measured_rate_limit_until_it_is_time_to_probe() -> None:
    now = [0.0]
    pace = Pace(8, clock=lambda: now[0])
    for n in range(40):  # 40 requests/s of 20 ms replies: a window of 0.8 is the limit
        now[0] = n * 0.025
        pace.observe(0.02, throttled=False)
    pace.observe(0.02, throttled=True)
    assert pace._window == pytest.approx(0.72)
    for step in range(1, 19):  # 9 calm seconds: up to just under the limit, and no further
        now[0] = 1.0 + step * 0.5
        pace.observe(0.02, throttled=False)
    assert pace._window == pytest.approx(0.76)
    for step in range(1, 5):  # after 10 s without a 429, it probes again
        now[0] = 11.0 + step * 0.5
        pace.observe(0.02, throttled=False)
    assert pace._window > 0.8
