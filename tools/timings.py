"""The four figures of DESIGN.md §5's budgets, measured on this machine.

    python -m tools.timings            # all four (several minutes)
    python -m tools.timings --build    # the two build figures only

- `mkdocs build --strict`, warm: a second build in this checkout (caches filled by the first);
- `mkdocs build --strict`, cold: a fresh clone of HEAD (no .cache/, no executed labs);
- `make test`, warm: in this checkout, after the warm build;
- `make test` from a fresh clone: a fresh clone of HEAD, its .venv linked to this one's
  (packages installed, every cache cold).
Run it on an idle machine: the budgets are for 2 idle cores.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = {"build warm": 2, "build cold": 15, "test warm": 90, "test fresh clone": 150}  # DESIGN.md §5


def _timed(cmd: list[str], cwd: Path) -> float:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    if cwd != ROOT:  # a clone sharing this venv: its own pagekit, not the one installed editable from here
        env["PYTHONPATH"] = str(cwd)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{done.stderr[-3000:]}")
    return seconds


def _clone(into: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(into)], check=True)
    (into / ".venv").symlink_to(ROOT / ".venv")
    return into


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="store_true", help="only the two build figures")
    args = parser.parse_args(argv)
    mkdocs = [str(ROOT / ".venv" / "bin" / "mkdocs"), "build", "--strict", "--quiet"]
    figures = {}
    with tempfile.TemporaryDirectory(prefix="timings-") as tmp:
        site = str(Path(tmp) / "site")
        _timed([*mkdocs, "--site-dir", site], ROOT)
        figures["build warm"] = _timed([*mkdocs, "--site-dir", site], ROOT)
        cold = _clone(Path(tmp) / "cold")
        figures["build cold"] = _timed([*mkdocs, "--site-dir", str(cold / "site")], cold)
        if not args.build:
            figures["test warm"] = _timed(["make", "test"], ROOT)
            fresh = _clone(Path(tmp) / "fresh")
            # -o: the shared venv is installed; without it the clone's newer requirements.txt would
            # reinstall it, and repoint this venv's editable pagekit at the clone
            figures["test fresh clone"] = _timed(["make", "-o", ".venv/.installed", "test"], fresh)
    over = 0
    for name, seconds in figures.items():
        budget = BUDGETS[name]
        over += seconds > budget
        print(f"{name:17} {seconds:6.1f} s   (budget {budget} s{', OVER' if seconds > budget else ''})")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
