"""Time the training chapter's recipe: real digits to >= 95 % validation accuracy.

    python -m tools.bench_training                 # seed 0, 8 epochs, the device pick_device() chooses
    python -m tools.bench_training --device cpu --seeds 0 1 2 --epochs 10 --threads 1

For each seed it prints the wall time of the whole run (loading the data, building the
model, training and evaluating every epoch), the best validation accuracy, and the epoch
and time at which the accuracy first reached 95 %. Imports are timed separately.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

T0 = time.perf_counter()
import torch  # noqa: E402

from snippets.environment import pick_device  # noqa: E402
from snippets.training import train_digits  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - T0
TARGET = 0.95


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: pick_device())")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
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
