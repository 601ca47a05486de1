"""Regenerate every picture the pages show: `make figures`.

Each snippet module that draws pictures defines `save_figures(out_dir) -> list[Path]`;
this calls them all and writes into docs/assets/img/ (shared by both languages).
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed

import snippets  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "assets" / "img"


def main(names: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for info in pkgutil.iter_modules(snippets.__path__):
        if names and info.name not in names:
            continue
        module = importlib.import_module(f"snippets.{info.name}")
        if hasattr(module, "save_figures"):
            for path in module.save_figures(OUT):
                print(f"wrote {Path(path).relative_to(OUT.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
