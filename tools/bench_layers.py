"""Time the layers chapter's three cross-correlations and write the tables both pages include.

    python -m tools.bench_layers              # measures; writes generated/layers-bench.json,
                                              # generated/layers-bench.zh.md and .en.md
    python -m tools.bench_layers --render     # no measuring: the .md files from the .json again
    python -m tools.bench_layers --quick -o - # a fast smoke run to stdout

Time per call of corr2d (Python loops), corr2d_unfold and F.conv2d with a 3x3 kernel
on N x N inputs, on the CPU; then nn.Conv2d layers (inference, no_grad) on contiguous
(NCHW) input and weights against the same in channels_last (NHWC). Each figure is
measured RUNS times with torch.utils.benchmark (each run: the median of as many calls as
fit in its time) and shown as the range of those runs, a factor as the range of its
per-run ratios: one run on one machine is not a property of the code.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import torch.utils.benchmark as benchmark
from torch import nn

from pagekit.project import LANGS
from snippets.layers import corr2d, corr2d_unfold
from tools import measured

GENERATED = Path(__file__).resolve().parents[1] / "generated"

DATA = "layers-bench.json"  # the measurement; both languages' tables are rendered from it
FRAGMENT = "layers-bench.{lang}.md"  # one table per language, each page includes its own
COMMAND = "make bench"
RUNS = 5


def runs(fn, runs: int = RUNS, min_run_time: float = 0.2) -> list[float]:
    """`runs` independent measurements of one call of fn, in seconds (torch.utils.benchmark:
    each is the median over as many calls as fit in min_run_time, after a warm-up)."""
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return [timer.blocked_autorange(min_run_time=min_run_time).median for _ in range(runs)]


def ratios(a: list[float], b: list[float]) -> list[float]:
    return [x / y for x, y in zip(a, b)]


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} µs"


def measure(sizes: list[int], n_runs: int, min_run_time: float) -> list[dict]:
    torch.manual_seed(0)
    rows = []
    for n in sizes:
        X, K = torch.rand(n, n), torch.rand(3, 3)
        Xb, Kb = X[None, None], K[None, None]
        assert torch.allclose(corr2d(X, K), F.conv2d(Xb, Kb)[0, 0], atol=1e-4)
        loop = runs(lambda: corr2d(X, K), n_runs, min_run_time)
        unfold = runs(lambda: corr2d_unfold(X, K), n_runs, min_run_time)
        builtin = runs(lambda: F.conv2d(Xb, Kb), n_runs, min_run_time)
        rows.append(dict(n=n, loop=loop, unfold=unfold, builtin=builtin,
                         loop_per_unfold=ratios(loop, unfold), loop_per_builtin=ratios(loop, builtin)))
    return rows


# (N, C_in, H=W, C_out, kernel): a 3x3 layer, a 1x1 layer, a 7x7 stem on a 224x224 image
CONV_LAYERS = [(8, 64, 32, 64, 3), (16, 64, 28, 128, 1), (1, 3, 224, 64, 7)]
CONV_LAYERS_QUICK = [(2, 8, 16, 16, 3)]


def measure_channels_last(layers: list[tuple], n_runs: int, min_run_time: float) -> list[dict]:
    """Time one nn.Conv2d on contiguous input and weights, then both in channels_last."""
    torch.manual_seed(0)
    rows = []
    for n, c_in, hw, c_out, k in layers:
        conv = nn.Conv2d(c_in, c_out, k, padding=k // 2).eval()
        x = torch.rand(n, c_in, hw, hw)
        with torch.no_grad():
            y = conv(x)
            contiguous = runs(lambda: conv(x), n_runs, min_run_time)
            conv = conv.to(memory_format=torch.channels_last)  # in place
            x = x.to(memory_format=torch.channels_last)
            assert torch.allclose(conv(x), y, atol=1e-4)
            last = runs(lambda: conv(x), n_runs, min_run_time)
        rows.append(dict(layer=f"Conv2d({c_in}, {c_out}, {k})", input=f"{n}×{c_in}×{hw}×{hw}",
                         contiguous=contiguous, channels_last=last, speedup=ratios(contiguous, last)))
    return rows


def measure_all(quick: bool = False) -> dict:
    """Everything the tables show, as written to generated/layers-bench.json."""
    n_runs, min_run_time = (2, 0.01) if quick else (RUNS, 0.2)
    sizes = measure([8, 16] if quick else [32, 64, 128], n_runs, min_run_time)
    layers = measure_channels_last(CONV_LAYERS_QUICK if quick else CONV_LAYERS,
                                   n_runs, min_run_time)
    machine = {"cpu": measured.cpu_name(), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "python": platform.python_version(),
               "date": datetime.date.today().isoformat()}
    return {"machine": machine, "command": COMMAND, "runs": n_runs, "sizes": sizes,
            "channels_last": layers}


# The tables' words, per language (the numbers are the same in both; code names stay as they are).
WORDS = {
    "en": {
        "sizes": ("N×N", "corr2d (loops)", "corr2d_unfold", "F.conv2d", "loops ÷ unfold", "loops ÷ F.conv2d"),
        "layers": ("layer", "input (N×C×H×W)", "contiguous (NCHW)", "channels_last (NHWC)",
                   "contiguous ÷ channels_last"),
        "layer": "{}",
        "machine": "`{cpu}, {threads} threads, torch {torch}, Python {python}, {date}` · `{command}` · "
                   "each cell: the range over {runs} runs",
    },
    "zh": {
        "sizes": ("N×N", "`corr2d`（手写循环）", "`corr2d_unfold`", "`F.conv2d`", "手写循环 ÷ `unfold`",
                  "手写循环 ÷ `F.conv2d`"),
        "layers": ("层", "输入（N×C×H×W）", "连续存放（NCHW）", "`channels_last`（NHWC）",
                   "连续存放 ÷ `channels_last`"),
        "layer": "`{}`",
        "machine": "测量环境：`{cpu}`，{threads} 个线程，`torch {torch}`，`Python {python}`，{date} · "
                   "命令 `{command}` · 每格：{runs} 次测量的范围",
    },
}


def span(values: list[float], show=fmt) -> str:
    """A range of measurements, e.g. "8.5–9.1 ms" or "280–310×" (one value when they agree)."""
    low, high = show(min(values)), show(max(values))
    if low == high:
        return low
    unit = low.rsplit(" ", 1)[-1] if " " in low and low.rsplit(" ", 1)[-1] == high.rsplit(" ", 1)[-1] else ""
    return f"{low.removesuffix(' ' + unit) if unit else low}–{high}"


def factor(values: list[float]) -> str:
    digits = 1 if max(values) < 10 else 0
    return span(values, lambda v: f"{v:.{digits}f}") + "×"


def _header(cells: tuple[str, ...], align: str) -> list[str]:
    return ["| " + " | ".join(cells) + " |", "|" + f" {align} |" * len(cells)]


def render(data: dict, lang: str) -> str:
    """One language's tables, from the measurement `data` (generated/layers-bench.json)."""
    if lang not in WORDS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    lines = _header(WORDS[lang]["sizes"], "--:")
    for r in data["sizes"]:
        lines.append(
            f"| {r['n']}² | {span(r['loop'])} | {span(r['unfold'])} | {span(r['builtin'])} "
            f"| {factor(r['loop_per_unfold'])} | {factor(r['loop_per_builtin'])} |")
    if data.get("channels_last"):
        words = WORDS[lang]
        lines += ["", *_header(words["layers"], "--:")]
        lines[-1] = lines[-1].replace("--:", "---", 1)  # the layer's name, left-aligned
        for r in data["channels_last"]:
            lines.append(f"| {words['layer'].format(r['layer'])} | {r['input']} "
                         f"| {span(r['contiguous'])} | {span(r['channels_last'])} "
                         f"| {factor(r['speedup'])} |")
    stamp = WORDS[lang]["machine"].format(command=data["command"], runs=data["runs"], **data["machine"])
    lines += ["", f"<small>{stamp}</small>", ""]
    return "\n".join(lines)


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
    measured.write(data, Path(args.output), DATA, FRAGMENT, render)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
