"""Time the layers chapter's three cross-correlations and write the table both pages include.

    python -m tools.bench_layers              # writes generated/layers-bench.md
    python -m tools.bench_layers --quick -o - # a fast smoke run to stdout

Median wall time per call of corr2d (Python loops), corr2d_unfold and F.conv2d with
a 3x3 kernel on N x N inputs, on the CPU.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from snippets.layers import corr2d, corr2d_unfold

OUT = Path(__file__).resolve().parents[1] / "generated" / "layers-bench.md"


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} µs"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(sizes: list[int], loop_repeats: int, fast_repeats: int) -> list[dict]:
    torch.manual_seed(0)
    rows = []
    for n in sizes:
        X, K = torch.rand(n, n), torch.rand(3, 3)
        Xb, Kb = X[None, None], K[None, None]
        assert torch.allclose(corr2d(X, K), F.conv2d(Xb, Kb)[0, 0], atol=1e-4)
        loop = median_seconds(lambda: corr2d(X, K), loop_repeats)
        unfold = median_seconds(lambda: corr2d_unfold(X, K), fast_repeats)
        builtin = median_seconds(lambda: F.conv2d(Xb, Kb), fast_repeats)
        rows.append(dict(n=n, loop=loop, unfold=unfold, builtin=builtin))
    return rows


def render(rows: list[dict]) -> str:
    lines = [
        "| N×N | corr2d (loops) | corr2d_unfold | F.conv2d | loops ÷ unfold | loops ÷ F.conv2d |",
        "| --: | --: | --: | --: | --: | --: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']}² | {fmt(r['loop'])} | {fmt(r['unfold'])} | {fmt(r['builtin'])} "
            f"| {r['loop'] / r['unfold']:.0f}× | {r['loop'] / r['builtin']:.0f}× |")
    machine = (f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
               f"Python {platform.python_version()}, {datetime.date.today().isoformat()}")
    lines += ["", f"<small>`{machine}` · `make bench`</small>", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(OUT), help="file to write, or - for stdout")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and repeats (a smoke test)")
    args = ap.parse_args(argv)
    if args.quick:
        text = render(measure([8, 16], loop_repeats=1, fast_repeats=3))
    else:
        text = render(measure([32, 64, 128], loop_repeats=5, fast_repeats=50))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {os.path.relpath(args.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
