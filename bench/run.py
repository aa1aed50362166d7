"""``make bench``: favgate beside a raw baseline, same database, same machine, one run.

For each driver (motor, PyMongo's async client) and each workload, two servers start,
each on a SecantusDB of its own, seeded alike (bench/seed.py): favgate and the raw
baseline (bench/baseline.py); with ``--diagnose``, a third, favgate without its rate
limiter (bench/serve.py). wrk drives them in turn, at 1 and then 16 connections,
``--rounds`` times, so that whatever else the machine does at a given moment weighs on
both alike; each figure is the median of the rounds. Then the live fan-out (bench/fanout.py)
for each driver, what the embedded database does alone (bench/database.py), memory (idle
RSS and RSS with 1,000 keep-alive connections, measured on the first servers) and a
growth check (favgate under every workload at once for ``--growth`` seconds). Writes
bench/results/latest.{json,md}, a timestamped copy of each, and bench/RESULTS.md, and
prints the Markdown.

``--soak SECONDS`` runs only the growth check, for as long as asked (``make bench-soak``).
``--workloads`` and ``--drivers`` narrow a run down while working on one path: such a
partial run prints each run's figures and writes results/partial.json, never RESULTS.md.
``--profile`` also samples favgate with py-spy in one more run per workload.
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

import database
import fanout
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
# the limiter's cost from the rest of the gateway's (--diagnose).
KINDS = ["favgate", "baseline"]
DIAGNOSIS = "favgate-nolimit"
CONNECTIONS = [1, 16]
RATE_LIMIT = 1_000_000_000
CACHE_TTL = 1.0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._runs = 0

    @contextlib.contextmanager
    def serving(self, kind: str, driver: str) -> Iterator[measure.Server]:
        """``kind`` served on a SecantusDB of its own, freshly seeded: every server meets
        the database in the same state (SecantusDB slows down as writes accumulate,
        deleted ones included: a few thousand upserts take it from 700 to 250 a second)."""
        log = RESULTS / f"secantusd-{kind}.log"
        with ServerProcess(":memory:", log_path=log) as database:
            env = self.env(database.uri.replace("/?", f"/{DATABASE}?", 1), kind, driver)
            seed.seed(env["MONGODB_URI"], DATABASE, self.args.tokens, Path(env["BENCH_TOKENS"]))
            server = measure.Server(kind, free_port(), env, RESULTS / f"{kind}.log")
            try:
                yield server
            finally:
                server.stop()

    def env(self, uri: str, kind: str, driver: str) -> dict[str, str]:
        return {
            **os.environ,
            "MONGODB_URI": uri,
            "BENCH_DATABASE": DATABASE,
            "BENCH_TOKENS": str(RESULTS / f"tokens-{kind}.txt"),
            "FAVGATE_MONGO_DRIVER": driver,
            "FAVGATE_ENV": "production",
            "FAVGATE_LOG_LEVEL": "warning",
            "FAVGATE_RATE_LIMIT": str(RATE_LIMIT),
            "FAVGATE_CACHE_TTL_SECONDS": str(CACHE_TTL),
        }

    @property
    def kinds(self) -> list[str]:
        return [KINDS[0], DIAGNOSIS, *KINDS[1:]] if self.args.diagnose else KINDS

    def run(self, server: measure.Server, workload: str, connections: int, seconds: int):
        """One wrk run, on a clean slate (bench/seed.py reset)."""
        seed.reset(server.uri, DATABASE)
        if workload == "persisted" and server.kind != "baseline":
            seed.register_persisted(server.url, server.tokens)
        self._runs += 1
        load = measure.Load(workload, connections, seconds, self._runs)
        return measure.measure(server, load, seed.MESSAGES)

    def driver(self, driver: str) -> dict[str, Any]:
        """Every workload on every kind of server, memory on the first servers."""
        kinds = self.kinds
        results: dict[str, Any] = {kind: {"workloads": {}, "profiles": {}} for kind in kinds}
        for workload in self.args.workloads:
            print(f"  {workload} ({load_average()})", file=sys.stderr, flush=True)
            with contextlib.ExitStack() as stack:
                servers = {kind: stack.enter_context(self.serving(kind, driver)) for kind in kinds}
                for kind, server in servers.items():
                    if "idle_rss_mb" not in results[kind]:
                        results[kind].update(memory(server))
                    self.run(server, workload, 16, self.args.warmup)  # caches, allocators
                for kind, figures in self.workload(servers, workload).items():
                    results[kind]["workloads"][workload] = figures
                if self.args.profile:
                    profile = self.profile(servers["favgate"], workload, driver)
                    results["favgate"]["profiles"][workload] = profile
        return results

    def workload(
        self, servers: dict[str, measure.Server], workload: str
    ) -> dict[str, dict[str, Any]]:
        """Each server in turn, ``--rounds`` times, at each number of connections."""
        runs: dict[tuple[str, int], list[measure.Run]] = {}
        for _ in range(self.args.rounds):
            for connections in CONNECTIONS:
                seconds = self.args.seconds_c1 if connections == 1 else self.args.seconds_c16
                for kind, server in servers.items():
                    run = self.run(server, workload, connections, seconds)
                    runs.setdefault((kind, connections), []).append(run)
                    progress(kind, connections, run)
        return {
            kind: {str(c): measure.combine(runs[kind, c]) for c in CONNECTIONS} for kind in servers
        }

    def profile(self, server: measure.Server, workload: str, driver: str) -> dict[str, Any]:
        """Where favgate's time goes at 16 connections: one more run, not measured."""
        seed.reset(server.uri, DATABASE)
        if workload == "persisted":
            seed.register_persisted(server.url, server.tokens)
        raw = RESULTS / f"profile-{driver}-{workload}.txt"
        self._runs += 1
        load = measure.Load(workload, 16, self.args.seconds_c16, self._runs)
        with sampling.recording(server.pid, load.seconds, raw):
            subprocess.run(load.command(server, seed.MESSAGES), capture_output=True, check=True)
        return sampling.summary(raw)

    def growth(self, driver: str, seconds: int) -> dict[str, Any]:
        """favgate under every workload at once, 8 connections each; RSS every 5 s."""
        print(f"  growth check, {driver}, {seconds} s", file=sys.stderr, flush=True)
        with self.serving("favgate", driver) as server:
            seed.register_persisted(server.url, server.tokens)
            loads = []
            for workload in report.WORKLOADS:
                self._runs += 1
                loads.append(measure.Load(workload, 8, seconds, self._runs))
            commands = [load.command(server, seed.MESSAGES) for load in loads]
            runs = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True) for c in commands]
            samples = sample_rss(server.pid, seconds, every=5)
            outputs = [run.communicate()[0] for run in runs]
        requests = sum(measure.parse_wrk(output)["requests"] for output in outputs)
        return {
            "seconds": seconds,
            "requests": requests,
            "samples_mb": samples,
            "start_mb": samples[0],
            "end_mb": samples[-1],
        }


def memory(server: measure.Server) -> dict[str, float]:
    return {
        "idle_rss_mb": measure.memory_mb(server.pid, "VmRSS"),
        "keepalive_rss_mb": measure.rss_with_connections(server, 1000),
    }


def progress(kind: str, connections: int, run: measure.Run) -> None:
    print(
        f"    {kind:>15}, {connections:>2} connections: {run.requests / run.seconds:5.0f} req/s, "
        f"{run.cpu_seconds / run.served * 1e6:5.0f} µs CPU/req, "
        f"{run.commands.total() / run.served:.2f} round trips/req",
        file=sys.stderr,
        flush=True,
    )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


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
    results["load"] = {"before": load_average()}
    if args.soak:
        results["growth"] = {"motor": bench.growth("motor", args.soak)}
        return results
    for driver in args.drivers:
        print(f"{driver}:", file=sys.stderr, flush=True)
        results["drivers"][driver] = bench.driver(driver)
    if args.fanout:
        args.fanout_profile = args.fanout_profile or args.profile
        results["fanout"] = {}
        for driver in args.drivers:
            print(f"  fan-out, {driver} ({load_average()})", file=sys.stderr, flush=True)
            results["fanout"][driver] = fanout.run(driver, args)
    results["load"]["after"] = load_average()
    if partial(args):
        return results
    print("  the embedded database alone", file=sys.stderr, flush=True)
    results["database"] = database.figures(RESULTS)
    # The default driver only: the other's growth is the same code's, and time is short.
    results["growth"] = {"motor": bench.growth("motor", args.growth)}
    return results


def config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "warmup_seconds": args.warmup,
        "seconds_c1": args.seconds_c1,
        "seconds_c16": args.seconds_c16,
        "rounds": args.rounds,
        "rate_limit": RATE_LIMIT,
        "tokens": args.tokens,
        "cache_ttl": CACHE_TTL,
        "gateway_cpus": sorted(measure.GATEWAY_CPUS),
        "other_cpus": sorted(measure.OTHER_CPUS),
    }


def partial(args: argparse.Namespace) -> bool:
    return args.workloads != list(report.WORKLOADS) or args.drivers != DRIVERS


def write(results: dict[str, Any]) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results["finished"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = json.dumps(results, indent=2)
    for name in [f"results-{stamp}.json", "latest.json"]:
        (RESULTS / name).write_text(text + "\n")
    if not results["drivers"]:
        return report.growth_line(results["growth"])
    table = report.markdown(results)
    for path in [RESULTS / f"results-{stamp}.md", RESULTS / "latest.md", BENCH / "RESULTS.md"]:
        path.write_text(f"# favgate benchmark\n\n{table}")
    return table


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=int, default=2, help="seconds, per server")
    parser.add_argument("--seconds-c1", type=int, default=2)
    parser.add_argument("--seconds-c16", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="runs per server and load")
    parser.add_argument("--growth", type=int, default=30, help="seconds")
    parser.add_argument("--diagnose", action="store_true", help="also favgate-nolimit")
    parser.add_argument("--no-fanout", dest="fanout", action="store_false")
    fanout.options(parser)
    parser.add_argument("--soak", type=int, default=0, help="only a growth check this long")
    parser.add_argument("--tokens", type=int, default=8, help="used in turn by the load")
    parser.add_argument("--profile", action="store_true", help="also sample favgate (py-spy)")
    parser.add_argument(
        "--workloads", type=_names(report.WORKLOADS), default=list(report.WORKLOADS)
    )
    parser.add_argument("--drivers", type=_names(DRIVERS), default=DRIVERS)
    return parser.parse_args(argv)


def _names(known: Any) -> Any:
    """A comma-separated subset of ``known``, in ``known``'s order."""

    def parse(text: str) -> list[str]:
        names = set(text.split(","))
        if unknown := names - set(known):
            raise argparse.ArgumentTypeError(f"unknown: {', '.join(sorted(unknown))}")
        return [name for name in known if name in names]

    return parse


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    RESULTS.mkdir(exist_ok=True)
    # wrk, the databases and this harness off the servers' CPU (bench/measure.py).
    os.sched_setaffinity(0, measure.OTHER_CPUS)
    started = time.monotonic()
    results = benchmark(Bench(args), args)
    results["elapsed_seconds"] = round(time.monotonic() - started)
    if partial(args):
        (RESULTS / "partial.json").write_text(json.dumps(results, indent=2) + "\n")
        return 0
    print(write(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
