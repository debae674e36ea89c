"""`explorer demo`: the whole tool on one machine, in one command.

A local Meilisearch (the pinned binary the tests use), the Wawp sandbox with synthetic chats,
a real `reindex` with its progress bar, a few searches, and the web UI with an agent key,
all left running until Ctrl-C.

:class:`Demo` is the orchestration (start, run, stop, in that order, nothing left behind);
:class:`DemoReport` is what it did, for the CLI to print.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from explorer.config import Config, Instance, MeiliSettings, ReindexSettings, WawpSettings
from explorer.dev.meili_server import MeiliServer, free_port
from explorer.dev.sandbox import Sandbox
from explorer.dev.sandbox_options import SandboxOptions
from explorer.secrets import Secret

if TYPE_CHECKING:
    from explorer.doors.serve import AgentPage
    from explorer.jobs.reindex import Progress, ReindexReport
    from explorer.meili.query import SearchResult

INSTANCE = "DEMO00000001"
AGENT_PAGE_PORT = 8700


def _quiet(line: str) -> None:
    pass


def port_or_free(port: int) -> int:
    if port == 0:
        return free_port()
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


def demo_config(sandbox: Sandbox, meili: MeiliServer, state: Path) -> Config:
    token = sandbox.options.instances[INSTANCE]
    return Config(
        wawp=WawpSettings(
            base_url=sandbox.url,
            access_token=Secret(token),
            instances=(Instance(INSTANCE, "Demo shop"),),
            warmup_seconds=5,
            concurrency=4,
        ),
        meilisearch=MeiliSettings(url=meili.url, api_key=Secret(meili.master_key), index="chats"),
        reindex=ReindexSettings(state_dir=str(state)),
        source="demo",
    )


def start(
    data_dir: Path, chats: int, meili_port: int, sandbox_port: int,
    say: Callable[[str], None] = _quiet,
) -> tuple[MeiliServer, Sandbox, Config]:  # fmt: skip
    """Meilisearch, then the sandbox; if the second fails, the first is stopped."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    meili = MeiliServer(data_dir / "meili", port=port_or_free(meili_port))
    say(f"Starting Meilisearch on {meili.url} (data in {data_dir / 'meili'}) ...")
    meili.start()
    try:
        # LIDs as agents meet them: most hidden numbers known to Wawp (resolved), some not.
        options = SandboxOptions(
            chats=chats, instances={INSTANCE: secrets.token_urlsafe(16)}, lid_known=0.8
        )
        sandbox = Sandbox(options).start(port=port_or_free(sandbox_port) if sandbox_port else 0)
    except BaseException:
        meili.stop()  # nothing may outlive a demo that failed to start
        raise
    say(f"Started the Wawp sandbox with {chats:,} chats on {sandbox.url}")
    cfg = demo_config(sandbox, meili, data_dir / "state")
    return meili, sandbox, replace(cfg)


def write_env(path: Path, cfg: Config, admin_key: str) -> Path:
    """Shell ``export`` lines that point a second terminal's explorer at this demo (mode 600),
    with a config file beside them for what the environment cannot say (the instance's
    label), so a reindex from there writes the same documents as the demo's."""
    inst = cfg.wawp.instances[0]
    token = cfg.token_for(inst).reveal()
    state = Path(cfg.reindex.state_dir or ".").resolve()
    config = path.parent / "explorer.toml"
    config.write_text(
        "# explorer demo: the instance's label (the token is in env, beside this file)\n"
        f'[wawp]\nwarmup_seconds = 5\n\n[[wawp.instances]]\nid = "{inst.id}"\n'
        f'label = "{inst.label or ""}"\n'
    )
    values = {
        "EXPLORER_CONFIG": str(config.resolve()),
        "WAWP_BASE_URL": cfg.wawp.base_url,
        "WAWP_INSTANCE_ID": inst.id,
        "WAWP_ACCESS_TOKEN": token,
        "MEILI_URL": cfg.meilisearch.url,
        "MEILI_API_KEY": admin_key,
        "EXPLORER_INDEX": cfg.meilisearch.index,
        "EXPLORER_STATE_DIR": str(state),
    }
    text = "# explorer demo: `. .demo/env` points explorer at this demo (admin key: local only)\n"
    text += "".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)
    return path


def sample_searches(cfg: Config) -> list[tuple[str, SearchResult]]:
    """Three searches a newcomer can retype: a first name, a phone number, silent groups."""
    from explorer.meili.query import Filters, Searcher
    from explorer.records.phones import pretty_phone

    with Searcher(cfg.meilisearch) as searcher:
        people = searcher.search("", Filters(chat_type="individual"), limit=100).hits
        names = (h.get("name") or "" for h in people)
        name = next((n.split()[0] for n in names if n and n.isascii()), "maria")
        phone = next((pretty_phone(h["phone"]) for h in people if h.get("phone")), "")
        asked = (
            (f"a first name: explorer search {name!r}", name, Filters()),
            (f"a phone number as typed: explorer search {phone!r}", phone, Filters()),
            (
                "silent groups: explorer search --groups --inactive-days 60",
                "",
                Filters(chat_type="group", inactive_days=60),
            ),
        )
        return [(title, searcher.search(q, f, limit=5)) for title, q, f in asked]


@dataclass
class DemoReport:
    reindex: ReindexReport
    page_url: str
    meili_url: str
    agent_key: str
    env_file: Path
    searches: list[tuple[str, SearchResult]] = field(default_factory=list)

    def summary(self, colour: bool = False) -> str:
        from explorer.records.output import hits_table

        lines = [self.reindex.summary()]
        for title, result in self.searches:
            lines += ["", f"  {title}"]
            lines += ["    " + line for line in hits_table(result.hits, colour=colour)]
        env = self.env_file
        lines += [
            "",
            f"The agent page (explorer serve): {self.page_url}#key={self.agent_key}",
            f"Meilisearch's web UI for agents: {self.meili_url}/?api_key={self.agent_key}",
            f"Use every command from another terminal ({env} holds this demo's URLs, "
            "token and an admin key):",
            f"  . {env}",
            "  .venv/bin/explorer check && .venv/bin/explorer stats && "
            ".venv/bin/explorer reindex --dry-run",
            "Everything keeps running until Ctrl-C (or SIGTERM).",
        ]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "reindex": self.reindex.to_json(),
            "page_url": self.page_url,
            "meili_url": self.meili_url,
            "agent_key": self.agent_key,
            "env_file": str(self.env_file),
            "searches": [{"title": t, **r.to_json()} for t, r in self.searches],
        }


class Demo:
    """The demo's processes: ``with Demo(...) as demo: demo.run()``; leaving the block
    stops the agent page, the sandbox and Meilisearch, whatever ended it."""

    def __init__(
        self, data_dir: Path, *, chats: int, meili_port: int = 7700, sandbox_port: int = 0,
        say: Callable[[str], None] = _quiet,
    ) -> None:  # fmt: skip
        self.data_dir = data_dir
        self.chats = chats
        self.meili_port = meili_port
        self.sandbox_port = sandbox_port
        self.say = say
        self.meili: MeiliServer | None = None
        self.sandbox: Sandbox | None = None
        self.page: AgentPage | None = None
        self.cfg: Config | None = None

    def __enter__(self) -> Demo:
        self.meili, self.sandbox, self.cfg = start(
            self.data_dir, self.chats, self.meili_port, self.sandbox_port, self.say
        )
        return self

    def run(self, progress: Progress | None = None) -> DemoReport:
        """Reindex the sandbox, search it, and serve the agent page with a fresh key."""
        from explorer.doors.serve import AgentPage
        from explorer.jobs.reindex import reindex
        from explorer.meili.keys import admin_key, create_agent_key

        if self.cfg is None or self.meili is None:
            raise RuntimeError("Demo.run() belongs inside `with Demo(...) as demo:`")
        cfg = self.cfg
        env_file = write_env(self.data_dir / "env", cfg, admin_key(cfg.meilisearch))
        report = reindex(cfg, progress=progress)
        searches = sample_searches(cfg)
        key = create_agent_key(cfg.meilisearch, label="demo").key
        self.page = AgentPage(cfg.meilisearch, port=port_or_free(AGENT_PAGE_PORT)).start()
        return DemoReport(report, self.page.url, self.meili.url, key, env_file, searches)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.page is not None:
            self.page.stop()
        if self.sandbox is not None:
            self.sandbox.stop()
        if self.meili is not None:
            self.meili.stop()
