"""The crawler against the sandbox over real HTTP: every chat exactly once, whatever happens."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from explorer.dev.sandbox import Sandbox
from explorer.errors import (
    CrawlStalled,
    WawpAuthError,
    WawpNotFound,
    WawpProtocolError,
    WawpRequestError,
    WawpUnavailable,
)
from explorer.records.chats import Chat
from explorer.secrets import Secret
from explorer.source.crawl import Checkpoint, Crawler, CrawlOptions, PageSource
from explorer.source.wawp import RetryPolicy, WawpClient
from tests.conftest import ground_truth

INST = "INST00000001"
FAST_RETRY = RetryPolicy(budget_seconds=20, base_delay=0.01, max_delay=0.1)
OPEN: list[WawpClient] = []


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while OPEN:
        OPEN.pop().close()


def client_for(sb: Sandbox, token: str, **kw: Any) -> WawpClient:
    kw.setdefault("retry", FAST_RETRY)
    kw.setdefault("timeout", 5.0)
    client = WawpClient(sb.url, kw.pop("instance", INST), Secret(token), **kw)
    OPEN.append(client)
    return client


def crawl(client: WawpClient, **options: Any) -> tuple[list[Chat], Crawler]:
    options.setdefault("page_size", 50)
    options.setdefault("warmup_seconds", 0)
    crawler = Crawler(client, CrawlOptions(**options))
    chats = [c for page in crawler.pages() for c in page.chats]
    return chats, crawler


def assert_exact(chats: list[Chat], sb: Sandbox) -> None:
    jids = [c.jid for c in chats]
    assert len(jids) == len(set(jids)), "duplicates handed on"
    assert set(jids) == ground_truth(sb)


@pytest.mark.parametrize("shape", ["webjs", "noweb", "gows"])
@pytest.mark.parametrize("envelope", ["bare", "data", "indexed"])
def test_every_shape_and_envelope_is_crawled_exactly(
    make_sandbox: Callable[..., Sandbox], token: str, shape: str, envelope: str
) -> None:
    sb = make_sandbox(chats=537, shape=shape, envelope=envelope)
    chats, crawler = crawl(client_for(sb, token))
    assert_exact(chats, sb)
    assert all(c.instance_id == INST for c in chats)
    assert crawler.stats.skipped == 1  # status@broadcast
    assert crawler.stats.malformed == 0
    assert crawler.stats.duplicates == 0 and crawler.stats.overlap_rereads > 0
    assert {c.engine_shape for c in chats} == {shape}
    kinds = {c.chat_type for c in chats}
    assert kinds == {"individual", "group", "channel", "broadcast"}


def test_every_request_sends_limit_offset_and_sort(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=120)
    seen: list[httpx.Request] = []
    real = httpx.HTTPTransport()

    class Spy(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return real.handle_request(request)

        def close(self) -> None:
            real.close()

    crawl(client_for(sb, token, transport=Spy()))
    for req in seen:
        q = req.url.params
        assert {"limit", "offset", "sortBy", "sortOrder", "instance_id", "access_token"} <= set(q)
        assert q["sortBy"] == "id"
        assert req.headers["access-token"] == token


def test_several_instances_carry_their_ids(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=80, instances={INST: token, "INST00000002": token + "2"})
    a, _ = crawl(client_for(sb, token))
    b, _ = crawl(client_for(sb, token + "2", instance="INST00000002"))
    assert {c.instance_id for c in a} == {INST} and {c.instance_id for c in b} == {"INST00000002"}
    assert {c.jid for c in b} == ground_truth(sb, "INST00000002")
    assert {c.jid for c in a} != {c.jid for c in b}


@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_concurrency_keeps_pages_in_order(
    make_sandbox: Callable[..., Sandbox], token: str, concurrency: int
) -> None:
    sb = make_sandbox(chats=700, shape="gows", jitter_ms=15)
    crawler = Crawler(client_for(sb, token), CrawlOptions(page_size=40, concurrency=concurrency))
    keys = []
    for page in crawler.pages():
        keys += [c.jid for c in page.chats]
    assert keys == sorted(keys) and set(keys) == ground_truth(sb)


# -- faults -------------------------------------------------------------------------------


def test_5xx_errors_are_retried_per_page(make_sandbox: Callable[..., Sandbox], token: str) -> None:
    sb = make_sandbox(chats=600, error_rate=0.3, fault_seed=5)
    chats, crawler = crawl(client_for(sb, token))
    assert_exact(chats, sb)
    assert crawler.stats.retries > 0


def test_429_bursts_honour_retry_after(make_sandbox: Callable[..., Sandbox], token: str) -> None:
    sb = make_sandbox(chats=400, burst_every=4, burst_length=2, retry_after=0.2)
    sleeps: list[float] = []
    client = client_for(sb, token, sleep=lambda s: (sleeps.append(s), threading.Event().wait(s)))
    chats, _ = crawl(client, concurrency=1)
    assert_exact(chats, sb)
    assert sleeps and all(s == pytest.approx(0.2) for s in sleeps)


@pytest.mark.parametrize("mode", ["202", "422"])
def test_cold_start_is_waited_out(
    make_sandbox: Callable[..., Sandbox], token: str, mode: str
) -> None:
    sb = make_sandbox(chats=300, cold_start=1.0, cold_mode=mode)
    chats, crawler = crawl(client_for(sb, token))
    assert_exact(chats, sb)
    assert crawler.stats.retries > 0


def test_empty_first_page_waits_for_warm_up(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=300, cold_start=1.0, cold_mode="empty")
    chats, crawler = crawl(client_for(sb, token), warmup_seconds=10, warmup_interval=0.2)
    assert_exact(chats, sb)
    assert crawler.stats.warmup_waits > 0


def test_empty_account_is_accepted_after_warm_up(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=0)
    chats, crawler = crawl(client_for(sb, token), warmup_seconds=0.5, warmup_interval=0.1)
    assert chats == [] and crawler.stats.warmup_waits >= 2


def test_timeouts_from_latency_spikes_are_retried(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=300, spike_rate=0.25, spike_ms=800, fault_seed=2)
    chats, crawler = crawl(client_for(sb, token, timeout=0.3), concurrency=4)
    assert_exact(chats, sb)
    assert crawler.stats.retries > 0


def test_page_size_cap_is_detected(make_sandbox: Callable[..., Sandbox], token: str) -> None:
    sb = make_sandbox(chats=500, max_limit=30)
    chats, crawler = crawl(client_for(sb, token), page_size=100, overlap=10)
    assert_exact(chats, sb)
    assert crawler.stats.page_size == 30


def test_uppercase_desc_quirk_is_detected(
    make_sandbox: Callable[..., Sandbox], token: str, caplog: pytest.LogCaptureFixture
) -> None:
    sb = make_sandbox(chats=300, desc_quirk=True)
    sent: list[str] = []
    real = httpx.HTTPTransport()

    class Spy(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(request.url.params["sortOrder"])
            return real.handle_request(request)

        def close(self) -> None:
            real.close()

    with caplog.at_level(logging.WARNING):
        chats, crawler = crawl(client_for(sb, token, transport=Spy()), sort_order="DESC")
    assert_exact(chats, sb)
    assert crawler.stats.order == "asc (server ignored sortOrder=DESC)"
    assert "falling back to sortOrder=asc" in caplog.text
    assert sent[0] == "DESC" and set(sent[1:]) == {"asc"}  # asks for what it honours


def test_descending_order_is_followed(make_sandbox: Callable[..., Sandbox], token: str) -> None:
    sb = make_sandbox(chats=300)
    chats, crawler = crawl(client_for(sb, token), sort_order="desc")
    assert_exact(chats, sb)
    assert [c.jid for c in chats] == sorted((c.jid for c in chats), reverse=True)


@pytest.mark.parametrize("churn", [1, 3, 12, 40])
def test_churn_misses_no_chat_that_lived_through_the_crawl(
    make_sandbox: Callable[..., Sandbox], token: str, churn: int
) -> None:
    sb = make_sandbox(chats=1500, churn=churn, fault_seed=churn)
    before = ground_truth(sb)
    chats, crawler = crawl(client_for(sb, token), page_size=50, overlap=5, concurrency=4)
    after = ground_truth(sb)
    jids = [c.jid for c in chats]
    assert len(jids) == len(set(jids))
    survivors = before & after
    assert survivors <= set(jids), f"missed {len(survivors - set(jids))} chats"
    store = sb.store(INST)
    ever = {"@".join(store.gen.user_and_server(i)) for i in range(store.next_index)}
    assert set(jids) <= ever  # nothing invented


def test_resume_from_a_checkpoint_completes_the_set(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=800)
    first = Crawler(client_for(sb, token), CrawlOptions(page_size=50, warmup_seconds=0))
    got: list[str] = []
    checkpoint: Checkpoint | None = None
    for n, page in enumerate(first.pages()):
        got += [c.jid for c in page.chats]
        checkpoint = page.checkpoint
        if n == 6:
            break  # as if the process died here
    assert checkpoint is not None
    restored = Checkpoint.from_json(checkpoint.to_json())
    second = Crawler(client_for(sb, token), CrawlOptions(page_size=50, warmup_seconds=0))
    for page in second.pages(resume=restored):
        got += [c.jid for c in page.chats]
    assert len(got) == len(set(got)) and set(got) == ground_truth(sb)
    assert second.stats.requests < 800 / 45  # it did not start over


def test_resume_after_deletions_steps_back(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=600)
    first = Crawler(client_for(sb, token), CrawlOptions(page_size=50, warmup_seconds=0))
    got: list[str] = []
    pages = first.pages()
    for _ in range(5):
        page = next(pages)
        got += [c.jid for c in page.chats]
    pages.close()
    resume_at = page.checkpoint
    store = sb.store(INST)
    store.delete(sorted(got)[:120])  # shift every later offset left by 120
    second = Crawler(client_for(sb, token), CrawlOptions(page_size=50, warmup_seconds=0))
    for page in second.pages(resume=resume_at):
        got += [c.jid for c in page.chats]
    assert len(got) == len(set(got))
    assert ground_truth(sb) <= set(got)
    assert second.stats.step_backs > 0


# -- errors that must not be retried -----------------------------------------------------


def test_bad_token_is_not_retried(sandbox: Sandbox) -> None:
    client = client_for(sandbox, "wrong-token-abcdef")
    with pytest.raises(WawpAuthError) as exc:
        crawl(client)
    assert client.requests_made == 1
    assert "401" in str(exc.value) and INST in str(exc.value)
    assert "wrong-token-abcdef" not in str(exc.value)


def test_unknown_instance_is_not_retried(sandbox: Sandbox, token: str) -> None:
    client = client_for(sandbox, token, instance="NOSUCH")
    with pytest.raises(WawpNotFound, match="NOSUCH"):
        crawl(client)
    assert client.requests_made == 1


def test_bad_request_is_not_retried(sandbox: Sandbox, token: str) -> None:
    client = client_for(sandbox, token)
    with pytest.raises(WawpRequestError, match="sortBy must be one of"):
        client.chats_page(offset=0, limit=10, sort_by="bogus")
    assert client.requests_made == 1


def test_retry_budget_gives_up_with_a_clear_message(
    make_sandbox: Callable[..., Sandbox], token: str
) -> None:
    sb = make_sandbox(chats=10, error_rate=1.0)
    client = client_for(sb, token, retry=RetryPolicy(budget_seconds=0.5, base_delay=0.05))
    with pytest.raises(WawpUnavailable, match=r"gave up after \d+ attempts.*HTTP 50[02]"):
        crawl(client)


# -- the token never leaks -----------------------------------------------------------------


def test_token_never_reaches_logs_errors_or_tracebacks(
    make_sandbox: Callable[..., Sandbox],
    token: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sb = make_sandbox(chats=200, error_rate=0.3, burst_every=5, retry_after=0.01)
    with caplog.at_level(logging.DEBUG):
        chats, _ = crawl(client_for(sb, token))
        bad = client_for(sb, token, instance="NOSUCH")
        try:
            crawl(bad)
        except WawpNotFound as exc:
            tb = "".join(traceback.format_exception(exc))
    assert chats and "GET /v2/chats: 200" in caplog.text  # every request is logged...
    # ...by its path, and httpx's own lines (the whole URL) with the token masked
    assert "access_token=" not in caplog.text.replace("access_token=***", "")
    out = capsys.readouterr()
    for text in (caplog.text, tb, out.out, out.err, repr(bad), repr(chats[:3])):
        assert token not in text


# -- narrow edge cases a real server rarely shows (MockTransport) ---------------------------


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> WawpClient:
    kw.setdefault("retry", RetryPolicy(budget_seconds=2, base_delay=0.01, max_delay=0.02))
    return WawpClient(
        "http://wawp.test",
        "MOCK",
        Secret("mock-token-123"),
        transport=httpx.MockTransport(handler),
        **kw,
    )


def ids_page(start: int, n: int) -> list[dict[str, str]]:
    return [{"id": f"{1000 + i}@c.us"} for i in range(start, start + n)]


def test_server_ignoring_offset_fails_loudly() -> None:
    client = mock_client(lambda req: httpx.Response(200, json=ids_page(0, 50)))
    with pytest.raises(CrawlStalled, match="ignore offset"):
        crawl(client, page_size=50)


def test_unsorted_pages_fail_loudly() -> None:
    client = mock_client(
        lambda req: httpx.Response(200, json=[{"id": "9@c.us"}, {"id": "1@c.us"}, {"id": "5@c.us"}])
    )
    with pytest.raises(WawpProtocolError, match="ignores sortBy=id"):
        crawl(client, page_size=50)


@given(st.lists(st.sampled_from(["1@c.us", "2@c.us", "3@c.us", "4@c.us"]), min_size=1, max_size=8))
def test_a_page_passes_exactly_when_its_ids_are_sorted_one_way_or_the_other(ids: list[str]) -> None:
    distinct = [k for n, k in enumerate(ids) if n == 0 or k != ids[n - 1]]
    pairs = list(zip(distinct, distinct[1:], strict=False))
    one_way = all(a < b for a, b in pairs) or all(a > b for a, b in pairs)
    page = [{"id": i} for i in ids]
    client = mock_client(
        lambda req: httpx.Response(200, json=page if req.url.params["offset"] == "0" else [])
    )
    if one_way:
        crawl(client)
    else:
        with pytest.raises(WawpProtocolError, match="ignores sortBy=id"):
            crawl(client)


@pytest.mark.parametrize(
    "body",
    [b'[{"id": "1@c.us"', b"<html>Bad gateway</html>", b'{"weird": true}', b'"string"'],
)
def test_unusable_bodies_under_200_are_protocol_errors(body: bytes) -> None:
    client = mock_client(lambda req: httpx.Response(200, content=body))
    with pytest.raises(WawpProtocolError, match="unexpected reply"):
        crawl(client)
    assert client.requests_made == 3


@pytest.mark.parametrize(
    "body",
    [
        {"success": False, "message": "upstream failed"},
        {"wawp_upstream_error": "engine down"},
        {"error": "Session status is not as expected", "status": "STARTING"},
    ],
)
def test_error_shapes_under_200_are_retried(body: dict[str, Any]) -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        if len(calls) < 3:
            return httpx.Response(200, json=body)
        return httpx.Response(200, json=ids_page(0, 3) if req.url.params["offset"] == "0" else [])

    chats, _ = crawl(mock_client(handler))
    assert len(chats) == 3 and len(calls) >= 4


def test_invalid_session_under_200_is_not_retried() -> None:
    client = mock_client(
        lambda req: httpx.Response(
            200, json={"code": "invalid_session", "message": "Instance is not connected"}
        )
    )
    with pytest.raises(WawpNotFound, match="not connected"):
        crawl(client)
    assert client.requests_made == 1


def test_malformed_chats_are_counted_not_fatal() -> None:
    junk: list[Any] = [
        {"id": "1@c.us"},
        "junk",
        {"name": "no id"},
        {"id": "2@nowhere"},
        {"id": "3@c.us"},
    ]
    client = mock_client(
        lambda req: httpx.Response(200, json=junk if req.url.params["offset"] == "0" else [])
    )
    chats, crawler = crawl(client)
    assert [c.jid for c in chats] == ["1@c.us", "3@c.us"]
    assert crawler.stats.malformed == 3 and len(crawler.stats.malformed_samples) == 3


def test_retry_after_http_date_is_understood() -> None:
    from explorer.source.wawp import parse_retry_after

    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize("header", ["0", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_retry_after_zero_or_past_never_waits_less_than_the_backoff(header: str) -> None:
    calls = {"n": 0}
    slept: list[float] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 3:
            return httpx.Response(
                429, json={"message": "slow down"}, headers={"Retry-After": header}
            )
        return httpx.Response(200, json=[])

    policy = RetryPolicy(budget_seconds=60, base_delay=0.5, max_delay=4)
    client = mock_client(handler, retry=policy, sleep=slept.append)
    client.chats_page(offset=0, limit=10)
    assert len(slept) == 3
    # backoff with jitter: 0.5 * 2**attempt * [0.5, 1]
    assert all(s >= 0.25 * 2**n for n, s in enumerate(slept)), slept


@pytest.mark.parametrize("cap", [1, 2, 3])
def test_tiny_page_caps_and_zero_overlap_still_crawl_everything(
    make_sandbox: Callable[..., Sandbox], token: str, cap: int
) -> None:
    sb = make_sandbox(chats=60, max_limit=cap)
    with WawpClient(sb.url, "INST00000001", Secret(token)) as client:
        crawler = Crawler(client, CrawlOptions(page_size=50, overlap=5, warmup_seconds=0))
        jids = [c.jid for p in crawler.pages() for c in p.chats]
    assert sorted(jids) == sorted(ground_truth(sb)) and len(jids) == len(set(jids))
    assert crawler.overlap == (0 if cap == 1 else 1)
    with WawpClient(sb.url, "INST00000001", Secret(token)) as client:
        plain = Crawler(client, CrawlOptions(page_size=10, overlap=0, warmup_seconds=0))
        assert sorted(c.jid for p in plain.pages() for c in p.chats) == sorted(ground_truth(sb))


class _Counting:
    """A mock Wawp server answering pages of ``ids_page`` after ``delay`` seconds, counting
    what the client has in flight."""

    def __init__(
        self, total: int, delay: float, bad_once: int | None = None, name: str = ""
    ) -> None:
        self.total, self.delay, self.bad_once, self.name = total, delay, bad_once, name
        self.lock = threading.Lock()
        self.in_flight = self.peak = 0
        self.offsets: list[int] = []

    def __call__(self, req: httpx.Request) -> httpx.Response:
        offset, limit = int(req.url.params["offset"]), int(req.url.params["limit"])
        with self.lock:
            self.offsets.append(offset)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            bad = offset == self.bad_once
            if bad:
                self.bad_once = None
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
        if bad:
            return httpx.Response(200, content=b"<html>Bad gateway</html>")
        page = ids_page(offset, max(0, min(limit, self.total - offset)))
        return httpx.Response(200, json=[{**chat, "name": self.name} for chat in page])


def read_slowly(source: PageSource, pause: float, server: _Counting) -> tuple[list[str], int]:
    """Every id the walk hands on, and the most pages requested but not yet read."""
    ids: list[str] = []
    ahead = 0
    for read, (_, items) in enumerate(source.walk(0), start=1):
        ids += [it["id"] for it in items]
        time.sleep(pause)
        with server.lock:
            ahead = max(ahead, len(server.offsets) - read)
    source.close()
    return ids, ahead


def test_the_window_stays_full_while_the_reader_is_busy() -> None:
    server = _Counting(total=300, delay=0.02)
    source = PageSource(mock_client(server), page_size=10, overlap=0, sort_by="id",
                        sort_order="asc", concurrency=4)  # fmt: skip
    ids, ahead = read_slowly(source, 0.04, server)
    assert ids == [it["id"] for it in ids_page(0, 300)]
    assert server.peak == 4  # never more than the window in flight...
    # ...and it stays full while the reader works: pages wait for it, up to a window's worth
    assert ahead == 4 + 4


@pytest.mark.parametrize("name", ["", "x" * 300])  # the short page weighs kilobytes too
def test_requests_stop_where_the_list_ends(name: str) -> None:
    server = _Counting(total=95, delay=0.02, name=name)
    source = PageSource(mock_client(server), page_size=10, overlap=0, sort_by="id",
                        sort_order="asc", concurrency=4)  # fmt: skip
    ids, _ = read_slowly(source, 0.03, server)
    assert len(ids) == 95
    # The short page at 90 ends the list: at most the requests already in flight follow it.
    assert max(server.offsets) <= 90 + 3 * 10 and len(server.offsets) <= 10 + 3


def test_one_request_at_a_time_asks_for_nothing_past_a_short_page() -> None:
    server = _Counting(total=95, delay=0.01, name="x" * 300)
    source = PageSource(mock_client(server), page_size=10, overlap=0, sort_by="id",
                        sort_order="asc", concurrency=1)  # fmt: skip
    ids, _ = read_slowly(source, 0.02, server)
    assert len(ids) == 95 and sorted(server.offsets) == list(range(0, 100, 10))


def test_a_bad_body_on_a_page_fetched_ahead_goes_through_the_retries() -> None:
    server = _Counting(total=45, delay=0.01, bad_once=20)
    client = mock_client(server)
    source = PageSource(client, page_size=10, overlap=0, sort_by="id", sort_order="asc",
                        concurrency=4)  # fmt: skip
    ids, _ = read_slowly(source, 0, server)
    assert ids == [it["id"] for it in ids_page(0, 45)]
    assert server.offsets.count(20) == 2 and client.retries_made == 1


class _AtOnce:
    """A pool whose requests finish before ``submit`` returns: their done callbacks then run
    while the source is still filling its window (what a loaded machine does now and then)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        fut.set_result(fn(*args))
        return fut

    def shutdown(self, **_: Any) -> None:
        pass


def test_pages_stay_in_order_when_requests_finish_at_once() -> None:
    server = _Counting(total=300, delay=0)
    source = PageSource(mock_client(server), page_size=10, overlap=0, sort_by="id",
                        sort_order="asc", concurrency=4)  # fmt: skip
    source._pool = _AtOnce()  # type: ignore[assignment]
    ids, _ = read_slowly(source, 0, server)
    assert ids == [it["id"] for it in ids_page(0, 300)]
    assert len(server.offsets) == len(set(server.offsets))  # no page asked for twice
