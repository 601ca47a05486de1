"""Time the training chapter's recipe: real digits to >= 95 % validation accuracy.

    python -m tools.bench_training                 # seed 0, 8 epochs, the device pick_device() chooses
    python -m tools.bench_training --device cpu --seeds 0 1 2 --epochs 10 --threads 1
    python -m tools.bench_training --compile-table  # measures; writes generated/training-compile.json,
                                                    # generated/training-compile.zh.md and .en.md
    python -m tools.bench_training --compile-table --render  # no measuring: the .md files again

For each seed it prints the wall time of the whole run (loading the data, building the
model, training and evaluating every epoch), the best validation accuracy, and the epoch
and time at which the accuracy first reached 95 %. Imports are timed separately.

--compile-table times one training step (forward, backward, Adam step) of DigitCNN on a
batch of 64 on the CPU, eager and under torch.compile: the first call (for compile: the
compilation, with an empty inductor cache) and the median of the following calls.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
import torch  # noqa: E402

from pagekit.project import LANGS
from snippets.environment import pick_device  # noqa: E402
from snippets.training import DigitCNN, seed_everything, train_digits  # noqa: E402
from tools import measured  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - T0
TARGET = 0.95
GENERATED = Path(__file__).resolve().parents[1] / "generated"

COMPILE_DATA = "training-compile.json"  # the measurement; both languages' tables come from it
COMPILE_FRAGMENT = "training-compile.{lang}.md"  # one table per language, each page includes its own
COMPILE_COMMAND = "python -m tools.bench_training --compile-table"


def machine_info() -> dict:
    return {"cpu": measured.cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def bench(seed: int, epochs: int, device: torch.device) -> dict:
    start = time.perf_counter()
    _, history = train_digits(seed=seed, epochs=epochs, device=device)
    wall = time.perf_counter() - start
    reached = [i for i, acc in enumerate(history["val_acc"]) if acc >= TARGET]
    first = reached[0] if reached else None
    return {"seed": seed, "wall": wall, "best": max(history["val_acc"]),
            "epoch": None if first is None else first + 1,
            "at": None if first is None else history["seconds"][first]}


def time_steps(model: torch.nn.Module, steps: int) -> tuple[float, float]:
    """(first step's seconds, median seconds of the next `steps`)."""
    g = torch.Generator().manual_seed(0)
    data, label = torch.rand(64, 1, 8, 8, generator=g), torch.randint(0, 10, (64,), generator=g)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad()
        output = model(data)
        loss_fn(output, label).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[1:])


def fmt_seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1e3:.1f} ms"


def measure_compile(steps: int = 50) -> dict:
    """Eager vs torch.compile on the CPU: what generated/training-compile.json holds."""
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # a cold cache: the real first compile
        seed_everything(0)
        eager = DigitCNN()
        seed_everything(0)
        compiled = torch.compile(DigitCNN())
        e_first, e_steady = time_steps(eager, steps)
        c_first, c_steady = time_steps(compiled, steps)
    rows = [{"mode": mode, "first": first, "steady": steady, "speed": e_steady / steady}
            for mode, first, steady in [("eager", e_first, e_steady), ("torch.compile", c_first, c_steady)]]
    info = machine_info() | {"python": platform.python_version(), "date": datetime.date.today().isoformat()}
    return {"machine": info, "command": COMPILE_COMMAND, "rows": rows}


# The table's words, per language (the numbers are the same in both; code names stay as they are).
COMPILE_WORDS = {
    "en": {"head": ("mode", "first step", "steady step (median)", "steady speed vs eager"),
           "modes": {"eager": "eager", "torch.compile": "torch.compile"},
           "machine": "`{cpu}, {cores} cores, torch {torch}, {threads} threads, Python {python}, {date}` "
                      "· `{command}`"},
    "zh": {"head": ("执行方式", "第一步", "稳定后每步（中位数）", "稳定后的速度（相对普通执行）"),
           "modes": {"eager": "普通执行", "torch.compile": "`torch.compile`"},
           "machine": "测量环境：`{cpu}`，{cores} 个核心，`torch {torch}`，{threads} 个线程，"
                      "`Python {python}`，{date} · 命令 `{command}`"},
}


def render_compile_table(data: dict, lang: str) -> str:
    """One language's table, from the measurement `data` (generated/training-compile.json)."""
    if lang not in COMPILE_WORDS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    words = COMPILE_WORDS[lang]
    lines = ["| " + " | ".join(words["head"]) + " |", "| --- | --: | --: | --: |"]
    for r in data["rows"]:
        lines.append(f"| {words['modes'][r['mode']]} | {fmt_seconds(r['first'])} | "
                     f"{fmt_seconds(r['steady'])} | {r['speed']:.2f}× |")
    stamp = words["machine"].format(command=data["command"], **data["machine"])
    return "\n".join(lines) + f"\n\n<small>{stamp}</small>\n"


def load_compile_data(out_dir: Path = GENERATED) -> dict:
    return measured.load(out_dir, COMPILE_DATA, COMPILE_COMMAND)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: pick_device())")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--compile-table", action="store_true",
                        help=f"time eager vs torch.compile on the CPU, write {COMPILE_DATA} and "
                             f"the {COMPILE_FRAGMENT} tables")
    parser.add_argument("--render", action="store_true",
                        help=f"with --compile-table: measure nothing, render the tables from {COMPILE_DATA}")
    parser.add_argument("-o", "--output", default=str(GENERATED),
                        help="the folder --compile-table writes into ('-' for stdout)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.render and not (args.compile_table and args.output != "-"):
        parser.error("--render goes with --compile-table and rewrites the tables in a folder (not -o -)")
    if args.compile_table:
        data = load_compile_data(Path(args.output)) if args.render else measure_compile()
        print(render_compile_table(data, "en"), end="")
        if args.output != "-":
            measured.write(data, Path(args.output), COMPILE_DATA, COMPILE_FRAGMENT, render_compile_table)
        return 0
    device = pick_device(args.device)
    machine = "{cpu}, {cores} cores, torch {torch}, {threads} threads".format(**machine_info())
    print(f"{machine}; device {device}; imports {IMPORT_SECONDS:.1f} s")
    ok = True
    for seed in args.seeds:
        r = bench(seed, args.epochs, device)
        when = (f"first >= 95 % at epoch {r['epoch']} after {r['at']:.2f} s" if r["epoch"]
                else "never reached 95 %")
        print(f"seed {seed}: {args.epochs} epochs in {r['wall']:.2f} s wall, "
              f"best val acc {r['best']:.3f}, {when}")
        ok &= r["best"] >= TARGET
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
