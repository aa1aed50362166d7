"""The benchmark's Markdown report, from its JSON results."""

from __future__ import annotations

from typing import Any

WORKLOADS = {
    "chat": "REST chat favorite",
    "message": "REST message favorite",
    "set": "GraphQL setFavorite",
    "page": "GraphQL favorites(first: 20) + message",
}
# Gateway CPU per request, at most this many times the baseline's (issue 4).
CPU_BUDGETS = {"chat": 1.15, "message": 1.15, "set": 1.6, "page": 2.0}
# Throughput, at least this share of the baseline's.
THROUGHPUT_BUDGETS = {"chat": 0.9, "message": 0.9, "set": 0.8, "page": 0.8}


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Ran {results['finished']} on {machine_line(results['machine'])}.", ""]
    lines += [notes(results), ""]
    lines += ["### Summary, at 32 connections", "", *summary_table(results), ""]
    for driver, servers in results["drivers"].items():
        lines += [f"### {driver}", "", *workload_table(servers), ""]
        if "favgate-nolimit" in servers:
            lines += [*limiter_table(servers), ""]
    lines += ["### Memory", "", *memory_table(results), ""]
    lines += profiles(results)
    return "\n".join(lines)


def profiles(results: dict[str, Any]) -> list[str]:
    """With ``--profile``: where favgate's CPU goes, per driver and workload."""
    lines = []
    for driver, servers in results["drivers"].items():
        for workload, summary in servers["favgate"].get("profiles", {}).items():
            top = ", ".join(f"{name} {share}%" for share, name in summary["self"][:8])
            lines.append(f"- {driver}, {WORKLOADS[workload]}: {top}")
    if not lines:
        return []
    return [
        "### Profiles",
        "",
        "favgate's functions by share of CPU samples (self):",
        "",
        *lines,
        "",
    ]


def summary_table(results: dict[str, Any]) -> list[str]:
    """Per workload and driver at 32 connections: favgate against the baseline, and
    favgate without its rate limiter against the baseline."""
    rows = [
        "| workload | driver | req/s favgate · baseline | CPU µs/req favgate · baseline "
        "| without the limiter | round trips/req |",
        "|---|---|---|---|---|---:|",
    ]
    for workload, title in WORKLOADS.items():
        for driver, servers in results["drivers"].items():
            ours = servers["favgate"]["workloads"][workload]["32"]
            theirs = servers["baseline"]["workloads"][workload]["32"]
            throughput = ours["throughput"] / theirs["throughput"]
            cpu = ours["cpu_us_per_request"] / theirs["cpu_us_per_request"]
            bare = servers.get("favgate-nolimit", {}).get("workloads", {}).get(workload)
            without = "" if bare is None else ratio(bare["32"], theirs, workload)
            rows.append(
                f"| {title} | {driver} | {ours['throughput']:,.0f} · {theirs['throughput']:,.0f} "
                f"({throughput:.2f}x) | {ours['cpu_us_per_request']:,.0f} · "
                f"{theirs['cpu_us_per_request']:,.0f} ({cpu:.2f}x "
                f"{mark(cpu <= CPU_BUDGETS[workload])}) | {without} "
                f"| {ours['round_trips_per_request']:.2f} · "
                f"{theirs['round_trips_per_request']:.2f} |"
            )
    return rows


def ratio(ours: dict[str, Any], theirs: dict[str, Any], workload: str) -> str:
    cpu = ours["cpu_us_per_request"] / theirs["cpu_us_per_request"]
    return f"{ours['cpu_us_per_request']:,.0f} µs ({cpu:.2f}x {mark(cpu <= CPU_BUDGETS[workload])})"


def machine_line(machine: dict[str, Any]) -> str:
    return (
        f"{machine['cpu']}, {machine['nproc']} CPUs (nproc), {machine['memory_gb']:.0f} GB RAM, "
        f"Linux {machine['kernel']}, Python {machine['python']}, {machine['wrk']}"
    )


def cpus_line(config: dict[str, Any]) -> str:
    gateway, others = config.get("gateway_cpus"), config.get("other_cpus")
    if not gateway or gateway == others:
        return "Servers, wrk and databases share the CPUs."
    return (
        f"The server under test runs alone on CPU {', '.join(map(str, gateway))}; wrk, the "
        f"databases and the harness on CPU {', '.join(map(str, others))}."
    )


def notes(results: dict[str, Any]) -> str:
    config = results["config"]
    return (
        f"wrk, 1 thread; {config['seconds_c1']} s at 1 connection and "
        f"{config['seconds_c32']} s at 32, after a {config['warmup_seconds']} s warm-up. "
        f"favgate with a rate limit of {config['rate_limit']:,} per minute (the limiter runs "
        f"but admits everything), {config['tokens']} tokens used in turn, cache TTL "
        f"{config['cache_ttl']} s. {cpus_line(config)} "
        "CPU is the server process's own (utime + stime), round "
        "trips are database commands counted in the server process, both per request. "
        "Ratios are favgate / baseline; ✓ or ✗ against the budget."
    )


def workload_table(servers: dict[str, Any]) -> list[str]:
    rows = [
        "| workload | conns | req/s favgate · baseline | p50 ms | p99 ms "
        "| CPU µs/req favgate · baseline | round trips/req | peak RSS MB |",
        "|---|---:|---|---|---|---|---|---|",
    ]
    favgate, baseline = servers["favgate"]["workloads"], servers["baseline"]["workloads"]
    for workload, title in WORKLOADS.items():
        for connections in sorted(favgate[workload], key=int):
            ours, theirs = favgate[workload][connections], baseline[workload][connections]
            rows.append(row(workload, title, connections, ours, theirs))
    return rows


def row(workload: str, title: str, connections: str, ours: Any, theirs: Any) -> str:
    throughput = ours["throughput"] / theirs["throughput"]
    cpu = ours["cpu_us_per_request"] / theirs["cpu_us_per_request"]
    return " | ".join(
        [
            f"| {title}",
            connections,
            f"{ours['throughput']:,.0f} · {theirs['throughput']:,.0f} "
            f"({throughput:.2f}x {mark(throughput >= THROUGHPUT_BUDGETS[workload])})",
            f"{ours['p50_ms']:.2f} · {theirs['p50_ms']:.2f}",
            f"{ours['p99_ms']:.2f} · {theirs['p99_ms']:.2f}",
            f"{ours['cpu_us_per_request']:,.0f} · {theirs['cpu_us_per_request']:,.0f} "
            f"({cpu:.2f}x {mark(cpu <= CPU_BUDGETS[workload])})",
            f"{ours['round_trips_per_request']:.2f} · {theirs['round_trips_per_request']:.2f}",
            f"{ours['peak_rss_mb']:.0f} · {theirs['peak_rss_mb']:.0f} |",
        ]
    )


def limiter_table(servers: dict[str, Any]) -> list[str]:
    """favgate without its rate-limit middleware: what the limiter costs, and the rest."""
    rows = [
        "Without the rate limiter (a diagnosis: favgate with its rate-limit middleware "
        "removed, in bench/serve.py only):",
        "",
        "| workload | conns | req/s (x baseline) | CPU µs/req (x baseline) "
        "| limiter's CPU µs/req | round trips/req |",
        "|---|---:|---|---|---:|---:|",
    ]
    favgate = servers["favgate"]["workloads"]
    bare, baseline = servers["favgate-nolimit"]["workloads"], servers["baseline"]["workloads"]
    for workload, title in WORKLOADS.items():
        for connections in sorted(bare[workload], key=int):
            ours, theirs = bare[workload][connections], baseline[workload][connections]
            throughput = ours["throughput"] / theirs["throughput"]
            cpu = ours["cpu_us_per_request"] / theirs["cpu_us_per_request"]
            limiter = favgate[workload][connections]["cpu_us_per_request"]
            limiter -= ours["cpu_us_per_request"]
            rows.append(
                f"| {title} | {connections} | {ours['throughput']:,.0f} ({throughput:.2f}x) "
                f"| {ours['cpu_us_per_request']:,.0f} ({cpu:.2f}x "
                f"{mark(cpu <= CPU_BUDGETS[workload])}) | {limiter:,.0f} "
                f"| {ours['round_trips_per_request']:.2f} |"
            )
    return rows


def mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def memory_table(results: dict[str, Any]) -> list[str]:
    rows = [
        "| server | driver | idle RSS MB | RSS with 1,000 keep-alive connections MB |",
        "|---|---|---:|---:|",
    ]
    for driver, servers in results["drivers"].items():
        for kind, server in servers.items():
            rows.append(
                f"| {kind} | {driver} | {server['idle_rss_mb']:.0f} "
                f"| {server['keepalive_rss_mb']:.0f} |"
            )
    rows += ["", growth_line(results.get("growth", {}))]
    return rows


def growth_line(growth: dict[str, Any]) -> str:
    if not growth:
        return ""
    parts = [
        f"{driver}: {g['start_mb']:.0f} → {g['end_mb']:.0f} MB "
        f"(max {max(g['samples_mb']):.0f}, {g['requests']:,} requests)"
        for driver, g in growth.items()
    ]
    seconds = next(iter(growth.values()))["seconds"]
    return (
        f"Growth check, favgate under all four workloads at once for {seconds} s "
        f"(RSS after the first 5 s → at the end): {'; '.join(parts)}."
    )
