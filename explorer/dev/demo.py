"""`explorer demo`: the whole tool on one machine, in one command.

A local Meilisearch (the pinned binary the tests use), the Wawp sandbox with synthetic chats,
a real `reindex` with its progress bar, a few searches, and the web UI with an agent key,
all left running until Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import click

from explorer.config import Config, Instance, MeiliSettings, ReindexSettings, WawpSettings
from explorer.dev.meili_server import MeiliServer, free_port
from explorer.dev.sandbox import Sandbox
from explorer.dev.sandbox_options import SandboxOptions
from explorer.secrets import Secret

INSTANCE = "DEMO00000001"


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


def start(data_dir: Path, chats: int, meili_port: int, sandbox_port: int) -> tuple[
    MeiliServer, Sandbox, Config
]:  # fmt: skip
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    meili = MeiliServer(data_dir / "meili", port=port_or_free(meili_port))
    click.echo(f"Starting Meilisearch on {meili.url} (data in {data_dir / 'meili'}) ...")
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
    click.echo(f"Started the Wawp sandbox with {chats:,} chats on {sandbox.url}")
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
