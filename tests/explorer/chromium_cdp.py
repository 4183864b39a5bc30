"""A headless Chromium driven over the Chrome DevTools Protocol, through a pipe (no extra package).

Chromium's ``--remote-debugging-pipe`` reads commands on file descriptor 3 and writes replies and
events on descriptor 4, one JSON message per NUL-terminated chunk. :class:`Chromium` opens one
page, records its console messages, uncaught exceptions and every request it makes, and can
switch the network off.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


class Chromium:
    """One headless browser with one page.

    Attributes
    ----------
    console : list of (level, text)
        Console messages and log entries of the page.
    exceptions : list of str
        Uncaught exceptions of the page.
    requests : list of str
        The URL of every request the page made (``data:`` URLs included).
    """

    def __init__(self, width: int = 1400, height: int = 1000, timeout: float = 60.0):
        if CHROMIUM is None:
            raise RuntimeError("no chromium on PATH")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="vlmbrain-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire():  # in the child: the pipe ends become descriptors 3 and 4
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
             f"--window-size={width},{height}", f"--user-data-dir={self.profile}", "about:blank"],
            preexec_fn=wire, close_fds=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self._replies: dict[int, dict] = {}
        self.console: list[tuple[str, str]] = []
        self.exceptions: list[str] = []
        self.requests: list[str] = []
        self.events: list[dict] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=True)

    # ------------------------------------------------------------------ protocol
    def _send(self, method, params=None, session=False) -> int:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        return self._id

    def _pump(self, wait: float) -> None:
        ready, _, _ = select.select([self._from_chrome], [], [], wait)
        if ready:
            chunk = os.read(self._from_chrome, 1 << 22)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        while b"\0" in self._buf:
            raw, self._buf = self._buf.split(b"\0", 1)
            self._handle(json.loads(raw))

    def _handle(self, msg: dict) -> None:
        method = msg.get("method")
        params = msg.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append((params.get("type", ""), text))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.console.append((entry.get("level", ""), entry.get("text", "")))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.exceptions.append(str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Network.requestWillBeSent":
            self.requests.append(params.get("request", {}).get("url", ""))
        if method:
            self.events.append(msg)
        else:
            self._replies[msg["id"]] = msg

    def call(self, method, params=None, session=False) -> dict:
        """Send one command and return its result (raises on a protocol error)."""
        i = self._send(method, params, session)
        deadline = time.time() + self.timeout
        while i not in self._replies:
            if time.time() > deadline:
                raise TimeoutError(f"no reply to {method} within {self.timeout} s")
            self._pump(0.2)
        reply = self._replies.pop(i)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    # ------------------------------------------------------------------ page
    def offline(self) -> None:
        """No network for the page: any request to a server fails (and is still recorded)."""
        self.call("Network.emulateNetworkConditions", {"offline": True, "latency": 0, "downloadThroughput": -1,
                                                       "uploadThroughput": -1}, session=True)

    def goto(self, url: str, timeout: float = 60.0) -> None:
        """Open ``url`` and wait for its load event."""
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_for(lambda: any(e.get("method") == "Page.loadEventFired" for e in self.events), timeout)

    def eval(self, expression: str, await_promise: bool = False):
        """The value of a JavaScript expression in the page."""
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": await_promise}, session=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression[:80]}: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    def wait_for(self, predicate, timeout: float = 60.0, step: float = 0.2) -> None:
        deadline = time.time() + timeout
        while not predicate():
            if time.time() > deadline:
                raise TimeoutError("condition not met in time")
            self._pump(step)

    def wait_js(self, expression: str, timeout: float = 60.0) -> None:
        """Wait until a JavaScript expression is truthy."""
        deadline = time.time() + timeout
        while not self.eval(expression):
            if time.time() > deadline:
                raise TimeoutError(f"{expression!r} stayed false for {timeout} s")
            self._pump(0.25)

    def screenshot(self, clip: dict | None = None) -> bytes:
        """A PNG of the viewport, or of ``clip`` (``x, y, width, height`` in page pixels)."""
        params = {"format": "png", "captureBeyondViewport": clip is not None}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.call("Page.captureScreenshot", params, session=True)["data"])

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # noqa: BLE001 - it is going away either way
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
