"""Generate the lab notebooks docs/{zh,en}/labs/<lab>.ipynb: `make notebooks`.

A lab is a list of cells (tools/labs.py). Code cells name snippet sections
(`snippets/data.py:imports`) and are expanded exactly as the pages expand them,
so the notebooks run the same code the chapters show. Prose cells are written per
language. Notebooks are saved without outputs; mkdocs-jupyter executes them when
the site is built. `python -m tools.make_notebooks --check` fails when a committed
notebook differs from what the generator makes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tools.labs import LABS
from tools.shown_code import ROOT, expand

LANGS = ("zh", "en")
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
          "language_info": {"name": "python"}}


def build(lab: str, lang: str) -> nbformat.NotebookNode:
    cells = []
    for i, cell in enumerate(LABS[lab]):
        if isinstance(cell, dict):
            cells.append(new_markdown_cell(cell[lang].strip("\n")))
        else:
            source = expand("--8<--\n" + "\n".join(cell) + "\n--8<--")
            cells.append(new_code_cell(source.strip("\n")))
        cells[-1]["id"] = f"{lab}-{i}"  # stable ids: regenerating gives the same bytes
    nb = new_notebook(cells=cells, metadata=KERNEL)
    nbformat.validate(nb)
    return nb


def path(lab: str, lang: str) -> Path:
    return ROOT / "docs" / lang / "labs" / f"{lab}.ipynb"


def render(lab: str, lang: str) -> str:
    return nbformat.writes(build(lab, lang)) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate the lab notebooks.")
    ap.add_argument("--check", action="store_true", help="fail if a committed notebook is out of date")
    args = ap.parse_args(argv)
    stale = []
    for lab in LABS:
        for lang in LANGS:
            target, text = path(lab, lang), render(lab, lang)
            if args.check:
                if not target.exists() or target.read_text(encoding="utf-8") != text:
                    stale.append(str(target.relative_to(ROOT)))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
                print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print("out of date (run `make notebooks`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
