"""The state directory: the lock reindex and sync share, and small JSON files.

Everything here survives a crash by construction: the lock is an OS lock that dies with
its process, and files are replaced atomically (a reader sees the old or the new file,
never half of one).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from explorer.config import Config
from explorer.errors import ExplorerError


class IndexBusy(ExplorerError):
    """Another reindex or sync of the same index holds the lock."""


def state_dir(cfg: Config) -> Path:
    if cfg.reindex.state_dir:
        return Path(cfg.reindex.state_dir)
    if os.environ.get("EXPLORER_STATE_DIR"):
        return Path(os.environ["EXPLORER_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "whatsapp-explorer"


@contextlib.contextmanager
def index_lock(directory: Path, index: str, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the index's write lock, waiting up to ``wait`` seconds for it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"reindex-{index}.lock"
    fh: IO[str] = path.open("a+")
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexBusy(
                        f"another reindex or sync of index {index!r} is running (lock {path})"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        fh.close()


def read_json(path: Path) -> dict[str, Any]:
    """The object in ``path``, or {} when it is missing or damaged (state is a cache)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
