"""The benchmark's Markdown report, from its JSON results."""

from __future__ import annotations

import statistics
from typing import Any

WORKLOADS = {
    "chat": "REST chat favorite",
    "message": "REST message favorite",
    "set": "GraphQL setFavorite",
    "persisted": "GraphQL setFavorite by persisted hash",
    "page": "GraphQL favorites(first: 20) + message",
}
# Gateway CPU per request, at most this many times the baseline's (issue 11), at 16
# connections; and database round trips per request (message favorite: warm, its
# message's chat cached).
CPU_BUDGETS = {"chat": 1.10, "message": 1.10, "set": 1.30, "persisted": 1.25, "page": 1.60}
ROUND_TRIP_BUDGETS = {"chat": 2, "message": 2, "set": 2, "persisted": 2, "page": 3}
# Throughput, at least this share of the baseline's.
THROUGHPUT_BUDGET = 0.9
BUDGETED = "16"  # connections
# Live fan-out (bench/fanout.py): every subscriber within this long of the write's answer,
# /healthz within this long throughout.
FAN_OUT_BUDGET_MS = 150
HEALTHZ_BUDGET_MS = 50


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Ran {results['finished']} on {machine_line(results['machine'])}.", ""]
    lines += [notes(results), ""]
    lines += [f"### Budgets, at {BUDGETED} connections", "", *summary_table(results), ""]
    if results.get("fanout"):
        lines += ["### Live fan-out", "", *fanout_table(results["fanout"]), ""]
    if results.get("database"):
        lines += ["### The embedded database", "", database_line(results["database"]), ""]
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
            lines.append(f"- {driver}, {WORKLOADS[workload]}: {top_functions(summary)}")
    for driver, fanout in results.get("fanout", {}).items():
        if "profile" in fanout:
            top = top_functions(fanout["profile"])
            lines.append(f"- {driver}, live fan-out (during the writes): {top}")
    if not lines:
        return []
    return [
        "### Profiles",
        "",
        "Shares of the CPU samples: the top functions running (self), then favgate's own "
        "functions on the stack (cumulative, outermost middlewares left out).",
        "",
        *lines,
        "",
    ]


def top_functions(summary: dict[str, Any]) -> str:
    running = ", ".join(f"{name} {share}%" for share, name in summary["self"][:8])
    ours = [
        f"{name} {share}%"
        for share, name in summary["cumulative"]
        if "favgate/" in name and not name.endswith(("Middleware.__call__ (favgate/logs.py)",))
    ]
    return f"self: {running}; favgate, cumulative: {', '.join(ours[:8])}"


def summary_table(results: dict[str, Any]) -> list[str]:
    """Per workload and driver: favgate against the baseline, each figure the median of
    the rounds (a ratio: the median of each round's ratio, both measured side by side)."""
    rows = [
        "| workload | driver | CPU µs/req favgate · baseline | CPU ratio (budget) "
        "| round trips/req (budget) | req/s favgate · baseline | at 1 connection: CPU ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for workload, title in WORKLOADS.items():
        for driver, servers in results["drivers"].items():
            if workload not in servers["favgate"]["workloads"]:
                continue
            ours = servers["favgate"]["workloads"][workload]
            theirs = servers["baseline"]["workloads"][workload]
            rows.append(summary_row(workload, title, driver, ours, theirs))
    return rows


def summary_row(workload: str, title: str, driver: str, ours: Any, theirs: Any) -> str:
    now, base = ours[BUDGETED], theirs[BUDGETED]
    cpu = paired_ratio(now, base, "cpu_us_per_request")
    throughput = paired_ratio(now, base, "throughput")
    trips = now["round_trips_per_request"]
    single = paired_ratio(ours["1"], theirs["1"], "cpu_us_per_request") if "1" in ours else 0
    return (
        f"| {title} | {driver} | {now['cpu_us_per_request']:,.0f} · "
        f"{base['cpu_us_per_request']:,.0f} | {cpu:.2f}x {mark(cpu <= CPU_BUDGETS[workload])} "
        f"(≤ {CPU_BUDGETS[workload]:.2f}) | {trips:.2f} "
        f"{mark(trips <= ROUND_TRIP_BUDGETS[workload])} (≤ {ROUND_TRIP_BUDGETS[workload]}) "
        f"| {now['throughput']:,.0f} · {base['throughput']:,.0f} ({throughput:.2f}x "
        f"{mark(throughput >= THROUGHPUT_BUDGET)}) | {single:.2f}x |"
    )


def paired_ratio(ours: dict[str, Any], theirs: dict[str, Any], figure: str) -> float:
    """The median over the rounds of favgate's figure over the baseline's, each round's
    runs made side by side (so under the same load)."""
    pairs = zip(ours.get("runs", [ours]), theirs.get("runs", [theirs]), strict=True)
    return float(statistics.median(a[figure] / b[figure] for a, b in pairs))


def fanout_table(fanout: dict[str, Any]) -> list[str]:
    rows = [
        "| driver | subscriptions (connections) | writes | fan-out ms p50 · max (budget) "
        "| /healthz ms p99 · max (budget) | write ms p50 · max | RSS MB per 1,000 subscriptions |",
        "|---|---|---:|---|---|---|---:|",
    ]
    for driver, f in fanout.items():
        late = f["fan_out_max_ms"] <= FAN_OUT_BUDGET_MS
        health = f["healthz"]["max_ms"] <= HEALTHZ_BUDGET_MS
        rows.append(
            f"| {driver} | {f['subscriptions']:,} ({f['connections']}) | {f['writes']} "
            f"| {f['fan_out_p50_ms']:.0f} · {f['fan_out_max_ms']:.0f} {mark(late)} "
            f"(≤ {FAN_OUT_BUDGET_MS}) | {f['healthz']['p99_ms']:.0f} · "
            f"{f['healthz']['max_ms']:.0f} {mark(health)} (≤ {HEALTHZ_BUDGET_MS}) "
            f"| {f['write_p50_ms']:.0f} · {f['write_max_ms']:.0f} "
            f"| {f['rss_per_1000_subscriptions_mb']:.1f} |"
        )
    rows += [
        "",
        "Fan-out: from a REST write's answer to the last subscriber's `next` message, one "
        "write at a time; /healthz asked every 10 ms by another process meanwhile; RSS "
        "measured before the subscriptions (connections acknowledged) and after.",
    ]
    return rows


def database_line(database: dict[str, Any]) -> str:
    return (
        f"SecantusDB alone (PyMongo, one client, nothing else running): "
        f"{database['sequential_upserts_per_second']:,.0f} sequential upserts a second; a "
        f"sorted page of 20 among {database['favorites']:,} favorites of one instance takes "
        f"{database['page_ms']:.0f} ms (median of {database['pages']})."
    )


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
        f"{config['seconds_c16']} s at 16, after a {config['warmup_seconds']} s warm-up; "
        f"{config['rounds']} rounds, each figure the median of the rounds. Load average "
        f"{load_line(results)}. "
        f"favgate with a rate limit of {config['rate_limit']:,} per minute (the limiter runs "
        f"but admits everything), {config['tokens']} tokens used in turn, cache TTL "
        f"{config['cache_ttl']} s. {cpus_line(config)} "
        "CPU is the server process's own (utime + stime), round "
        "trips are database commands counted in the server process, both per request. "
        "Ratios are favgate / baseline; ✓ or ✗ against the budget."
    )


def load_line(results: dict[str, Any]) -> str:
    load = results.get("load", {})
    return f"before {load.get('before', '?')}, after {load.get('after', '?')} (1, 5, 15 min)"


def workload_table(servers: dict[str, Any]) -> list[str]:
    rows = [
        "| workload | conns | req/s favgate · baseline | p50 ms | p99 ms "
        "| CPU µs/req favgate · baseline | round trips/req | peak RSS MB |",
        "|---|---:|---|---|---|---|---|---|",
    ]
    favgate, baseline = servers["favgate"]["workloads"], servers["baseline"]["workloads"]
    for workload, title in WORKLOADS.items():
        for connections in sorted(favgate.get(workload, {}), key=int):
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
            f"({throughput:.2f}x {mark(throughput >= THROUGHPUT_BUDGET)})",
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
        for connections in sorted(bare.get(workload, {}), key=int):
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
        f"Growth check, favgate under all the workloads at once for {seconds} s "
        f"(RSS after the first 5 s → at the end): {'; '.join(parts)}."
    )
