"""Screenshot a Dagster UI page in headless Chromium, optionally after opening one metadata entry.

`chromium --screenshot` cannot click, and Dagster shows Markdown metadata (the audit's drift tables and
charts) behind a "[Show Markdown]" link; this drives Chromium over the DevTools protocol instead:
navigate, wait for the page to show `--wait-for`, click the link in the metadata row named `--open`,
wait, capture. Used by scripts/screenshot-ui.

    .venv/bin/python scripts/ui_screenshot.py URL OUT.png [--open charts] [--wait-for TEXT]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import websockets

WIDTH, HEIGHT = 1600, 1000
TIMEOUT = 60.0

# Finds the metadata row whose first cell is the entry's name and clicks its "[Show Markdown]" link.
OPEN_ENTRY = """
(() => {
  const row = [...document.querySelectorAll('tr')].find(r => r.cells[0]?.innerText.trim() === %s);
  // the innermost element with the link's text: its cell has the same text but no click handler
  const link = row && [...row.querySelectorAll('*')].filter(e => e.innerText?.trim() === '[Show Markdown]').pop();
  if (link) { link.click(); return true; }
  return false;
})()
"""


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params):
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not await self.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never showed {what}")
            await asyncio.sleep(0.5)


async def capture(debug_port: int, url: str, out: str, entry: str | None, wait_for: str | None) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json/list") as response:
        page = next(t for t in json.load(response) if t["type"] == "page")
    async with websockets.connect(page["webSocketDebuggerUrl"], max_size=64 * 1024**2) as ws:
        tools = DevTools(ws)
        await tools.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )
        await tools.call("Page.navigate", url=url)
        if wait_for:
            await tools.wait_for(f"document.body?.innerText.includes({json.dumps(wait_for)})", repr(wait_for))
        if entry:
            await tools.wait_for(OPEN_ENTRY % json.dumps(entry), f"a metadata entry {entry!r}")
        await asyncio.sleep(3 if wait_for or entry else 12)  # let images decode and the page settle
        shot = await tools.call("Page.captureScreenshot", format="png")
    with open(out, "wb") as f:
        f.write(base64.b64decode(shot["data"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--open", dest="entry", help="metadata entry whose Markdown to open")
    parser.add_argument("--wait-for", help="text the page must show before the capture")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             f"--remote-debugging-port={port}", "--remote-debugging-address=127.0.0.1", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + TIMEOUT
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version").close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            asyncio.run(capture(port, args.url, args.out, args.entry, args.wait_for))
        finally:
            os.killpg(browser.pid, signal.SIGTERM)
            browser.wait(timeout=10)


if __name__ == "__main__":
    main()
