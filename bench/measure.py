"""Measuring a server process: its own CPU and memory accounting, its request and database
command counters, and the load wrk puts on it.

CPU time is the process's utime + stime from ``/proc/<pid>/stat``, read before and after a
run: everything the gateway process spent, in every thread (motor's included), and
nothing the database or wrk spent. It is divided by the requests the server served
(bench/serve.py counts them), which include those wrk left in flight when it stopped.
Peak RSS is ``VmHWM``, reset before each run through ``/proc/<pid>/clear_refs``.

On a machine of two CPUs or more, the servers under test have the first CPU to themselves
(one is loaded at a time), and the harness, wrk and the database share the others
(``GATEWAY_CPUS``, ``OTHER_CPUS``; bench/run.py moves itself there, and its children
inherit it): the gateway's CPU time is then its own work, not what it lost to a
neighbour on a shared core, and the Python database server never takes its core.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# The persisted workload's document, registered before its runs (bench/seed.py).
PERSISTED_QUERY = (
    'mutation Set($n: String!) { setFavorite(instance: "bench", number: $n, '
    "favorite: true) { success message chatJid messageId favorite type } }"
)
PERSISTED_HASH = hashlib.sha256(PERSISTED_QUERY.encode()).hexdigest()
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
_CPUS = sorted(os.sched_getaffinity(0))
GATEWAY_CPUS = set(_CPUS[:1])
OTHER_CPUS = set(_CPUS[1:]) or GATEWAY_CPUS


def on_cpus(cpus: set[int]) -> Any:
    """A ``preexec_fn`` that starts a child on ``cpus``."""
    return lambda: os.sched_setaffinity(0, cpus)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid``, all threads, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def memory_mb(pid: int, field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of ``pid``, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak_rss(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class Server:
    """``bench/serve.py KIND PORT`` as a child process, on the database at ``uri``, whose
    tokens are in the file ``tokens``."""

    def __init__(self, kind: str, port: int, env: dict[str, str], log: Path) -> None:
        self.kind = kind
        self.uri = env["MONGODB_URI"]
        self.tokens = Path(env["BENCH_TOKENS"])
        self.url = f"http://127.0.0.1:{port}"
        self._log = log.open("ab")
        command = [sys.executable, str(BENCH / "serve.py"), kind, str(port)]
        self.process = subprocess.Popen(
            command,
            cwd=BENCH,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=on_cpus(GATEWAY_CPUS),
        )
        self.pid = self.process.pid
        self._wait_until_ready()

    def _wait_until_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited; see {self._log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not answer in {timeout} s")

    def counters(self) -> tuple[int, Counter[str]]:
        """Requests served and database commands sent so far (by "command collection"),
        once no request is in flight."""
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen(f"{self.url}/__bench__/commands", timeout=5) as reply:
                state = json.load(reply)
            if state["active"] == 0 or time.monotonic() > deadline:
                return state["requests"], Counter(state["commands"])
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()


@dataclass(frozen=True)
class Load:
    """One wrk run: which requests, how many connections, how long."""

    workload: str  # chat, message, set, persisted, page (see wrk.lua)
    connections: int
    seconds: int
    run: int  # unique per run: chat numbers never repeat across runs

    def command(self, server: Server, messages: int) -> list[str]:
        script = ["-s", str(BENCH / "wrk.lua"), server.url, "--"]
        requests = "baseline" if server.kind == "baseline" else "favgate"
        arguments = [requests, self.workload, str(self.run), str(server.tokens), str(messages)]
        arguments.append(PERSISTED_HASH)
        options = ["-t1", f"-c{self.connections}", f"-d{self.seconds}s", "--timeout", "10s"]
        return ["wrk", *options, *script, *arguments]


@dataclass(frozen=True)
class Run:
    """What one run measured: wrk's view, and the server's own accounting."""

    requests: int  # completed, as wrk saw them
    seconds: float
    p50_ms: float
    p99_ms: float
    served: int  # as the server counted them
    cpu_seconds: float
    commands: Counter[str]
    peak_rss_mb: float


def parse_wrk(output: str) -> dict[str, Any]:
    for line in output.splitlines():
        if line.startswith("BENCH-JSON "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH-JSON "))
            return result
    raise RuntimeError(f"no result in wrk's output:\n{output}")


def measure(server: Server, load: Load, messages: int) -> Run:
    """Run ``load`` against ``server``."""
    reset_peak_rss(server.pid)
    served, sent = server.counters()
    cpu = cpu_seconds(server.pid)
    output = subprocess.run(
        load.command(server, messages), capture_output=True, text=True, check=True
    ).stdout
    served_after, sent_after = server.counters()
    cpu = cpu_seconds(server.pid) - cpu
    wrk = parse_wrk(output)
    if any(wrk["errors"].values()) or not wrk["requests"]:
        raise RuntimeError(f"{server.kind} {load}: errors {wrk['errors']}\n{output}")
    return Run(
        requests=wrk["requests"],
        seconds=wrk["duration_us"] / 1e6,
        p50_ms=wrk["p50_us"] / 1000,
        p99_ms=wrk["p99_us"] / 1000,
        served=served_after - served,
        cpu_seconds=cpu,
        commands=sent_after - sent,
        peak_rss_mb=memory_mb(server.pid, "VmHWM"),
    )


def figures(run: Run) -> dict[str, Any]:
    """One run's figures, per request where it applies."""
    return {
        "requests": run.requests,
        "throughput": run.requests / run.seconds,
        "p50_ms": run.p50_ms,
        "p99_ms": run.p99_ms,
        "cpu_us_per_request": run.cpu_seconds / run.served * 1e6,
        "round_trips_per_request": run.commands.total() / run.served,
        "peak_rss_mb": run.peak_rss_mb,
    }


def combine(runs: list[Run]) -> dict[str, Any]:
    """The figures of the runs (rounds) of one load: the median of each, every run's
    figures beside them (bench/report.py pairs them with the baseline's, round by round),
    and the commands per request over all the runs."""
    each = [figures(run) for run in runs]
    served = sum(run.served for run in runs)
    commands: Counter[str] = sum((run.commands for run in runs), Counter())
    per_request = {name: round(n / served, 3) for name, n in sorted(commands.items())}
    medians = {key: statistics.median(f[key] for f in each) for key in each[0]}
    return {
        **medians,
        "requests": sum(run.requests for run in runs),
        "peak_rss_mb": max(run.peak_rss_mb for run in runs),
        "commands_per_request": per_request,
        "runs": each,
    }


async def _open_keepalive(port: int) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)
    return writer


async def _rss_with_connections(server: Server, count: int) -> float:
    port = int(server.url.rsplit(":", 1)[1])
    writers = await asyncio.gather(*(_open_keepalive(port) for _ in range(count)))
    try:
        # Measured at once: uvicorn closes a keep-alive connection idle for 5 s.
        return memory_mb(server.pid, "VmRSS")
    finally:
        for writer in writers:
            writer.close()


def rss_with_connections(server: Server, count: int) -> float:
    """RSS while ``count`` keep-alive connections, each having made a request, are open."""
    rss = asyncio.run(_rss_with_connections(server, count))
    time.sleep(0.5)  # let the server notice the closed connections
    return rss
