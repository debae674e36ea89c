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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import Field, fields
from typing import TYPE_CHECKING, Any, get_args, get_type_hints

import click

from explorer import __version__
from explorer.config import Config, load_config
from explorer.dev.sandbox_options import SandboxOptions
from explorer.errors import BackfillFailed, ExplorerError

# Heavy modules (the Meilisearch client, tqdm, the sandbox) are imported inside the commands
# that need them, so that `explorer search` starts fast; these few are cheap.
from explorer.records.chats import CHAT_TYPES
from explorer.secrets import redact

if TYPE_CHECKING:
    from explorer.jobs.reindex import Progress
    from explorer.meili.keys import NewKey


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


@contextmanager
def _usage_errors(hint: str = "") -> Iterator[None]:
    """A bad argument to the library (QueryError) as a usage error naming its option."""
    from explorer.errors import QueryError

    try:
        yield
    except QueryError as exc:
        raise click.UsageError(f"--{exc.param.replace('_', '-')} {exc.problem}{hint}") from None


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
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Try every configured Wawp instance and the Meilisearch server.

    Prints OK or the exact problem per target; exits 0 only if all are OK.
    """
    from explorer.jobs.check import check as run_check

    report = run_check(get_config(ctx))
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        click.echo("\n".join(report.lines(colour=sys.stdout.isatty())))
    if not report.ok:
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
        elif event == "messages":
            bar(f"m:{target}", f"messages {target}", " msgs").update(n)
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
    from explorer.jobs.reindex import dry_run as run_dry
    from explorer.jobs.reindex import reindex as run_reindex

    cfg = get_config(ctx)
    progress, close = _progress_bars(quiet or as_json)
    failed: BackfillFailed | None = None
    try:
        if dry_run:
            report = run_dry(cfg, progress=progress)
        else:
            report = run_reindex(cfg, force=force, restart=restart, progress=progress)
    except BackfillFailed as exc:  # the chats are live: their report, then the one line
        failed, report = exc, exc.report
    except KeyboardInterrupt:
        close()
        said = (
            "Interrupted: the next `explorer reindex` resumes the unfinished build "
            "(--restart discards it); once the chats were live, it crawls anew and resumes "
            "the messages backfill from its ledger."
            if cfg.messages.enabled
            else "Interrupted: the live index is untouched; the next `explorer reindex` "
            "resumes this build (--restart discards it)."
        )
        _fail(ctx, said, 130)
    finally:
        close()
    if as_json:
        click.echo(json.dumps(report.to_json()))
    else:
        click.echo(report.summary())
        for sample in report.malformed_samples:
            click.echo(f"  malformed: {redact(sample)}", err=True)
    if failed is not None:
        _fail(ctx, f"Error: {redact(str(failed))}", failed.exit_code)


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
    from explorer.jobs.state import IndexBusy
    from explorer.jobs.sync import sync

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


@cli.group("messages")
def messages_group() -> None:
    """The messages index (docs/messages.md)."""


@messages_group.command("purge")
@click.option("--yes", is_flag=True, help="Really delete every indexed message.")
@click.pass_context
def messages_purge(ctx: click.Context, yes: bool) -> None:
    """Delete the messages index and the backfill's ledger: every indexed message goes.

    Turn messages off first (messages.enabled / EXPLORER_MESSAGES), or the next reindex
    fetches them again. The chats index is untouched.
    """
    from explorer.jobs.messages import purge
    from explorer.records.messages import messages_index

    cfg = get_config(ctx)
    index = messages_index(cfg.meilisearch.index)
    if not yes:
        _fail(ctx, f"Error: this deletes every message in {index}; run again with --yes", 2)
    existed = purge(cfg)
    click.echo(f"purged: {index} deleted" if existed else f"purged: there was no {index}")


@cli.command("settings")
@click.option("--check", "mode", flag_value="check", default=True, help="Show drift (default).")
@click.option("--apply", "mode", flag_value="apply", help="Make the live index match the code.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_context
def settings_cmd(ctx: click.Context, mode: str, as_json: bool) -> None:
    """Compare the live index's settings with the ones in code (exit 1 on drift).

    With messages enabled, the messages index too (--apply creates it when missing).
    """
    from explorer.meili.settings import index_settings, messages_settings

    cfg = get_config(ctx)
    report = index_settings(cfg.meilisearch, apply=mode == "apply")
    reports = [report]
    if cfg.messages.enabled:
        reports.append(messages_settings(cfg.meilisearch, apply=mode == "apply"))
    if as_json:
        doc = report.to_json()
        if len(reports) > 1:
            doc["messages"] = reports[1].to_json()
        click.echo(json.dumps(doc))
    else:
        click.echo("\n".join(r.summary() for r in reports))
    if not all(r.ok for r in reports):
        ctx.exit(1)


def _instance_option(value: str) -> tuple[str, str]:
    iid, sep, token = value.partition(":")
    if not iid or not sep or not token:
        raise click.BadParameter(f"expected ID:TOKEN, got {value!r}")
    return iid, token


def _sandbox_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """A flag for each field of SandboxOptions, from its type, default and help there."""
    hints = get_type_hints(SandboxOptions)
    for spec in reversed(fields(SandboxOptions)):
        f = _sandbox_flag(spec, hints[spec.name])(f)
    return f


def _sandbox_flag(spec: Field[Any], hint: Any) -> Callable[[Callable[..., Any]], Any]:
    meta = spec.metadata
    decl = meta.get("flag", f"--{spec.name.replace('_', '-')}")
    common = {"help": meta["help"], "envvar": meta.get("envvar"), "metavar": meta.get("metavar")}
    if meta.get("multiple"):
        return click.option(decl, spec.name, multiple=True, **common)
    kind = next(t for t in get_args(hint) or (hint,) if t is not type(None))
    if kind is bool:
        return click.option(decl, spec.name, is_flag=True, default=spec.default,
                            show_default=spec.default is True, **common)  # fmt: skip
    low, high = meta.get("low"), meta.get("high")
    param: Any = kind
    if "choices" in meta:
        param = click.Choice(meta["choices"])
    elif low is not None or high is not None:
        param = click.IntRange(low, high) if kind is int else click.FloatRange(low, high)
    return click.option(decl, spec.name, type=param, default=spec.default, show_default=True,
                        **common)  # fmt: skip


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, help="Port (0 picks a free one).")
@_sandbox_options
def sandbox(host: str, port: int, instances: tuple[str, ...], **options: Any) -> None:
    """Run a Wawp-compatible sandbox server with synthetic chats.

    Serves GET /v2/chats, /v2/lids (list, count, one LID, by number) and
    /v2/session/info like Wawp, plus GET /_sandbox/ids (the JIDs a complete, merged index
    holds; ?format=json for LIDs, phones and listed ids) and POST /_sandbox/mutate (add,
    delete, rename, touch chats, learn LIDs). Faults are off unless asked for. Runs until
    Ctrl-C.
    """
    from explorer.dev.sandbox import Sandbox

    if instances:  # else the field's default
        options["instances"] = dict(_instance_option(v) for v in instances)
    try:
        sb = Sandbox(SandboxOptions(**options))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    o = sb.options
    if o.prerender:
        click.echo(f"Rendering {o.chats:,} chats per instance before serving...")
        for store in sb.stores.values():
            store.prerender()
    server = sb.bind(host, port)
    first = next(iter(o.instances))
    click.echo(
        f"Wawp sandbox on {sb.url}: {o.chats} chats per instance, "
        f"shape {o.shape}, envelope {o.envelope}\n"
        "Point explorer at it:\n"
        f"  export WAWP_BASE_URL={sb.url}\n"
        f"  export WAWP_INSTANCE_ID={','.join(o.instances)}\n"
        f"  export WAWP_ACCESS_TOKEN={o.instances[first]}   # the sandbox's own token\n"
        "Ctrl-C stops it."
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _type_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--type and its shorthands; :meth:`Filters.chat_type_from` reconciles them."""
    for option in reversed([
        click.option("--type", "chat_type", type=click.Choice(CHAT_TYPES),
                     help="Only this kind of chat."),
        click.option("--groups", is_flag=True, help="Only groups (--type group)."),
        click.option("--individuals", is_flag=True, help="Only 1:1 chats (--type individual)."),
    ]):  # fmt: skip
        f = option(f)
    return f


def _chat_type(chat_type: str | None, groups: bool, individuals: bool) -> str | None:
    from explorer.records.filters import Filters

    with _usage_errors():
        return Filters.chat_type_from(chat_type, groups=groups, individuals=individuals)


@cli.command("search")
@click.argument("query", required=False, default="")
@_type_options
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
    "--label", "labels", multiple=True, metavar="NAME",
    help="Chats carrying this WhatsApp Business label; repeat for any of several.",
)  # fmt: skip
@click.option(
    "--sort", "sort", multiple=True, metavar="ATTR[:asc|desc]",
    help="Sort by last_activity, name or display_name, e.g. last_activity:desc.",
)  # fmt: skip
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
@click.option(
    "--json", "as_json", is_flag=True, help="One stable JSON document (see docs/schema.md)."
)
@click.option(
    "--messages",
    is_flag=True,
    help="Search what was said (the messages index; messages.enabled) instead of chats.",
)
@click.option("--chat", metavar="PHONE|JID", help="With --messages: only this chat's messages.")
@click.option("--since", metavar="DATE", help="With --messages: sent on or after DATE (UTC).")
@click.option("--until", metavar="DATE", help="With --messages: sent on or before DATE (UTC).")
@click.option("--from-me", is_flag=True, help="With --messages: only what we sent.")
@click.option("--from-them", is_flag=True, help="With --messages: only what we received.")
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
    labels: tuple[str, ...],
    sort: tuple[str, ...],
    limit: int,
    offset: int,
    as_json: bool,
    messages: bool,
    chat: str | None,
    since: str | None,
    until: str | None,
    from_me: bool,
    from_them: bool,
) -> None:
    """Find chats by name (typos, accents, any script), phone number in any format, or JID.

    An empty QUERY lists chats by the filters alone. With --messages, find messages by
    what was said (newest first when QUERY is empty).

    \b
    Examples:
      explorer search "ahmed hasan"
      explorer search "+20 123 456 7890"
      explorer search --groups --inactive-days 90 --sort last_activity:asc
      explorer search sara --label VIP --label "Pending payment"
      explorer search --messages "order 4411" --since 2026-11-01 --from-them
    """
    from explorer.meili.query import Filters, Searcher

    kind = _chat_type(chat_type, groups, individuals)
    cfg = get_config(ctx)
    if from_me and from_them:
        raise click.UsageError("--from-me and --from-them contradict each other: pick one")
    mine = True if from_me else False if from_them else None  # what we sent, or received
    if messages:
        chat_only = {"--archived/--not-archived": archived, "--pinned/--not-pinned": pinned,
                     "--muted/--not-muted": muted, "--number-hidden/--number-known": number_hidden,
                     "--inactive-days": inactive_days, "--active-since": active_since,
                     "--sort": sort or None}  # fmt: skip
        given = [name for name, value in chat_only.items() if value is not None]
        if given:
            raise click.UsageError(f"{given[0]} filters chats, not --messages")
        _search_messages(cfg, query, kind, instance, chat, since, until, mine, limit, offset,
                         as_json, labels)  # fmt: skip
        return
    message_only = {"--chat": chat, "--since": since, "--until": until,
                    "--from-me" if from_me else "--from-them": mine}  # fmt: skip
    given = [name for name, value in message_only.items() if value is not None]
    if given:
        raise click.UsageError(f"{given[0]} needs --messages")
    filters = Filters(
        kind,
        instance,
        archived,
        pinned,
        muted,
        inactive_days,
        active_since,
        number_hidden,
        labels,
    )
    with _usage_errors(), Searcher(cfg.meilisearch) as searcher:
        result = searcher.search(
            query, filters, sort=list(sort), limit=limit, offset=offset, highlight=not as_json
        )
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return
    from explorer.records.output import hits_table

    for line in hits_table(result.hits, colour=sys.stdout.isatty()):
        click.echo(line)
    rows = result.hits
    shown = f"{offset + 1}-{offset + len(rows)}" if rows else "0"
    click.echo(f"{shown} of {result.count_text()} ({result.processing_ms} ms)", err=True)


def _search_messages(
    cfg: Config, query: str, chat_type: str | None, instance: str | None, chat: str | None,
    since: str | None, until: str | None, from_me: bool | None, limit: int, offset: int,
    as_json: bool, labels: tuple[str, ...] = (),
) -> None:  # fmt: skip
    """`explorer search --messages`: the snippet, whose chat, who wrote it and when."""
    from explorer.meili.message_query import MessageSearcher, require_messages
    from explorer.records.output import message_lines

    require_messages(cfg)
    with _usage_errors(), MessageSearcher(cfg.meilisearch) as searcher:
        result = searcher.search(
            query, instance=instance, chat=chat, since=since, until=until, from_me=from_me,
            chat_type=chat_type, limit=limit, offset=offset, highlight=not as_json,
            labels=labels,
        )  # fmt: skip
    if as_json:
        click.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return
    for line in message_lines(result.hits, colour=sys.stdout.isatty()):
        click.echo(line)
    rows = result.hits
    shown = f"{offset + 1}-{offset + len(rows)}" if rows else "0"
    click.echo(f"{shown} of {result.count_text()} ({result.processing_ms} ms)", err=True)


@cli.group("keys")
def keys_group() -> None:
    """Create scoped Meilisearch keys for agents and other tools (needs an admin key)."""


def _scope_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--instance", "instance_id",
                     help="Scope: only this instance's chats (its id or label); prints a "
                          "tenant token instead of the key."),
        click.option("--only-label", "labels", multiple=True,
                     help="Scope: only chats carrying this label (repeat: any of them); "
                          "prints a tenant token instead of the key."),
        click.option("--force", is_flag=True,
                     help="Mint a scoped token for an instance or label not indexed yet."),
    ]):  # fmt: skip
        f = option(f)
    return f


def _scoped_note(new: NewKey) -> None:
    """One line on stderr about a tenant token: what it sees and how it ends."""
    if new.scope:
        click.echo(
            f"A tenant token: its searches only ever see {new.scope.describe()} "
            f"(chats and their messages). `explorer keys revoke {new.uid}` ends it.",
            err=True,
        )


@keys_group.command("create-agent")
@click.option("--expires-in-days", type=click.IntRange(1), help="Let the key expire.")
@click.option("--label", help="Who the key is for, shown by `explorer keys list`.")
@_scope_options
@click.pass_context
def keys_create_agent(
    ctx: click.Context, expires_in_days: int | None, label: str | None,
    instance_id: str | None, labels: tuple[str, ...], force: bool,
) -> None:  # fmt: skip
    """The smallest key the Meilisearch web UI accepts, on the live index only.

    Actions: search, indexes.get, stats.get, version, on the chats index and its messages
    index. It cannot write, read settings or fetch documents one by one, and build indexes
    stay invisible to it. With --instance or --only-label, a tenant token that only ever
    sees those chats, for the agent page (the Meilisearch web UI takes no tenant token).
    Printed once.
    """
    from explorer.meili.keys import create_agent_key, scope_of

    cfg = get_config(ctx)
    with _usage_errors():
        new = create_agent_key(
            cfg.meilisearch, label=label, expires_in_days=expires_in_days,
            scope=scope_of(instance_id, labels), force=force,
            configured=tuple(i.id for i in cfg.wawp.instances),
        )  # fmt: skip
    click.echo(new.secret)
    click.echo(
        "Agents open the agent page (`explorer serve`, or /agent/ behind the compose door) "
        "with #key=<key> after its address, or paste the key when asked. "
        "`explorer keys revoke <key>` takes it back.",
        err=True,
    )
    _scoped_note(new)


@keys_group.command("create-search")
@click.option("--expires-in-days", type=click.IntRange(1), help="Let the key expire.")
@_scope_options
@click.pass_context
def keys_create_search(
    ctx: click.Context, expires_in_days: int | None, instance_id: str | None,
    labels: tuple[str, ...], force: bool,
) -> None:  # fmt: skip
    """A search-only key for other tools, on the live index only. Printed once.

    It covers the chats index and its messages index. With --instance or --only-label, a
    tenant token whose every search is filtered to those chats and their messages.
    """
    from explorer.doors.mcp_server import paste_line
    from explorer.meili.keys import create_search_key

    cfg = get_config(ctx)
    with _usage_errors():
        new = create_search_key(
            cfg.meilisearch, instance_id=instance_id, labels=labels,
            expires_in_days=expires_in_days, force=force,
            configured=tuple(i.id for i in cfg.wawp.instances),
        )  # fmt: skip
    click.echo(new.secret)
    _scoped_note(new)
    click.echo(f"For an AI assistant (docs/mcp.md): {paste_line(cfg, new.secret)}", err=True)


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535))
@click.pass_context
def serve_cmd(ctx: click.Context, host: str, port: int) -> None:
    """Serve the agents' door: their page, the Meilisearch web UI, pinned searches.

    Agents open the printed address (/agent/) and paste a key from `explorer keys
    create-agent`, or open ADDRESS#key=KEY (the fragment never reaches a server log). The
    Meilisearch web UI is at /. Searches go to Meilisearch through this server, which
    passes on nothing but searches of the configured index and what the two pages read.
    Beyond a trusted LAN, put nginx in front (deploy/nginx/agent-ui.conf, docs/door.md).
    Runs until Ctrl-C.
    """
    from explorer.doors.metrics import new_registry, routes
    from explorer.doors.serve import AgentPage
    from explorer.doors.server import bound_to

    cfg = get_config(ctx)
    try:
        page = AgentPage(cfg.meilisearch, host, port, extra=routes(new_registry(cfg)),
                         messages=cfg.messages.enabled)  # fmt: skip
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(
        f"Agent page on {bound_to(host, page.url)} for index {cfg.meilisearch.index!r} at "
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


@cli.command("mcp")
@click.option("--http", "use_http", is_flag=True, help="Streamable HTTP instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="With --http: address.")
@click.option("--port", default=8702, show_default=True, type=click.IntRange(0, 65535),
              help="With --http: port.")  # fmt: skip
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False),
    help="File with the Meilisearch search key or tenant token [env MEILI_API_KEY].",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help="With --http: file with the clients' bearer token [env EXPLORER_MCP_TOKEN].",
)
@click.pass_context
def mcp_cmd(
    ctx: click.Context, use_http: bool, host: str, port: int, key_file: str | None,
    token_file: str | None,
) -> None:  # fmt: skip
    """Serve the index to AI assistants over the Model Context Protocol (read-only).

    Tools: search_chats, get_chat, zombie_chats, audit_groups, index_status; the index
    schema as a resource. Stdio by default (what Claude Desktop, Claude Code and VS Code
    launch); --http serves streamable HTTP at http://HOST:PORT/mcp behind a bearer token.
    Refuses (exit 3) a Meilisearch key that can do more than search: make one with
    `explorer keys create-search`. See docs/mcp.md.
    """
    from explorer.doors.mcp_server import prepare
    from explorer.doors.server import bound_to

    launch = prepare(get_config(ctx), key_file=key_file, http=use_http, token_file=token_file)
    where = bound_to(host, launch.listen(host, port)) if use_http else "stdio"
    click.echo(launch.banner(where), err=True)
    try:
        launch.serve()
    except KeyboardInterrupt:
        pass
    finally:
        launch.close()


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
    from explorer.doors.listen import check_exposure, run_listener
    from explorer.doors.server import bound_to

    cfg = get_config(ctx)
    check_exposure(cfg, host, insecure_no_signature)

    def ready(url: str) -> None:
        where = bound_to(host, f"{url}/webhooks/wawp")
        click.echo(f"Listening for Wawp webhooks on {where} (index "
                   f"{cfg.meilisearch.index!r} at {cfg.meilisearch.url}); Ctrl-C stops it.",
                   err=True)  # fmt: skip

    from contextlib import suppress

    with suppress(KeyboardInterrupt):  # Ctrl-C or SIGTERM: uvicorn drained connections
        run_listener(cfg, host, port, ready=ready)


@cli.command("dead-letters")
@click.argument("seqs", nargs=-1, type=click.IntRange(1))
@click.option("--retry", is_flag=True, help="Queue them again (all, or the SEQs given).")
@click.option("--drop", is_flag=True, help="Forget them (all, or the SEQs given).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_context
def dead_letters_cmd(
    ctx: click.Context, seqs: tuple[int, ...], retry: bool, drop: bool, as_json: bool
) -> None:
    """Webhook events Meilisearch refused, set aside so they stop nothing else.

    Lists them (with why) by default. --retry asks `explorer listen` to apply them again,
    after a fix; --drop forgets them. Exit 4 when there are dead letters to look at.
    """
    from explorer.jobs.journal import DeadLetterReport, list_dead, mark_dead

    if retry and drop:
        _fail(ctx, "--retry and --drop exclude each other", 2)
    cfg = get_config(ctx)
    if retry or drop:
        changed = mark_dead(cfg, list(seqs) or None, drop=drop)
        report = DeadLetterReport([], "drop" if drop else "retry", changed)
    else:
        report = DeadLetterReport(list_dead(cfg))
    click.echo(json.dumps(report.to_json()) if as_json else report.summary())
    if report.action is None and report.letters:
        ctx.exit(4)


@cli.command("forget")
@click.argument("person", required=False, metavar="PHONE|JID")
@click.option("--instance", "instance_id", help="Only in this instance [default: every one].")
@click.option("--undo", is_flag=True, help="Index them again from the next sync or reindex.")
@click.option("--list", "list_", is_flag=True, help="Show who is forgotten (hashes only).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_context
def forget_cmd(
    ctx: click.Context,
    person: str | None,
    instance_id: str | None,
    undo: bool,
    list_: bool,
    as_json: bool,
) -> None:
    """Erase a person: their chats and messages, now and from then on (docs/messages.md).

    Removes their chat documents and messages from the live indexes and any build in
    progress, and records them (a keyed hash, never the number) so that reindex, sync and
    listen never index them again, until --undo. A phone number in any format, with its
    country code, or a JID (a LID too).
    """
    from explorer.jobs.forget import forget, list_forgotten, undo_forget

    if list_ and (person or undo):
        raise click.UsageError("--list takes no PHONE|JID and no --undo")
    if not list_ and not person:
        raise click.UsageError("give a PHONE|JID, or --list")
    cfg = get_config(ctx)
    if list_:
        report = list_forgotten(cfg)
    elif undo:
        assert person is not None
        report = undo_forget(cfg, person, instance_id)
    else:
        assert person is not None
        report = forget(cfg, person, instance_id)
    click.echo(json.dumps(report.to_json()) if as_json else report.summary())


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_context
def keys_list(ctx: click.Context, as_json: bool) -> None:
    """The keys this tool created: who for, what they may do, when they expire."""
    from explorer.meili.keys import list_keys

    listed = list_keys(get_config(ctx).meilisearch)
    if as_json:
        click.echo(json.dumps(listed.to_json()))
    else:
        click.echo(listed.summary(), err=not listed.keys)


@keys_group.command("revoke")
@click.argument("key_or_uid")
@click.pass_context
def keys_revoke(ctx: click.Context, key_or_uid: str) -> None:
    """Delete an agent or search key at once (by its value or its uid).

    A tenant token is ended by revoking its parent key: give its uid (`keys list`), or
    the token itself.
    """
    from explorer.meili.keys import revoke_key

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
    ctx: click.Context, report: Any, findings: list[Any], as_json: bool, as_ids: bool, limit: int
) -> None:
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
        click.echo(report.summary(limit=limit, colour=sys.stdout.isatty()))
    if findings:
        ctx.exit(EXIT_FOUND)


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
    from explorer.jobs.housekeeping import audit

    report = audit(get_config(ctx), live=live, inactive_days=inactive_days, instance=instance)

    _emit(ctx, report, report.flagged, as_json, as_ids, limit)


@cli.command("zombies")
@_housekeeping_options
@click.option("--days", default=90, show_default=True, type=click.IntRange(0),
              help="No activity for this many days.")  # fmt: skip
@_type_options
@click.option("--label", "labels", multiple=True, metavar="NAME",
              help="Only chats carrying this label; repeat for any of several.")  # fmt: skip
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1),
              help="Rows in the table (JSON and --ids list everything).")  # fmt: skip
@click.pass_context
def zombies_cmd(
    ctx: click.Context, live: bool, instance: str | None, as_json: bool, as_ids: bool,
    days: int, chat_type: str | None, groups: bool, individuals: bool, labels: tuple[str, ...],
    limit: int,
) -> None:  # fmt: skip
    """Zombie chats: no activity for N days (default 90), oldest first, with counts.

    Shows how many there are per instance and type and how many are already archived.
    Reads the live index unless --live crawls Wawp now. Exits 4 when any is found. It
    never archives anything: feed --ids to the script that does.
    """
    from explorer.jobs.housekeeping import zombies

    kind = _chat_type(chat_type, groups, individuals)
    report = zombies(get_config(ctx), days=days, chat_type=kind, instance=instance, live=live,
                     labels=labels)  # fmt: skip

    _emit(ctx, report, report.chats, as_json, as_ids, limit)


@cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.pass_context
def stats_cmd(ctx: click.Context, as_json: bool) -> None:
    """Documents per type and per instance, and the last reindex."""
    from explorer.jobs.stats import stats

    report = stats(get_config(ctx))
    click.echo(json.dumps(report.to_json()) if as_json else report.summary())


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

    from explorer.dev.demo import Demo

    demo = Demo(Path(data_dir), chats=chats, meili_port=meili_port, sandbox_port=sandbox_port,
                say=click.echo)  # fmt: skip
    try:
        with demo:
            progress, close = _progress_bars(False)
            try:
                report = demo.run(progress)
            finally:
                close()
            click.echo(report.summary(colour=sys.stdout.isatty()))
            threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("\nStopping.", err=True)


def _parse_at(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    from explorer.jobs.schedule import parse_at

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
    from explorer.jobs import schedule

    try:
        code = schedule.run(
            get_config(ctx), at=reindex_at, sync_every=sync_every, run_now=run_now,
            timezone=timezone, metrics_host=metrics_host, metrics_port=metrics_port,
            max_runs=max_runs,
        )  # fmt: skip
    except KeyboardInterrupt:  # Ctrl-C; SIGTERM and SIGHUP let the job in hand finish
        code = 0
    if max_runs:
        ctx.exit(code)


def main() -> None:
    cli(prog_name="explorer")


if __name__ == "__main__":
    main()
