"""The `explorer` command: a thin click layer over the library.

Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error, 3 refused by a
safety check, 4 `audit`/`zombies` found something (for monitoring). Expected failures
print one line; only bugs print a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from explorer import __version__

# Heavy modules (the Meilisearch client, tqdm) are imported inside the commands that need
# them, so `explorer search` starts fast; these few are cheap (about 12 ms together).
from explorer.chats import CHAT_TYPES
from explorer.config import Config, load_config
from explorer.dev.sandbox_options import (
    COLD_MODES,
    DEFAULT_INSTANCE,
    DEFAULT_TOKEN,
    ENVELOPES,
    SHAPES,
)
from explorer.errors import ExplorerError, MeiliError, WawpError
from explorer.secrets import redact

if TYPE_CHECKING:
    from explorer.reindex import Progress


class ExplorerGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        from explorer.procs import stop_signals

        try:
            with stop_signals():  # SIGTERM and SIGHUP stop us as cleanly as Ctrl-C
                return super().invoke(ctx)
        except ExplorerError as exc:
            _fail(ctx, f"Error: {redact(str(exc))}", exc.exit_code)
        except click.ClickException as exc:
            if not _json_logs(ctx):
                raise
            _fail(ctx, f"Error: {exc.format_message()}", exc.exit_code)
        except KeyboardInterrupt:
            _fail(ctx, "Interrupted.", 130)


def _json_logs(ctx: click.Context) -> bool:
    obj = ctx.find_root().obj
    return isinstance(obj, dict) and obj.get("log_format") == "json"


def _fail(ctx: click.Context, message: str, code: int) -> None:
    """The last line on stderr: text, or with --log-format json one JSON object like the logs."""
    if _json_logs(ctx):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        entry = {"ts": stamp, "level": "error", "logger": "explorer.cli", "message": message,
                 "exit_code": code}  # fmt: skip
        click.echo(json.dumps(entry, ensure_ascii=False), err=True)
    else:
        click.echo(message, err=True)
    ctx.exit(code)


def get_config(ctx: click.Context) -> Config:
    obj = ctx.find_root().obj
    if obj.get("config") is None:
        obj["config"] = load_config(obj["path"], overrides=obj["overrides"])
    cfg: Config = obj["config"]
    return cfg


@click.group(cls=ExplorerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="explorer")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML config file (default: $EXPLORER_CONFIG, else ./explorer.toml if present).",
)
@click.option("--base-url", help="Wawp API base URL [env WAWP_BASE_URL].")
@click.option(
    "--instance",
    "instances",
    multiple=True,
    help="Wawp instance id; repeat for several [env WAWP_INSTANCE_ID, comma-separated].",
)
@click.option("--meili-url", help="Meilisearch URL [env MEILI_URL].")
@click.option("--index", help="Name of the live index [env EXPLORER_INDEX].")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines for people, or JSON lines for machines (stderr).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: str | None,
    base_url: str | None,
    instances: tuple[str, ...],
    meili_url: str | None,
    index: str | None,
    verbose: int,
    log_format: str,
) -> None:
    """Make every WhatsApp chat of a business searchable.

    Crawls the Wawp API into a Meilisearch index. Secrets (WAWP_ACCESS_TOKEN,
    MEILI_API_KEY) are read from the environment or the config file, never from flags,
    so they stay out of shell history and `ps`.

    \b
    Exit codes: 0 ok, 1 runtime failure, 2 usage or config error,
                3 refused by a safety check, 4 audit/zombies found something.
    """
    from explorer.logs import setup_logging

    setup_logging({0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG), log_format)
    ctx.obj = {
        "path": config_path,
        "overrides": {
            "base_url": base_url,
            "instances": instances,
            "meili_url": meili_url,
            "index": index,
        },
        "config": None,
        "log_format": log_format,
    }


@cli.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Try every configured Wawp instance and the Meilisearch server.

    Prints OK or the exact problem per target; exits 0 only if all are OK.
    """
    from explorer.crawl import open_client
    from explorer.index import check_server
    from explorer.wawp import RetryPolicy

    cfg = get_config(ctx)
    instances = cfg.require_instances()
    failures = 0
    rows: list[tuple[str, str, str, str]] = []
    retry = RetryPolicy(budget_seconds=3.0, max_delay=1.0)  # a check answers in seconds
    for inst in instances:
        name = inst.id + (f" ({inst.label})" if inst.label else "")
        try:
            with open_client(cfg, inst, timeout=min(cfg.wawp.timeout, 10.0), retry=retry) as client:
                info = client.session_info()
            status = str(info.get("status", "unknown"))
            me = info.get("me") if isinstance(info.get("me"), dict) else None
            who = f", account {me.get('id')}" if me and me.get("id") else ""
            if status == "WORKING":
                rows.append(("wawp", name, "OK", f"session WORKING{who}"))
            else:
                failures += 1
                rows.append(("wawp", name, "FAIL", f"session is {status}, not WORKING{who}"))
        except WawpError as exc:
            failures += 1
            rows.append(("wawp", name, "FAIL", str(exc)))
    try:
        rows.append(("meilisearch", cfg.meilisearch.url, "OK", check_server(cfg.meilisearch)))
    except MeiliError as exc:
        failures += 1
        rows.append(("meilisearch", cfg.meilisearch.url, "FAIL", str(exc)))
    width = max(len(r[1]) for r in rows)
    for kind, target, verdict, detail in rows:
        colour = "green" if verdict == "OK" else "red"
        click.echo(
            f"{kind:<12} {target:<{width}}  {click.style(f'{verdict:<4}', fg=colour)}  "
            f"{redact(detail)}"
        )
    if failures:
        ctx.exit(1)


def _progress_bars(quiet: bool) -> tuple[Progress | None, Callable[[], None]]:
    """tqdm bars on stderr, only for a person watching a terminal."""
    if quiet or not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm

    bars: dict[str, tqdm[Any]] = {}

    def bar(key: str, desc: str, unit: str) -> tqdm[Any]:
        if key not in bars:
            bars[key] = tqdm(desc=desc, unit=unit, file=sys.stderr, position=len(bars))
        return bars[key]

    def progress(event: str, target: str, n: int) -> None:
        if event == "chats":
            bar(f"c:{target}", f"crawl {target}", " chats").update(n)
        elif event == "sent":
            bar("sent", "indexing", " docs").update(n)
        elif event == "waiting":
            bar("sent", "indexing", " docs").set_postfix_str("waiting for Meilisearch")

    def close() -> None:
        for b in bars.values():
            b.close()

    return progress, close


@cli.command("reindex")
@click.option("--force", is_flag=True, help="Swap even if the safety gate refuses.")
@click.option("--restart", is_flag=True, help="Discard an unfinished build instead of resuming it.")
@click.option(
    "--dry-run", is_flag=True, help="Crawl and compare with the live index; write nothing."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.pass_context
def reindex_cmd(
    ctx: click.Context, force: bool, restart: bool, dry_run: bool, quiet: bool, as_json: bool
) -> None:
    """Rebuild the live index from Wawp without downtime.

    Builds <index>__build_<utc time>, verifies every task and the document count, and
    swaps it in atomically. Refuses (exit 3) to swap in an empty build or one smaller
    than reindex.min_ratio of the live index unless --force. After a crash or Ctrl-C the
    next run resumes the unfinished build.
    """
    from explorer.reindex import dry_run as run_dry
    from explorer.reindex import reindex as run_reindex

    cfg = get_config(ctx)
    progress, close = _progress_bars(quiet or as_json)
    try:
        if dry_run:
            report = run_dry(cfg, progress=progress)
        else:
            report = run_reindex(cfg, force=force, restart=restart, progress=progress)
    except KeyboardInterrupt:
        close()
        _fail(
            ctx,
            "Interrupted: the live index is untouched; the next `explorer reindex` resumes "
            "this build (--restart discards it).",
            130,
        )
    finally:
        close()
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        click.echo(report.summary())
        for sample in report.malformed_samples:
            click.echo(f"  malformed: {redact(sample)}", err=True)


@cli.command("sync")
@click.option(
    "--wait", default=10.0, show_default=True, help="Seconds to wait for a running reindex."
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON document.")
@click.pass_context
def sync_cmd(ctx: click.Context, wait: float, quiet: bool, as_json: bool) -> None:
    """Upsert recently active chats into the live index (safe to run every few minutes).

    Reads chats newest first and stops at the first page with nothing newer than the
    last sync. Never deletes and never touches settings. If a reindex is running it
    waits up to --wait seconds, then skips this round (exit 0).
    """
    from explorer.state import IndexBusy
    from explorer.sync import sync

    cfg = get_config(ctx)
    progress, close = _progress_bars(quiet or as_json)
    try:
        report = sync(cfg, wait=wait, progress=progress)
    except IndexBusy as exc:
        # Not a failure for cron: the next run catches up.
        click.echo(f"sync skipped: {exc}", err=True)
        return
    finally:
        close()
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        click.echo(report.summary())


@cli.command("settings")
@click.option("--check", "mode", flag_value="check", default=True, help="Show drift (default).")
@click.option("--apply", "mode", flag_value="apply", help="Make the live index match the code.")
@click.pass_context
def settings_cmd(ctx: click.Context, mode: str) -> None:
    """Compare the live index's settings with the ones in code (exit 1 on drift)."""
    from explorer.documents import INDEX_SETTINGS, settings_drift
    from explorer.index import IndexStore

    cfg = get_config(ctx)
    store = IndexStore(cfg.meilisearch)
    live = cfg.meilisearch.index
    if not store.exists(live):
        raise MeiliError(f"index {live!r} does not exist yet: run `explorer reindex`")
    drift = settings_drift(store.live_settings(live))
    if not drift:
        click.echo(f"{live}: settings match the code")
        return
    for key, (have, want) in drift.items():
        click.echo(f"{key}: live {json.dumps(have)} != code {json.dumps(want)}")
    if mode == "apply":
        store.apply_settings(live, {k: INDEX_SETTINGS[k] for k in drift})
        click.echo(f"{live}: applied {len(drift)} setting(s)")
        return
    ctx.exit(1)


def _instance_option(value: str) -> tuple[str, str]:
    iid, sep, token = value.partition(":")
    if not iid or not sep or not token:
        raise click.BadParameter(f"expected ID:TOKEN, got {value!r}")
    return iid, token


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, help="Port (0 picks a free one).")
@click.option(
    "--chats", default=1000, show_default=True, type=click.IntRange(0), help="Chats per instance."
)
@click.option("--seed", default=1, show_default=True, help="Seed of the synthetic data.")
@click.option(
    "--instance",
    "instances",
    multiple=True,
    metavar="ID:TOKEN",
    help=f"An instance and its token; repeatable [default {DEFAULT_INSTANCE}:{DEFAULT_TOKEN}].",
)
@click.option(
    "--shape",
    type=click.Choice(SHAPES),
    default="webjs",
    show_default=True,
    help="Chat objects as this WAHA engine returns them.",
)
@click.option(
    "--envelope",
    type=click.Choice(ENVELOPES),
    default="bare",
    show_default=True,
    help='bare: a JSON array; data: {"data": [...]}; indexed: {"0": {...}, ...}.',
)
@click.option(
    "--epoch", type=int, help="Unix time the activity timestamps count back from [default: now]."
)
@click.option("--latency-ms", default=0.0, show_default=True, help="Fixed delay per request.")
@click.option("--jitter-ms", default=0.0, show_default=True, help="Extra random delay, 0..N ms.")
@click.option(
    "--spike-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of requests delayed by --spike-ms more.",
)
@click.option("--spike-ms", default=0.0, show_default=True, help="Size of a latency spike.")
@click.option(
    "--error-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of chat-list requests answered 500 or 502.",
)
@click.option(
    "--burst-every",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Every N chat-list requests, a 429 burst (0: never).",
)
@click.option(
    "--burst-length",
    default=3,
    show_default=True,
    type=click.IntRange(1),
    help="429 answers per burst.",
)
@click.option(
    "--retry-after", default=1.0, show_default=True, help="Retry-After seconds sent with 429."
)
@click.option(
    "--cold-start",
    default=0.0,
    show_default=True,
    help="Seconds after start during which the session is not ready.",
)
@click.option(
    "--cold-mode",
    type=click.Choice(COLD_MODES),
    default="422",
    show_default=True,
    help="What a cold session answers: 202, 422 or an empty list.",
)
@click.option(
    "--churn",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Chats deleted and created per chat-list request.",
)
@click.option(
    "--max-limit",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Cap on page size; larger limits are silently cut (0: none).",
)
@click.option(
    "--desc-quirk",
    is_flag=True,
    help="Uppercase sortOrder=DESC sorts ascending, as upstream GOWS/WEBJS do.",
)
@click.option("--fault-seed", default=0, show_default=True, help="Seed of the fault randomness.")
@click.option(
    "--rate-limit",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Chat-list requests per second before 429 (0: no limit).",
)
@click.option(
    "--prerender",
    is_flag=True,
    help="Render every chat before serving, so serving costs little CPU (benchmarks).",
)
@click.option(
    "--lid-share",
    default=0.08,
    show_default=True,
    type=click.FloatRange(0, 0.76),
    help="Share of chats listed under a LID (a hidden number).",
)
@click.option(
    "--lid-known",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of LIDs whose number /v2/lids knows (the rest: pn null, not listed).",
)
@click.option(
    "--lid-pairs",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of known LID people who also have a chat under their phone JID.",
)
@click.option(
    "--merge/--no-merge",
    "merges",
    default=True,
    show_default=True,
    help="Whether NOWEB/GOWS list such a person once (WAHA merge); WEBJS never does.",
)
@click.option("--lids-404", is_flag=True, help="/v2/lids answers 404 (no LID routes).")
@click.option(
    "--lids-fail",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="The first N /v2/lids page requests answer 500.",
)
@click.option("--webhook-url", help="POST the events mutations imply here (explorer listen).")
@click.option("--webhook-hmac-key", envvar="EXPLORER_WEBHOOK_HMAC_KEY",
              help="Sign them as WAHA does [env EXPLORER_WEBHOOK_HMAC_KEY].")  # fmt: skip
@click.option("--webhook-duplicates", default=0.0, type=click.FloatRange(0, 1),
              help="Share of events sent twice.")  # fmt: skip
@click.option("--webhook-delay-ms", default=0.0, type=click.FloatRange(0),
              help="Random delay before each event, 0..N ms.")  # fmt: skip
@click.option("--webhook-reorder", default=0.0, type=click.FloatRange(0, 1),
              help="Share of events sent after the next one.")  # fmt: skip
def sandbox(host: str, port: int, instances: tuple[str, ...], **options: Any) -> None:
    """Run a Wawp-compatible sandbox server with synthetic chats.

    Serves GET /v2/chats, /v2/lids (list, count, one LID, by number) and
    /v2/session/info like Wawp, plus GET /_sandbox/ids (the JIDs a complete, merged index
    holds; ?format=json for LIDs, phones and listed ids) and POST /_sandbox/mutate (add,
    delete, rename, touch chats, learn LIDs). Faults are off unless asked for. Runs until
    Ctrl-C.
    """
    from explorer.dev.sandbox import Sandbox
    from explorer.dev.sandbox_options import SandboxOptions

    pairs = dict(_instance_option(v) for v in instances) or {DEFAULT_INSTANCE: DEFAULT_TOKEN}
    try:
        sb = Sandbox(SandboxOptions(instances=pairs, **options))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if sb.options.prerender:
        click.echo(f"Rendering {options['chats']:,} chats per instance before serving...")
        for store in sb.stores.values():
            store.prerender()
    server = sb.bind(host, port)
    first = next(iter(pairs))
    click.echo(
        f"Wawp sandbox on {sb.url}: {options['chats']} chats per instance, "
        f"shape {options['shape']}, envelope {options['envelope']}\n"
        "Point explorer at it:\n"
        f"  export WAWP_BASE_URL={sb.url}\n"
        f"  export WAWP_INSTANCE_ID={','.join(pairs)}\n"
        f"  export WAWP_ACCESS_TOKEN={pairs[first]}   # the sandbox's own token\n"
        "Ctrl-C stops it."
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@cli.command("search")
@click.argument("query", required=False, default="")
@click.option("--type", "chat_type", type=click.Choice(CHAT_TYPES), help="Only this kind of chat.")
@click.option("--groups", is_flag=True, help="Only groups (--type group).")
@click.option("--individuals", is_flag=True, help="Only 1:1 chats (--type individual).")
@click.option("--instance", "instance", help="Only chats of this instance (id or label).")
@click.option("--archived/--not-archived", default=None, help="Only archived / unarchived chats.")
@click.option("--pinned/--not-pinned", default=None, help="Only pinned / unpinned chats.")
@click.option("--muted/--not-muted", default=None, help="Only muted / unmuted chats.")
@click.option(
    "--number-hidden/--number-known",
    default=None,
    help="Only people whose number a LID hides (unresolved) / the others.",
)
@click.option(
    "--inactive-days",
    type=click.IntRange(0),
    help="Chats with no activity for N days (or none recorded): the zombie list.",
)
@click.option("--active-since", metavar="DATE", help="Chats active since DATE (YYYY-MM-DD, UTC).")
@click.option(
    "--sort", "sort", multiple=True, metavar="ATTR[:asc|desc]",
    help="Sort by last_activity, name or display_name, e.g. last_activity:desc.",
)  # fmt: skip
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
@click.option(
    "--json", "as_json", is_flag=True, help="One stable JSON document (see docs/schema.md)."
)
@click.pass_context
def search_cmd(
    ctx: click.Context,
    query: str,
    chat_type: str | None,
    groups: bool,
    individuals: bool,
    instance: str | None,
    archived: bool | None,
    pinned: bool | None,
    muted: bool | None,
    number_hidden: bool | None,
    inactive_days: int | None,
    active_since: str | None,
    sort: tuple[str, ...],
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Find chats by name (typos, accents, any script), phone number in any format, or JID.

    An empty QUERY lists chats by the filters alone.

    \b
    Examples:
      explorer search "ahmed hasan"
      explorer search "+20 123 456 7890"
      explorer search --groups --inactive-days 90 --sort last_activity:asc
    """
    from explorer.errors import QueryError
    from explorer.query import Filters, Searcher

    asked = {
        f"--type {chat_type}": chat_type,
        "--groups": "group" if groups else None,
        "--individuals": "individual" if individuals else None,
    }
    chosen = {flag: kind for flag, kind in asked.items() if kind}
    if len(set(chosen.values())) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} contradict each other: pick one type")
    chat_type = next(iter(chosen.values()), None)
    cfg = get_config(ctx)
    filters = Filters(chat_type, instance, archived, pinned, muted, inactive_days, active_since)
    filters = replace(filters, number_hidden=number_hidden)
    try:
        with Searcher(cfg.meilisearch) as searcher:
            result = searcher.search(
                query, filters, sort=list(sort), limit=limit, offset=offset, highlight=not as_json
            )
    except QueryError as exc:
        raise click.UsageError(f"--{exc.param.replace('_', '-')} {exc.problem}") from None
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return
    from explorer.output import hits_table

    for line in hits_table(result.hits, colour=sys.stdout.isatty()):
        click.echo(line)
    rows = result.hits
    shown = f"{offset + 1}-{offset + len(rows)}" if rows else "0"
    click.echo(f"{shown} of {result.count_text()} ({result.processing_ms} ms)", err=True)


@cli.group("keys")
def keys_group() -> None:
    """Create scoped Meilisearch keys for agents and other tools (needs an admin key)."""


def _expiry(days: int | None) -> Any:
    import datetime as dt

    if days is None:
        return None
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=days)


@keys_group.command("create-agent")
@click.option("--expires-in-days", type=click.IntRange(1), help="Let the key expire.")
@click.option("--label", help="Who the key is for, shown by `explorer keys list`.")
@click.pass_context
def keys_create_agent(ctx: click.Context, expires_in_days: int | None, label: str | None) -> None:
    """The smallest key the Meilisearch web UI accepts, on the live index only.

    Actions: search, indexes.get, stats.get, version. It cannot write, read settings or
    fetch documents one by one, and build indexes stay invisible to it. Printed once.
    """
    from explorer.index import create_key

    cfg = get_config(ctx)
    key = create_key(
        cfg.meilisearch,
        ["search", "indexes.get", "stats.get", "version"],
        f"WhatsApp Explorer agents{f' ({label})' if label else ''}",
        _expiry(expires_in_days),
    )
    click.echo(key)
    click.echo(
        "Agents open the agent page (`explorer serve`, or /agent/ behind the compose door) "
        "with #key=<key> after its address, or paste the key when asked. "
        "`explorer keys revoke <key>` takes it back.",
        err=True,
    )


@keys_group.command("create-search")
@click.option("--expires-in-days", type=click.IntRange(1), help="Let the key expire.")
@click.option(
    "--instance",
    "instance_id",
    help="Print a tenant token that only sees this instance's chats instead of the key.",
)
@click.option("--force", is_flag=True, help="Mint a tenant token for an instance not indexed yet.")
@click.pass_context
def keys_create_search(
    ctx: click.Context, expires_in_days: int | None, instance_id: str | None, force: bool
) -> None:
    """A search-only key for other tools, on the live index only. Printed once."""
    from explorer.index import create_key, tenant_token
    from explorer.query import Searcher

    cfg = get_config(ctx)
    if instance_id is not None and not force:
        with Searcher(cfg.meilisearch) as searcher:
            known = searcher.known_instances()
        if instance_id not in known:
            listed = ", ".join(sorted(known)) or "none"
            raise click.UsageError(
                f"--instance {instance_id!r} has no chats in index {cfg.meilisearch.index!r} "
                f"(known: {listed}); --force mints a token for it anyway"
            )
    expires = _expiry(expires_in_days)
    label = f" (instance {instance_id})" if instance_id else ""
    key = create_key(
        cfg.meilisearch, ["search"], f"WhatsApp Explorer search{label}", expires, with_uid=True
    )
    if instance_id is None:
        click.echo(key.split(" ", 1)[1])
        return
    uid, value = key.split(" ", 1)
    click.echo(tenant_token(cfg.meilisearch, uid, value, instance_id, expires))
    click.echo(f"A tenant token: searches with it only ever see instance {instance_id}.", err=True)


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@click.pass_context
def serve_cmd(ctx: click.Context, host: str, port: int) -> None:
    """Serve the agent page: search as you type, filters with counts, copy and open.

    Agents open the printed address and paste a key from `explorer keys create-agent`,
    or open ADDRESS#key=KEY (the fragment never reaches a server log). Searches go to
    Meilisearch through this server, which passes on nothing but searches. Runs until
    Ctrl-C.
    """
    from explorer.metrics import new_registry, routes
    from explorer.serve import AgentPage

    cfg = get_config(ctx)
    try:
        page = AgentPage(cfg.meilisearch, host, port, extra=routes(new_registry(cfg)))
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(
        f"Agent page on {page.url} for index {cfg.meilisearch.index!r} at "
        f"{cfg.meilisearch.url}\n"
        f"Give an agent a key (explorer keys create-agent) and the link {page.url}#key=KEY\n"
        "Ctrl-C stops it.",
        err=True,
    )
    try:
        page.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        page.close()


@cli.command("listen")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8701, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--insecure-no-signature",
    is_flag=True,
    help="Accept unsigned events on a non-loopback address (behind a trusted proxy only).",
)
@click.pass_context
def listen_cmd(ctx: click.Context, host: str, port: int, insecure_no_signature: bool) -> None:
    """Apply Wawp's webhooks to the live index as they arrive (docs/webhooks.md).

    Register http(s)://HOST:PORT/webhooks/wawp with Wawp (/v2/session/webhook). Events
    are queued durably in the state directory before they are acknowledged, then written
    to Meilisearch within about a second. GET /healthz and /metrics for monitoring.
    Runs until Ctrl-C or SIGTERM.
    """
    from explorer.listen import check_exposure, run_listener

    cfg = get_config(ctx)
    check_exposure(cfg, host, insecure_no_signature)

    def ready(url: str) -> None:
        click.echo(f"Listening for Wawp webhooks on {url}/webhooks/wawp (index "
                   f"{cfg.meilisearch.index!r} at {cfg.meilisearch.url}); Ctrl-C stops it.",
                   err=True)  # fmt: skip

    from contextlib import suppress

    with suppress(KeyboardInterrupt):  # Ctrl-C or SIGTERM: uvicorn drained connections
        run_listener(cfg, host, port, ready=ready)


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_context
def keys_list(ctx: click.Context, as_json: bool) -> None:
    """The keys this tool created: who for, what they may do, when they expire."""
    from explorer.index import explorer_keys

    keys = explorer_keys(get_config(ctx).meilisearch)
    if as_json:
        fields = ("uid", "description", "actions", "indexes", "expiresAt", "createdAt")
        click.echo(json.dumps([{f: k.get(f) for f in fields} for k in keys]))
        return
    for k in keys:
        expires = (k.get("expiresAt") or "never")[:10]
        click.echo(f"{k['uid']}  {k['key'][:8]}…  expires {expires:<10}  {k.get('description')}")
    if not keys:
        click.echo("no WhatsApp Explorer keys", err=True)


@keys_group.command("revoke")
@click.argument("key_or_uid")
@click.pass_context
def keys_revoke(ctx: click.Context, key_or_uid: str) -> None:
    """Delete an agent or search key at once (by its value or its uid)."""
    from explorer.index import revoke_key

    gone = revoke_key(get_config(ctx).meilisearch, key_or_uid)
    click.echo(f"revoked {gone['uid']} ({gone.get('description')}): it stops working now")


EXIT_FOUND = 4  # audit / zombies flagged something: monitoring-friendly, distinct from 1-3


def _housekeeping_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--live", is_flag=True, help="Crawl Wawp now instead of reading the index."),
        click.option("--instance", "instance", help="Only this instance (id or label)."),
        click.option("--json", "as_json", is_flag=True, help="One stable JSON document."),
        click.option("--ids", "as_ids", is_flag=True,
                     help="Only INSTANCE_ID<TAB>JID lines, to feed a script."),
    ]):  # fmt: skip
        f = option(f)
    return f


def _emit(
    ctx: click.Context, report: Any, findings: list[Any], as_json: bool, as_ids: bool,
    lines: Callable[[], list[str]],
) -> None:  # fmt: skip
    """One of the three output forms, then exit 4 if anything was found."""
    if as_json and as_ids:
        raise click.UsageError("--json and --ids are two outputs: pick one")
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False))
    elif as_ids:
        for f in findings:
            click.echo(f"{f.instance_id}\t{f.jid}")
        click.echo(f"{len(findings)} from {report.source_detail}", err=True)
    else:
        for line in lines():
            click.echo(line)
    if findings:
        ctx.exit(EXIT_FOUND)


def _finding_rows(findings: list[Any], limit: int) -> list[list[str]]:
    from explorer.output import relative

    return [
        [
            f.instance_label or f.instance_id, f.name or "(no name)", f.jid, f.chat_type,
            relative(f.last_activity), "yes" if f.archived else "", "; ".join(f.reasons),
        ]
        for f in findings[:limit]
    ]  # fmt: skip


@cli.command("audit")
@_housekeeping_options
@click.option("--inactive-days", type=click.IntRange(0), help="Also flag groups silent for N days.")
@click.option("--limit", default=200, show_default=True, type=click.IntRange(1),
              help="Rows in the table (JSON and --ids list everything).")  # fmt: skip
@click.pass_context
def audit_cmd(
    ctx: click.Context, live: bool, instance: str | None, as_json: bool, as_ids: bool,
    inactive_days: int | None, limit: int,
) -> None:  # fmt: skip
    """Bot self-audit: groups and channels an instance is in that its allow-list does not admit.

    The allow-list is audit.allowed_groups (group JIDs, or name patterns such as
    "Support *") and audit.allowed_groups_file (JIDs, one per line), globally or per
    instance, or the file named by EXPLORER_AUDIT_ALLOWED_FILE. Reads the live index (as
    fresh as the last sync) unless --live crawls Wawp now. Exits 4 when something is
    flagged. It never leaves a group: Wawp's write endpoints are not documented here;
    feed --ids to the script that does.
    """
    from explorer.housekeeping import audit

    report = audit(get_config(ctx), live=live, inactive_days=inactive_days, instance=instance)

    def lines() -> list[str]:
        from explorer.output import table

        out = [f"Audit of groups and channels, read from {report.source_detail}"]
        for i in report.instances:
            name = i.instance_id + (f" ({i.instance_label})" if i.instance_label else "")
            out.append(f"  {name}: {i.groups} groups and channels, {i.allowed} allowed, "
                       f"{len(i.flagged)} flagged (allow-list: {i.allow_list})")  # fmt: skip
        flagged = report.flagged
        if flagged:
            headers = ["INSTANCE", "GROUP", "JID", "TYPE", "LAST ACTIVITY", "ARCHIVED", "WHY"]
            out += ["", *table(headers, _finding_rows(flagged, limit), sys.stdout.isatty())]
            if len(flagged) > limit:
                out.append(f"... and {len(flagged) - limit} more (--json or --ids list all)")
            out.append(
                "Wawp may list a group you were removed from for a short while: check a flag "
                "again after the next sync before acting."
            )
        else:
            out.append("Nothing flagged.")
        return out

    _emit(ctx, report, report.flagged, as_json, as_ids, lines)


@cli.command("zombies")
@_housekeeping_options
@click.option("--days", default=90, show_default=True, type=click.IntRange(0),
              help="No activity for this many days.")  # fmt: skip
@click.option("--type", "chat_type", type=click.Choice(CHAT_TYPES), help="Only this kind.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1),
              help="Rows in the table (JSON and --ids list everything).")  # fmt: skip
@click.pass_context
def zombies_cmd(
    ctx: click.Context, live: bool, instance: str | None, as_json: bool, as_ids: bool,
    days: int, chat_type: str | None, limit: int,
) -> None:  # fmt: skip
    """Zombie chats: no activity for N days (default 90), oldest first, with counts.

    Shows how many there are per instance and type and how many are already archived.
    Reads the live index unless --live crawls Wawp now. Exits 4 when any is found. It
    never archives anything: feed --ids to the script that does.
    """
    from explorer.housekeeping import zombies

    report = zombies(get_config(ctx), days=days, chat_type=chat_type, instance=instance, live=live)

    def lines() -> list[str]:
        from explorer.output import table

        kind = f"{chat_type} " if chat_type else ""
        out = [f"Zombie {kind}chats (no activity for {days}+ days), read from "
               f"{report.source_detail}"]  # fmt: skip
        for inst, by_type in sorted(report.counts().items()):
            parts = ", ".join(
                f"{t} {c['zombies']} ({c['archived']} archived)" for t, c in sorted(by_type.items())
            )
            out.append(f"  {inst}: {parts}")
        if not report.chats:
            return [*out, "None found."]
        headers = ["INSTANCE", "NAME", "JID", "TYPE", "LAST ACTIVITY", "ARCHIVED", "WHY"]
        out += ["", *table(headers, _finding_rows(report.chats, limit), sys.stdout.isatty())]
        if len(report.chats) > limit:
            out.append(f"... and {len(report.chats) - limit} more (--json or --ids list all)")
        return out

    _emit(ctx, report, report.chats, as_json, as_ids, lines)


@cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_context
def stats_cmd(ctx: click.Context, as_json: bool) -> None:
    """Documents per type and per instance, and the last reindex."""
    from explorer.index import index_stats
    from explorer.reindex import last_report
    from explorer.sync import load_state

    cfg = get_config(ctx)
    stats = index_stats(cfg.meilisearch)
    stats["last_reindex"] = last_report(cfg)
    stats["last_sync"] = load_state(cfg).get("instances", {})
    from explorer.journal import journal_status

    stats["webhooks"] = journal_status(cfg)
    if as_json:
        click.echo(json.dumps(stats))
        return
    click.echo(f"{cfg.meilisearch.index}: {stats['documents']} chats")
    for facet in ("chat_type", "instance_id"):
        parts = ", ".join(f"{k} {v}" for k, v in sorted(stats[facet].items()))
        click.echo(f"  by {facet.replace('_id', '')}: {parts or '-'}")
    last = stats["last_reindex"]
    if last:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last.get("finished_at") or 0))
        click.echo(
            f"  last reindex: {when}, {last.get('seconds', 0):.1f}s, {last.get('chats')} chats, "
            f"{last.get('old_count') if last.get('old_count') is not None else 'none'} -> "
            f"{last.get('new_count')}"
        )
    else:
        click.echo("  last reindex: none recorded here")
    for inst, info in sorted(stats["last_sync"].items()):
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(info.get("at") or 0))
        click.echo(f"  last sync of {inst}: {when}")
    hooks = stats["webhooks"]
    if hooks:
        last = hooks["last_event"] or {}
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(last.get("applied_at") or 0))
        click.echo(
            f"  webhooks: {hooks['queue_depth']} queued; last applied: "
            + (f"{last['event']} from {last['session']} at {when}" if last else "none")
        )


def _print_hits(result: Any) -> None:
    from explorer.output import hits_table

    for line in hits_table(result.hits, colour=sys.stdout.isatty()):
        click.echo("    " + line)


@cli.command("demo")
@click.option("--chats", default=10_000, show_default=True, type=click.IntRange(1))
@click.option("--meili-port", default=7700, show_default=True, help="0 picks a free port.")
@click.option("--sandbox-port", default=0, show_default=True, help="0 picks a free port.")
@click.option("--data-dir", default=".demo", show_default=True, type=click.Path(file_okay=False))
def demo_cmd(chats: int, meili_port: int, sandbox_port: int, data_dir: str) -> None:
    """Run everything locally: Meilisearch, a sandbox, a reindex, searches, the web UI.

    Starts the pinned Meilisearch and a Wawp sandbox, reindexes with a progress bar, shows
    a few searches, and prints the web UI's address with a key for agents. Everything
    keeps running until Ctrl-C. The data directory is wiped at start.
    """
    import threading
    from pathlib import Path

    from explorer.dev.demo import start, write_env
    from explorer.index import admin_key, create_key
    from explorer.phones import pretty_phone
    from explorer.query import Filters, Searcher
    from explorer.reindex import reindex as run_reindex

    meili, sandbox, cfg = start(Path(data_dir), chats, meili_port, sandbox_port)
    page: Any = None
    try:
        env_file = write_env(Path(data_dir) / "env", cfg, admin_key(cfg.meilisearch))
        progress, close = _progress_bars(False)
        try:
            report = run_reindex(cfg, progress=progress)
        finally:
            close()
        click.echo(report.summary())
        with Searcher(cfg.meilisearch) as searcher:
            people = searcher.search("", Filters(chat_type="individual"), limit=100).hits
            name = next(
                (
                    h["name"].split()[0]
                    for h in people
                    if (h.get("name") or "").isascii() and h.get("name")
                ),
                "maria",
            )
            phone = next((pretty_phone(h["phone"]) for h in people if h.get("phone")), "")
            for title, query, filters in (
                (f"a first name: explorer search {name!r}", name, Filters()),
                (f"a phone number as typed: explorer search {phone!r}", phone, Filters()),
                (
                    "silent groups: explorer search --groups --inactive-days 60",
                    "",
                    Filters(chat_type="group", inactive_days=60),
                ),
            ):
                click.echo(f"\n  {title}")
                _print_hits(searcher.search(query, filters, limit=5))
        key = create_key(
            cfg.meilisearch, ["search", "indexes.get", "stats.get", "version"], "demo agents", None
        )
        from explorer.dev.demo import port_or_free
        from explorer.serve import AgentPage

        page = AgentPage(cfg.meilisearch, port=port_or_free(8700)).start()
        click.echo(
            f"\nThe agent page (explorer serve): {page.url}#key={key}\n"
            f"Meilisearch's web UI for agents: {meili.url}/?api_key={key}\n"
            f"Use every command from another terminal ({env_file} holds this demo's URLs, "
            "token and an admin key):\n"
            f"  . {env_file}\n"
            "  .venv/bin/explorer check && .venv/bin/explorer stats && "
            ".venv/bin/explorer reindex --dry-run\n"
            "Everything keeps running until Ctrl-C (or SIGTERM)."
        )
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("\nStopping.", err=True)
    finally:
        if page is not None:
            page.stop()
        sandbox.stop()
        meili.stop()


def _parse_at(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    from explorer.schedule import parse_at

    try:
        return parse_at(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@cli.command("schedule")
@click.option(
    "--reindex-at",
    default="03:15",
    show_default=True,
    callback=_parse_at,
    help="Daily reindex time, HH:MM (local).",
)
@click.option("--sync-every", type=click.IntRange(60), help="Also run sync every N seconds.")
@click.option("--run-now", is_flag=True, help="Reindex once at start, then keep the schedule.")
@click.option("--timezone", envvar="EXPLORER_TIMEZONE",
              help="IANA zone of --reindex-at [env EXPLORER_TIMEZONE; default $TZ, else the "
                   "system's].")  # fmt: skip
@click.option("--metrics-port", type=click.IntRange(0, 65535),
              help="Serve GET /metrics and /healthz on this port.")  # fmt: skip
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option("--max-runs", type=click.IntRange(1), hidden=True)
@click.pass_context
def schedule_cmd(
    ctx: click.Context, reindex_at: Any, sync_every: int | None, run_now: bool,
    max_runs: int | None,
    timezone: str | None, metrics_port: int | None, metrics_host: str,
) -> None:  # fmt: skip
    """Stay running and reindex daily (and sync in between): cron for containers.

    Failures are logged and the loop goes on; use --log-format json for log shippers.
    """
    import signal
    import threading

    from explorer.schedule import ScheduleMetrics, run_schedule, zone_named

    cfg = get_config(ctx)
    cfg.require_instances()
    zone = zone_named(timezone)
    metrics = ScheduleMetrics(cfg)
    if metrics_port is not None:
        metrics.serve(metrics_host, metrics_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        code = run_schedule(
            cfg, at=reindex_at, sync_every=sync_every, run_now=run_now,
            max_runs=max_runs, stop=stop, zone=zone, on_next=metrics.on_next,
            on_run=metrics.on_run,
        )  # fmt: skip
    except KeyboardInterrupt:
        code = 0
    if max_runs:
        ctx.exit(code)


def main() -> None:
    cli(prog_name="explorer")


if __name__ == "__main__":
    main()
