"""Time the training chapter's recipe: real digits to >= 95 % validation accuracy.

    python -m tools.bench_training                 # seed 0, 8 epochs, the device pick_device() chooses
    python -m tools.bench_training --device cpu --seeds 0 1 2 --epochs 10 --threads 1
    python -m tools.bench_training --compile-table  # writes generated/training-compile.md

For each seed it prints the wall time of the whole run (loading the data, building the
model, training and evaluating every epoch), the best validation accuracy, and the epoch
and time at which the accuracy first reached 95 %. Imports are timed separately.

--compile-table times one training step (forward, backward, Adam step) of DigitCNN on a
batch of 64 on the CPU, eager and under torch.compile: the first call (for compile: the
compilation, with an empty inductor cache) and the median of the following calls, and
writes the table the training pages include.
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

from snippets.environment import pick_device  # noqa: E402
from snippets.training import DigitCNN, seed_everything, train_digits  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - T0
TARGET = 0.95
COMPILE_TABLE = Path(__file__).resolve().parents[1] / "generated" / "training-compile.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


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


def compile_table(steps: int = 50) -> str:
    """Eager vs torch.compile on the CPU, as a Markdown table."""
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # a cold cache: the real first compile
        seed_everything(0)
        eager = DigitCNN()
        seed_everything(0)
        compiled = torch.compile(DigitCNN())
        e_first, e_steady = time_steps(eager, steps)
        c_first, c_steady = time_steps(compiled, steps)
    rows = [("eager", e_first, e_steady), ("torch.compile", c_first, c_steady)]
    lines = ["| mode | first step | steady step (median) | steady speed vs eager |",
             "| --- | --: | --: | --: |"]
    for name, first, steady in rows:
        lines.append(f"| {name} | {fmt_seconds(first)} | {fmt_seconds(steady)} | "
                     f"{e_steady / steady:.2f}× |")
    stamp = (f"{machine()}, Python {platform.python_version()}, "
             f"{datetime.date.today().isoformat()}")
    cmd = "python -m tools.bench_training --compile-table"
    return "\n".join(lines) + f"\n\n<small>`{stamp}` · `{cmd}`</small>\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: pick_device())")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--compile-table", action="store_true",
                        help=f"time eager vs torch.compile on the CPU, write {COMPILE_TABLE.name}")
    parser.add_argument("-o", "--output", default=str(COMPILE_TABLE),
                        help="where --compile-table writes ('-' for stdout)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.compile_table:
        table = compile_table()
        if args.output == "-":
            print(table, end="")
        else:
            Path(args.output).write_text(table, encoding="utf-8")
            print(table, end="")
            print(f"wrote {args.output}")
        return 0
    device = pick_device(args.device)
    print(f"{machine()}; device {device}; imports {IMPORT_SECONDS:.1f} s")
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
