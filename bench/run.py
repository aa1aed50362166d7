"""``make bench``: favgate beside a raw baseline, on one database, in one run.

Starts SecantusDB, seeds it (bench/seed.py), then for each driver (motor, PyMongo's async
client) serves favgate and then the baseline (bench/serve.py, bench/baseline.py) and
drives each workload with wrk at 1 and 32 connections. Then memory: idle RSS, RSS with
1,000 keep-alive connections, and a growth check (favgate under all workloads for
``--growth`` seconds). Writes bench/results/latest.{json,md}, a timestamped copy of each,
and bench/RESULTS.md, and prints the Markdown.

``--soak SECONDS`` runs only the growth check, for as long as asked (``make bench-soak``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import measure
import report
import sampling
import seed

from favgate.embedded import ServerProcess

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
DATABASE = "favgate_bench"
DRIVERS = ["motor", "pymongo"]
# favgate-nolimit is favgate without its rate-limit middleware (bench/serve.py): it tells
# the limiter's cost from the rest of the gateway's.
KINDS = ["favgate", "favgate-nolimit", "baseline"]
RATE_LIMIT = 1_000_000_000
CACHE_TTL = 1.0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.uri = ""  # the database of the server under test
        self.tokens = RESULTS / "tokens.txt"
        self._runs = 0

    @contextlib.contextmanager
    def database(self) -> Iterator[None]:
        """A database server of its own, seeded, for one workload of one server: each run
        meets the database in the same state (SecantusDB slows down as writes accumulate,
        deleted ones included: a few thousand upserts take it from 700 to 250 a second)."""
        with ServerProcess(":memory:", log_path=RESULTS / "secantusd.log") as database:
            self.uri = database.uri.replace("/?", f"/{DATABASE}?", 1)
            seed.seed(self.uri, DATABASE, self.args.tokens, self.tokens)
            yield

    def env(self, driver: str) -> dict[str, str]:
        return {
            **os.environ,
            "MONGODB_URI": self.uri,
            "BENCH_DATABASE": DATABASE,
            "FAVGATE_MONGO_DRIVER": driver,
            "FAVGATE_ENV": "production",
            "FAVGATE_LOG_LEVEL": "warning",
            "FAVGATE_RATE_LIMIT": str(RATE_LIMIT),
            "FAVGATE_CACHE_TTL_SECONDS": str(CACHE_TTL),
        }

    def start(self, kind: str, driver: str) -> measure.Server:
        return measure.Server(kind, free_port(), self.env(driver), RESULTS / f"{kind}.log")

    def load(self, workload: str, connections: int, seconds: int) -> measure.Load:
        self._runs += 1
        return measure.Load(workload, connections, seconds, self._runs)

    def before(self) -> None:
        seed.reset(self.uri, DATABASE)

    def measure(self, server: measure.Server, workload: str, connections: int, seconds: int):
        self.before()
        load = self.load(workload, connections, seconds)
        result = measure.measure(server, load, self.tokens, seed.MESSAGES)
        print(
            f"    {connections:>2} connections: {result['throughput']:7.0f} req/s, "
            f"{result['cpu_us_per_request']:5.0f} µs CPU/req, "
            f"{result['round_trips_per_request']:.2f} round trips/req",
            file=sys.stderr,
            flush=True,
        )
        return result

    @contextlib.contextmanager
    def serving(self, kind: str, driver: str) -> Iterator[measure.Server]:
        """``kind`` served on a fresh, seeded database."""
        with self.database():
            server = self.start(kind, driver)
            try:
                yield server
            finally:
                server.stop()

    def serve(self, kind: str, driver: str) -> dict[str, Any]:
        """Memory idle and with 1,000 connections; then each workload, on a fresh database
        and server, at 1 and 32 connections."""
        result: dict[str, Any] = {"workloads": {}, "profiles": {}}
        for workload in report.WORKLOADS:
            with self.serving(kind, driver) as server:
                if "idle_rss_mb" not in result:
                    result["idle_rss_mb"] = measure.memory_mb(server.pid, "VmRSS")
                    result["keepalive_rss_mb"] = measure.rss_with_connections(server, 1000)
                result["workloads"][workload] = self.workload(server, workload)
                if self.args.profile and kind == "favgate":
                    result["profiles"][workload] = self.profile(server, workload, driver)
        return result

    def workload(self, server: measure.Server, workload: str) -> dict[str, Any]:
        args = self.args
        print(f"  {server.kind}: {workload}", file=sys.stderr, flush=True)
        self.measure(server, workload, 32, args.warmup)  # caches, lazy imports, allocators
        return {
            "1": self.measure(server, workload, 1, args.seconds_c1),
            "32": self.measure(server, workload, 32, args.seconds_c32),
        }

    def profile(self, server: measure.Server, workload: str, driver: str) -> dict[str, Any]:
        """Where the server's time goes at 32 connections: an extra, unmeasured run."""
        self.before()
        raw = RESULTS / f"profile-{driver}-{workload}.txt"
        load = self.load(workload, 32, self.args.seconds_c32)
        with sampling.recording(server.pid, load.seconds, raw):
            subprocess.run(
                load.command(server, self.tokens, seed.MESSAGES), capture_output=True, check=True
            )
        return sampling.summary(raw)

    def growth(self, driver: str, seconds: int) -> dict[str, Any]:
        """favgate under all four workloads at once; RSS every 5 s."""
        print(f"  growth check, {driver}, {seconds:.0f} s", file=sys.stderr, flush=True)
        with self.database():
            server = self.start("favgate", driver)
            try:
                loads = [self.load(w, 8, seconds) for w in report.WORKLOADS]
                commands = [load.command(server, self.tokens, seed.MESSAGES) for load in loads]
                runs = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True) for c in commands]
                samples = sample_rss(server.pid, seconds, every=5)
                outputs = [run.communicate()[0] for run in runs]
            finally:
                server.stop()
        requests = sum(measure.parse_wrk(output)["requests"] for output in outputs)
        return {
            "seconds": seconds,
            "requests": requests,
            "samples_mb": samples,
            "start_mb": samples[0],
            "end_mb": samples[-1],
        }


def sample_rss(pid: int, seconds: float, every: float) -> list[float]:
    samples, started = [], time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(min(every, seconds - elapsed))
        samples.append(measure.memory_mb(pid, "VmRSS"))
    return samples


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "")
    meminfo = Path("/proc/meminfo").read_text().split()
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "memory_gb": int(meminfo[meminfo.index("MemTotal:") + 1]) / 1024 / 1024,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": (wrk.stdout or wrk.stderr).split("[")[0].strip(),
    }


def benchmark(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "config": config(args), "drivers": {}}
    if args.soak:
        results["growth"] = {"motor": bench.growth("motor", args.soak)}
        return results
    for driver in DRIVERS:
        print(f"{driver}:", file=sys.stderr, flush=True)
        results["drivers"][driver] = {kind: bench.serve(kind, driver) for kind in KINDS}
    # The default driver only: the growth of the other is the same code's.
    results["growth"] = {"motor": bench.growth("motor", args.growth)}
    return results


def config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "warmup_seconds": args.warmup,
        "seconds_c1": args.seconds_c1,
        "seconds_c32": args.seconds_c32,
        "rate_limit": RATE_LIMIT,
        "tokens": args.tokens,
        "cache_ttl": CACHE_TTL,
    }


def write(results: dict[str, Any]) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = json.dumps(results, indent=2)
    for name in [f"results-{stamp}.json", "latest.json"]:
        (RESULTS / name).write_text(text + "\n")
    if results["drivers"]:
        table = report.markdown(results)
        for path in [RESULTS / f"results-{stamp}.md", RESULTS / "latest.md", BENCH / "RESULTS.md"]:
            path.write_text(f"# favgate benchmark\n\n{table}")
        return table
    return report.growth_line(results["growth"])


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seconds-c1", type=int, default=3)
    parser.add_argument("--seconds-c32", type=int, default=5)
    parser.add_argument("--growth", type=int, default=60)
    parser.add_argument("--soak", type=int, default=0, help="only a growth check this long")
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument(
        "--profile", action="store_true", help="also sample favgate with py-spy, per workload"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    RESULTS.mkdir(exist_ok=True)
    started = time.monotonic()
    results = benchmark(Bench(args), args)
    results["elapsed_seconds"] = round(time.monotonic() - started)
    print(write(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
