"""The `explorer` command: a thin click layer over the library.

Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error, 3 refused by a
safety check. Expected failures print one line; only bugs print a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click
from tqdm import tqdm

from explorer import __version__
from explorer.config import Config, load_config
from explorer.documents import INDEX_SETTINGS, settings_drift
from explorer.errors import ExplorerError, MeiliError, WawpError
from explorer.index import IndexStore, check_server
from explorer.reindex import Progress
from explorer.reindex import dry_run as run_dry
from explorer.reindex import reindex as run_reindex
from explorer.sandbox import (
    COLD_MODES,
    DEFAULT_INSTANCE,
    DEFAULT_TOKEN,
    ENVELOPES,
    Sandbox,
    SandboxOptions,
)
from explorer.secrets import redact
from explorer.synthetic import SHAPES
from explorer.wawp import RetryPolicy, WawpClient


class ExplorerGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ExplorerError as exc:
            click.echo(f"Error: {redact(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


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
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: str | None,
    base_url: str | None,
    instances: tuple[str, ...],
    meili_url: str | None,
    index: str | None,
    verbose: int,
) -> None:
    """Make every WhatsApp chat of a business searchable.

    Crawls the Wawp API into a Meilisearch index. Secrets (WAWP_ACCESS_TOKEN,
    MEILI_API_KEY) are read from the environment or the config file, never from flags,
    so they stay out of shell history and `ps`.

    \b
    Exit codes: 0 ok, 1 runtime failure, 2 usage or config error,
                3 refused by a safety check.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    ctx.obj = {
        "path": config_path,
        "overrides": {
            "base_url": base_url,
            "instances": instances,
            "meili_url": meili_url,
            "index": index,
        },
        "config": None,
    }


@cli.command()
@click.pass_context
def check(ctx: click.Context) -> None:
    """Try every configured Wawp instance and the Meilisearch server.

    Prints OK or the exact problem per target; exits 0 only if all are OK.
    """
    cfg = get_config(ctx)
    instances = cfg.require_instances()
    failures = 0
    rows: list[tuple[str, str, str, str]] = []
    retry = RetryPolicy(budget_seconds=3.0, max_delay=1.0)
    for inst in instances:
        name = inst.id + (f" ({inst.label})" if inst.label else "")
        try:
            with WawpClient(
                cfg.wawp.base_url,
                inst.id,
                cfg.token_for(inst),
                timeout=min(cfg.wawp.timeout, 10.0),
                retry=retry,
            ) as client:
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
    cfg = get_config(ctx)
    progress, close = _progress_bars(quiet or as_json)
    try:
        if dry_run:
            report = run_dry(cfg, progress=progress)
        else:
            report = run_reindex(cfg, force=force, restart=restart, progress=progress)
    except KeyboardInterrupt:
        close()
        click.echo(
            "Interrupted: the live index is untouched; the next `explorer reindex` resumes "
            "this build (--restart discards it).",
            err=True,
        )
        ctx.exit(130)
    finally:
        close()
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        click.echo(report.summary())
        for sample in report.malformed_samples:
            click.echo(f"  malformed: {redact(sample)}", err=True)


@cli.command("settings")
@click.option("--check", "mode", flag_value="check", default=True, help="Show drift (default).")
@click.option("--apply", "mode", flag_value="apply", help="Make the live index match the code.")
@click.pass_context
def settings_cmd(ctx: click.Context, mode: str) -> None:
    """Compare the live index's settings with the ones in code (exit 1 on drift)."""
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
def sandbox(host: str, port: int, instances: tuple[str, ...], **options: Any) -> None:
    """Run a Wawp-compatible sandbox server with synthetic chats.

    Serves GET /v2/chats and /v2/session/info like Wawp, plus GET /_sandbox/ids (the
    JIDs a complete crawl must yield) and POST /_sandbox/mutate (add, delete, rename or
    touch chats). Faults are off unless asked for. Runs until Ctrl-C.
    """
    pairs = dict(_instance_option(v) for v in instances) or {DEFAULT_INSTANCE: DEFAULT_TOKEN}
    try:
        sb = Sandbox(SandboxOptions(instances=pairs, **options))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
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


def main() -> None:
    cli(prog_name="explorer")


if __name__ == "__main__":
    main()
