"""Run a local Meilisearch process: for the test suite, the demo and benchmarks.

Production runs the official image (see docker-compose.yml); this is for machines where a
process on loopback is all we have.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import httpx

from explorer.dev.meili_bin import find_meilisearch
from explorer.errors import MeiliError
from explorer.procs import die_with_parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class MeiliServer:
    """A Meilisearch child process on 127.0.0.1 with its own database directory."""

    def __init__(
        self,
        db_path: Path,
        *,
        binary: Path | None = None,
        port: int | None = None,
        master_key: str | None = None,
        env: str = "development",
        max_indexing_memory: str = "512MiB",
    ) -> None:
        self.db_path = Path(db_path)
        self.binary = binary or find_meilisearch()
        self.port = port or free_port()
        self.master_key = master_key or secrets.token_urlsafe(24)
        self.env = env
        self.max_indexing_memory = max_indexing_memory
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.db_path / "meilisearch.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> MeiliServer:
        self.db_path.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(self.binary),
            "--db-path",
            str(self.db_path / "data.ms"),
            "--http-addr",
            f"127.0.0.1:{self.port}",
            "--env",
            self.env,
            "--no-analytics",
            "--max-indexing-memory",
            self.max_indexing_memory,
            "--dump-dir",
            str(self.db_path / "dumps"),
            "--snapshot-dir",
            str(self.db_path / "snapshots"),
        ]
        # The key goes through the environment so it never shows in `ps`.
        env = {**os.environ, "MEILI_MASTER_KEY": self.master_key}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C in the terminal is ours to handle
                preexec_fn=die_with_parent,  # and it never outlives us
            )
        self._wait_healthy(timeout)
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                raise MeiliError(f"Meilisearch exited at start: {' | '.join(tail)}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise MeiliError(f"Meilisearch did not become healthy on {self.url} within {timeout}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> MeiliServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
