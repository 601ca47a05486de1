"""Time the layers chapter's three cross-correlations and write the table both pages include.

    python -m tools.bench_layers              # writes generated/layers-bench.md
    python -m tools.bench_layers --quick -o - # a fast smoke run to stdout

Median wall time per call of corr2d (Python loops), corr2d_unfold and F.conv2d with
a 3x3 kernel on N x N inputs, on the CPU; then nn.Conv2d layers (inference, no_grad)
on contiguous (NCHW) input and weights against the same in channels_last (NHWC).
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
from torch import nn

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


# (N, C_in, H=W, C_out, kernel): a 3x3 layer, a 1x1 layer, a 7x7 stem on a 224x224 image
CONV_LAYERS = [(8, 64, 32, 64, 3), (16, 64, 28, 128, 1), (1, 3, 224, 64, 7)]
CONV_LAYERS_QUICK = [(2, 8, 16, 16, 3)]


def measure_channels_last(layers: list[tuple], repeats: int) -> list[dict]:
    """Time one nn.Conv2d on contiguous input and weights, then both in channels_last."""
    torch.manual_seed(0)
    rows = []
    for n, c_in, hw, c_out, k in layers:
        conv = nn.Conv2d(c_in, c_out, k, padding=k // 2).eval()
        x = torch.rand(n, c_in, hw, hw)
        with torch.no_grad():
            y = conv(x)
            contiguous = median_seconds(lambda: conv(x), repeats)
            conv = conv.to(memory_format=torch.channels_last)  # in place
            x = x.to(memory_format=torch.channels_last)
            assert torch.allclose(conv(x), y, atol=1e-4)
            last = median_seconds(lambda: conv(x), repeats)
        rows.append(dict(layer=f"Conv2d({c_in}, {c_out}, {k})", input=f"{n}×{c_in}×{hw}×{hw}",
                         contiguous=contiguous, channels_last=last))
    return rows


def render_channels_last(rows: list[dict]) -> str:
    lines = [
        "| layer | input (N×C×H×W) | contiguous (NCHW) | channels_last (NHWC) "
        "| contiguous ÷ channels_last |",
        "| --- | --: | --: | --: | --: |",
    ]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['input']} | {fmt(r['contiguous'])} "
                     f"| {fmt(r['channels_last'])} "
                     f"| {r['contiguous'] / r['channels_last']:.1f}× |")
    return "\n".join(lines)


def render(rows: list[dict], cl_rows: list[dict] | None = None) -> str:
    lines = [
        "| N×N | corr2d (loops) | corr2d_unfold | F.conv2d | loops ÷ unfold | loops ÷ F.conv2d |",
        "| --: | --: | --: | --: | --: | --: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']}² | {fmt(r['loop'])} | {fmt(r['unfold'])} | {fmt(r['builtin'])} "
            f"| {r['loop'] / r['unfold']:.0f}× | {r['loop'] / r['builtin']:.0f}× |")
    if cl_rows:
        lines += ["", render_channels_last(cl_rows)]
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
        text = render(measure([8, 16], loop_repeats=1, fast_repeats=3),
                      measure_channels_last(CONV_LAYERS_QUICK, repeats=3))
    else:
        text = render(measure([32, 64, 128], loop_repeats=5, fast_repeats=50),
                      measure_channels_last(CONV_LAYERS, repeats=20))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {os.path.relpath(args.output)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
