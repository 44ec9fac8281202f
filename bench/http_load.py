"""A wrk load run against one POST endpoint: a Lua body, stopped after N requests, per-status counts.

wrk only stops on its `-d` timer, so each wrk thread stops itself after its share of the requests and leaves
a marker file; once every marker is there the harness sends SIGINT, which wakes wrk's main thread to report.
The `response` hook counts statuses per thread and `done` sums them (wrk's own summary only says "non-2xx").
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

WRK_THREADS = 2
WRK_LUA = """
%(request)s
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
%(counting)s
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("codes") or {}) do total[status] = (total[status] or 0) + n end
  end
  for status, n in pairs(total) do io.write(string.format("STATUS %%d %%d\\n", status, n)) end
  for _, p in ipairs({50, 95, 99, 99.9}) do
    io.write(string.format("PCT %%g %%.3f\\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("TOTAL %%d %%d %%.3f %%d %%d %%d\\n", summary.requests, summary.duration,
    latency.max / 1000, summary.errors.connect + summary.errors.read + summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
"""

# Counting each answer's status (and stopping after N answers) needs wrk's `response` hook, for which wrk
# parses every response into Lua strings: ~10% of a trivial route's rate when wrk shares the server's cores.
COUNTING_LUA = """
function init(args) codes = {}; seen = 0 end
function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
  seen = seen + 1
  if seen == %(per_thread)d then
    io.open("%(markers)s/done-" .. id, "w"):close()
    wrk.thread:stop()
  end
end
"""


def lua_string(text: str) -> str:
    """A Lua long-bracket literal: the JSON body goes in verbatim, quotes and backslashes included."""
    level = "=" * next(n for n in range(10) if f"]{'=' * n}]" not in text)
    return f"[{level}[{text}]{level}]"


def wrk_post(
    url: str,
    body: dict | None,
    *,
    requests: int,
    max_seconds: int,
    connections: int,
    work: Path,
    headers: dict[str, str] | None = None,
    seconds: int | None = None,
) -> dict:
    """POST `body` to `url` (GET when `body` is None) until `requests` answers (or `max_seconds`), with
    `headers` besides; scratch files go under `work`.

    With `seconds`, for that long instead and without wrk's `response` hook (COUNTING_LUA): non-2xx
    answers are then wrk's own count, not broken down by status."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (bench/run_all installs it when root)")
    if seconds is not None:
        return _wrk(url, body, requests, seconds, connections, work, headers, counting=False)
    return _wrk(url, body, requests, max_seconds, connections, work, headers, counting=True)


def _wrk(
    url: str,
    body: dict | None,
    requests: int,
    seconds: int,
    connections: int,
    work: Path,
    headers: dict[str, str] | None,
    *,
    counting: bool,
) -> dict:
    """One wrk run: until `requests` answers (counting) or for `seconds`."""
    script, markers = work.with_suffix(".lua"), work.with_name(work.name + "_done")
    shutil.rmtree(markers, ignore_errors=True)
    markers.mkdir(parents=True)
    per_thread = -(-requests // WRK_THREADS)
    request = (
        'wrk.method = "GET"'
        if body is None
        else 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {lua_string(json.dumps(body))}"
    )
    for name, value in (headers or {}).items():
        request += f"\nwrk.headers[ {lua_string(name)} ] = {lua_string(value)}"
    hooks = COUNTING_LUA % {"per_thread": per_thread, "markers": markers} if counting else ""
    script.write_text(WRK_LUA % {"request": request, "counting": hooks})
    command = [
        "wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
        "-s", str(script), url,
    ]  # fmt: skip
    wrk = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    while wrk.poll() is None:
        if len(list(markers.iterdir())) == WRK_THREADS:
            wrk.send_signal(signal.SIGINT)
            break
        time.sleep(0.05)
    output = wrk.communicate()[0]
    shutil.rmtree(markers, ignore_errors=True)
    total = re.search(r"^TOTAL (\d+) (\d+) ([\d.]+) (\d+) (\d+) (\d+)$", output, re.M)
    if total is None:
        raise RuntimeError(f"wrk did not report: {output[-500:]}")
    done, micros = int(total.group(1)), int(total.group(2))
    return {
        "command": " ".join(command),
        "requests": done,
        "seconds": micros / 1e6,
        "rps": done / (micros / 1e6),
        "statuses": {int(a): int(b) for a, b in re.findall(r"^STATUS (\d+) (\d+)$", output, re.M)},
        "percentiles": {float(a): float(b) for a, b in re.findall(r"^PCT ([\d.]+) ([\d.]+)$", output, re.M)},
        "max_ms": float(total.group(3)),
        "socket_errors": int(total.group(4)),
        "non_2xx": int(total.group(5)),
        "timeouts": int(total.group(6)),
    }


def load_summary(load: dict) -> list[str]:
    """The run as Markdown bullets: rate, status counts and errors, latency percentiles."""
    p = load["percentiles"]
    codes = ", ".join(f"{code}: {n:,}" for code, n in sorted(load["statuses"].items()))
    return [
        f"- requests: {load['requests']:,} in {load['seconds']:.1f} s = **{load['rps']:,.0f} req/s**",
        f"- status codes: {codes}; socket errors {load['socket_errors']}, timeouts {load['timeouts']}, "
        f"non-2xx {load['non_2xx']}",
        f"- latency ms: p50 {p[50.0]:.2f}, p95 {p[95.0]:.2f}, p99 {p[99.0]:.2f}, p99.9 {p[99.9]:.2f}, "
        f"max {load['max_ms']:.2f}",
    ]
