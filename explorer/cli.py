"""The `explorer` command: a thin click layer over the library.

Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error, 3 refused by a
safety check. Expected failures print one line; only bugs print a traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from explorer import __version__
from explorer.config import Config, load_config
from explorer.errors import ExplorerError, MeiliError, WawpError
from explorer.index import check_server
from explorer.secrets import redact
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


def main() -> None:
    cli(prog_name="explorer")
