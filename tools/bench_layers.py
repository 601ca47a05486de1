"""Time the layers chapter's three cross-correlations and write the tables both pages include.

    python -m tools.bench_layers              # measures; writes generated/layers-bench.json,
                                              # generated/layers-bench.zh.md and .en.md
    python -m tools.bench_layers --render     # no measuring: the .md files from the .json again
    python -m tools.bench_layers --quick -o - # a fast smoke run to stdout

Median wall time per call of corr2d (Python loops), corr2d_unfold and F.conv2d with
a 3x3 kernel on N x N inputs, on the CPU; then nn.Conv2d layers (inference, no_grad)
on contiguous (NCHW) input and weights against the same in channels_last (NHWC).
The measurement is kept in generated/layers-bench.json; each page includes the table in
its own language (generated/layers-bench.<lang>.md), both rendered from that one file.
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

from pagekit.project import LANGS
from snippets.layers import corr2d, corr2d_unfold
from tools import measured

GENERATED = Path(__file__).resolve().parents[1] / "generated"

DATA = "layers-bench.json"  # the measurement; both languages' tables are rendered from it
FRAGMENT = "layers-bench.{lang}.md"  # one table per language, each page includes its own
COMMAND = "make bench"


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
        rows.append(dict(n=n, loop=loop, unfold=unfold, builtin=builtin,
                         loop_per_unfold=loop / unfold, loop_per_builtin=loop / builtin))
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
                         contiguous=contiguous, channels_last=last, speedup=contiguous / last))
    return rows


def machine() -> dict:
    return {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "date": datetime.date.today().isoformat()}


def measure_all(quick: bool = False) -> dict:
    """Everything the tables show, as written to generated/layers-bench.json."""
    if quick:
        sizes = measure([8, 16], loop_repeats=1, fast_repeats=3)
        layers = measure_channels_last(CONV_LAYERS_QUICK, repeats=3)
    else:
        sizes = measure([32, 64, 128], loop_repeats=5, fast_repeats=50)
        layers = measure_channels_last(CONV_LAYERS, repeats=20)
    return {"machine": machine(), "command": COMMAND, "sizes": sizes, "channels_last": layers}


# The tables' words, per language (the numbers are the same in both; code names stay as they are).
WORDS = {
    "en": {
        "sizes": ("N×N", "corr2d (loops)", "corr2d_unfold", "F.conv2d", "loops ÷ unfold", "loops ÷ F.conv2d"),
        "layers": ("layer", "input (N×C×H×W)", "contiguous (NCHW)", "channels_last (NHWC)",
                   "contiguous ÷ channels_last"),
        "layer": "{}",
        "machine": "`{cpu}, {threads} threads, torch {torch}, Python {python}, {date}` · `{command}`",
    },
    "zh": {
        "sizes": ("N×N", "`corr2d`（手写循环）", "`corr2d_unfold`", "`F.conv2d`", "手写循环 ÷ `unfold`",
                  "手写循环 ÷ `F.conv2d`"),
        "layers": ("层", "输入（N×C×H×W）", "连续存放（NCHW）", "`channels_last`（NHWC）",
                   "连续存放 ÷ `channels_last`"),
        "layer": "`{}`",
        "machine": "测量环境：`{cpu}`，{threads} 个线程，`torch {torch}`，`Python {python}`，{date} · "
                   "命令 `{command}`",
    },
}


def _header(cells: tuple[str, ...], align: str) -> list[str]:
    return ["| " + " | ".join(cells) + " |", "|" + f" {align} |" * len(cells)]


def render_channels_last(rows: list[dict], lang: str = "en") -> str:
    words = WORDS[lang]
    lines = _header(words["layers"], "--:")
    lines[1] = lines[1].replace("--:", "---", 1)
    for r in rows:
        lines.append(f"| {words['layer'].format(r['layer'])} | {r['input']} | {fmt(r['contiguous'])} "
                     f"| {fmt(r['channels_last'])} | {r['speedup']:.1f}× |")
    return "\n".join(lines)


def render(data: dict, lang: str) -> str:
    """One language's tables, from the measurement `data` (generated/layers-bench.json)."""
    if lang not in WORDS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    lines = _header(WORDS[lang]["sizes"], "--:")
    for r in data["sizes"]:
        lines.append(
            f"| {r['n']}² | {fmt(r['loop'])} | {fmt(r['unfold'])} | {fmt(r['builtin'])} "
            f"| {r['loop_per_unfold']:.0f}× | {r['loop_per_builtin']:.0f}× |")
    if data.get("channels_last"):
        lines += ["", render_channels_last(data["channels_last"], lang)]
    stamp = WORDS[lang]["machine"].format(command=data["command"], **data["machine"])
    lines += ["", f"<small>{stamp}</small>", ""]
    return "\n".join(lines)


def write(data: dict, out_dir: Path = GENERATED) -> list[Path]:
    """Write the measurement and each language's tables into out_dir."""
    return measured.write(data, out_dir, DATA, FRAGMENT, render)


def load(out_dir: Path = GENERATED) -> dict:
    return measured.load(out_dir, DATA, COMMAND)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=str(GENERATED),
                    help=f"folder for {DATA} and the {FRAGMENT} tables, or - for stdout")
    ap.add_argument("--quick", action="store_true", help="tiny sizes and repeats (a smoke test)")
    ap.add_argument("--render", action="store_true",
                    help=f"measure nothing: render the tables again from the folder's {DATA}")
    args = ap.parse_args(argv)
    if args.render and (args.quick or args.output == "-"):
        ap.error("--render rewrites the tables in a folder; it takes neither --quick nor -o -")
    data = load(Path(args.output)) if args.render else measure_all(args.quick)
    if args.output == "-":
        sys.stdout.write("\n".join(render(data, lang) for lang in LANGS))
        return 0
    for path in write(data, Path(args.output)):
        print(f"wrote {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
