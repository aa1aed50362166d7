"""Where a server's CPU time goes: py-spy samples, summarized (``bench/run.py --profile``).

py-spy samples the running process from outside, without instrumenting it. The summary
ranks functions by the share of samples in which they are on the stack (cumulative), and
keeps the frames that name favgate's own work and the layers it runs on, so that a
budget that is not met comes with the reason.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

# Frames worth naming: favgate's own, and the layers whose cost it chooses.
KEPT = ("favgate/", "strawberry/", "graphql/", "starlette/", "uvicorn/", "pymongo/", "motor/")
TOP = 30


@contextlib.contextmanager
def recording(pid: int, seconds: int, output: Path) -> Iterator[None]:
    """Sample ``pid`` for ``seconds`` while the body runs; raw stacks to ``output``."""
    # The venv's own, when the harness runs from it without the venv on PATH (make bench).
    beside = Path(sys.executable).parent / "py-spy"
    py_spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if py_spy is None:
        raise RuntimeError("py-spy is not installed (it is in favgate's dev extra)")
    # --gil: only the thread holding the GIL, that is, where Python spends CPU time.
    command = [py_spy, "record", "--gil", "--nonblocking", "-r", "1000", "-f", "raw"]
    command += ["-p", str(pid), "-d", str(seconds), "-o", str(output)]
    sampler = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        sampler.wait(timeout=seconds + 30)


def summary(raw: Path) -> dict[str, list[tuple[float, str]]]:
    """The ``TOP`` kept functions by share of the samples: on the stack (``cumulative``)
    and running (``self``), each as (percent, name)."""
    cumulative: Counter[str] = Counter()
    running: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames, samples = stack.split(";"), int(count)
        total += samples
        for frame in set(frames):
            cumulative[frame] += samples
        running[frames[-1]] += samples
    return {"cumulative": _top(cumulative, total), "self": _top(running, total)}


def _top(counts: Counter[str], total: int) -> list[tuple[float, str]]:
    by_function: Counter[str] = Counter()
    for frame, samples in counts.items():
        by_function[_function(frame)] += samples
    kept = [(n, f) for f, n in by_function.items() if any(k in f for k in KEPT)]
    return [(round(100 * n / total, 1), f) for n, f in sorted(kept, reverse=True)[:TOP]]


def _function(frame: str) -> str:
    """``name (package/module.py)``: the line number dropped, the path from the package."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for root in ("site-packages/", "/work/main/"):
        path = path.rpartition(root)[2] or path
    return f"{name} ({path})"
