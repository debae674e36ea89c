"""Drive Debian's headless Chromium over the DevTools pipe, for the agent page's tests,
its screenshots and its benchmark. No driver package and no browser download: Chromium
reads DevTools commands from fd 3 and writes replies and events to fd 4, NUL-separated.

Only what those callers need: navigate, evaluate, type, press keys, click, resize,
screenshot, and a record of every request the page made and every console error.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from explorer.procs import die_with_parent

KEYS: dict[str, tuple[str, int, str]] = {  # key -> (code, keyCode, text)
    "ArrowDown": ("ArrowDown", 40, ""),
    "ArrowUp": ("ArrowUp", 38, ""),
    "Enter": ("Enter", 13, "\r"),
    "Escape": ("Escape", 27, ""),
    "Tab": ("Tab", 9, ""),
    "/": ("Slash", 191, "/"),
}


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise BrowserError("Chromium not found: `apt-get install chromium` (make test does it)")


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, width: int = 1400, height: int = 1000, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(
            prefix="explorer-chromium-", ignore_cleanup_errors=True
        )
        cmd_read, self._cmd_write = os.pipe()
        self._res_read, res_write = os.pipe()

        def child_fds() -> None:
            a, b = os.dup(cmd_read), os.dup(res_write)  # never clobber one with the other
            os.dup2(a, 3)
            os.dup2(b, 4)
            die_with_parent()

        self.proc = subprocess.Popen(
            [
                find_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
                "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}",
                f"--window-size={width},{height}", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--mute-audio",
                "--hide-scrollbars", "--force-color-profile=srgb", "about:blank",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=child_fds, pass_fds=(3, 4), start_new_session=True,
        )  # fmt: skip
        os.close(cmd_read)
        os.close(res_write)
        self._next = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self.events: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.responses: list[tuple[str, int]] = []
        self.console_errors: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self.session = self._attach()
        except BaseException:
            self.close()
            raise

    # -- protocol ---------------------------------------------------------------------------

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._res_read, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                self._dispatch(json.loads(raw))

    def _dispatch(self, msg: dict[str, Any]) -> None:
        with self._cond:
            if "id" in msg:
                self._replies[msg["id"]] = msg
            else:
                self.events.append(msg)
                method, params = msg.get("method"), msg.get("params", {})
                if method == "Network.requestWillBeSent":
                    self.requests.append(params["request"]["url"])
                elif method == "Network.responseReceived":
                    self.responses.append((params["response"]["url"], params["response"]["status"]))
                elif method == "Runtime.exceptionThrown":
                    self.console_errors.append(json.dumps(params["exceptionDetails"])[:300])
                elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                    self.console_errors.append(params["entry"].get("text", ""))
                elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                    self.console_errors.append(json.dumps(params.get("args"))[:300])
            self._cond.notify_all()

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        with self._cond:
            self._next += 1
            ident = self._next
        msg: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_write, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while ident not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise BrowserError(f"no reply to {method} within {self.timeout}s")
                self._cond.wait(left)
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.send(method, self.session, **params)

    def _attach(self) -> str:
        deadline = time.monotonic() + self.timeout
        while True:
            targets = self.send("Target.getTargets")["targetInfos"]
            pages = [t for t in targets if t["type"] == "page"]
            if pages:
                break
            if time.monotonic() > deadline:
                raise BrowserError("Chromium opened no page")
            time.sleep(0.05)
        session = str(
            self.send("Target.attachToTarget", targetId=pages[0]["targetId"], flatten=True)[
                "sessionId"
            ]
        )
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable", session)
        return session

    # -- what tests do ----------------------------------------------------------------------

    def navigate(self, url: str) -> None:
        loaded = len(self.events)
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired", after=loaded)

    def wait_event(self, method: str, after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while True:
                for event in self.events[after:]:
                    if event.get("method") == method:
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BrowserError(f"no {method} within {self.timeout}s")
                self._cond.wait(left)

    def evaluate(self, expression: str) -> Any:
        reply = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression[:80]}: {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None) -> Any:
        """Poll ``expression`` until it is truthy; returns its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"still falsy after {timeout or self.timeout}s: {expression}")
            time.sleep(0.02)

    def insert_text(self, text: str) -> None:
        self.call("Input.insertText", text=text)

    def press(self, key: str) -> None:
        code, key_code, text = KEYS[key]
        common = {"key": key, "code": code, "windowsVirtualKeyCode": key_code}
        self.call("Input.dispatchKeyEvent", type="keyDown", text=text, **common)
        self.call("Input.dispatchKeyEvent", type="keyUp", **common)

    def click(self, selector: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def resize(self, width: int, height: int, mobile: bool = False) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width, height=height, deviceScaleFactor=1, mobile=mobile,
        )  # fmt: skip

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        # Chromium's helpers (zygote, renderers) share its process group: end them all.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        with contextlib.suppress(OSError):
            os.close(self._cmd_write)
        self._reader.join(timeout=5)  # EOF once Chromium is gone
        with contextlib.suppress(OSError):
            os.close(self._res_read)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
