"""A measurement kept as JSON beside the tables rendered from it, one table per language.

Timing tables (tools/bench_layers.py, tools/bench_training.py) are rendered from the same
numbers in each language; `--render` re-renders them without measuring again.
"""
from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path

from pagekit.project import LANGS


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip()
                        for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def write(data: dict, out_dir: Path, data_name: str, fragment: str,
          render: Callable[[dict, str], str]) -> None:
    """Write data as out_dir/data_name and render(data, lang) as out_dir/fragment (per language)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [(out_dir / data_name, json.dumps(data, ensure_ascii=False, indent=1) + "\n")]
    files += [(out_dir / fragment.format(lang=lang), render(data, lang)) for lang in LANGS]
    for path, text in files:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {os.path.relpath(path)}")


def load(out_dir: Path, data_name: str, command: str) -> dict:
    path = out_dir / data_name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `{command}` to measure")
    return json.loads(path.read_text(encoding="utf-8"))
