"""Generate the lab notebooks docs/{zh,en}/labs/<lab>.ipynb: `make notebooks`.

A lab is a list of cells (snippets/labs.cells.yml). Code cells name snippet sections
(`snippets/data.py:imports`) and are expanded exactly as the pages expand them,
so the notebooks run the same code the chapters show. Prose cells are written per
language. Notebooks are saved without outputs; mkdocs-jupyter executes them when
the site is built. `python -m tools.make_notebooks --check` fails when a committed
notebook differs from what the generator makes.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from pagekit.comments import translate
from pagekit.export import join_code
from pagekit.project import LANGS, ROOT

LABS = yaml.safe_load((ROOT / "snippets" / "labs.cells.yml").read_text(encoding="utf-8"))
KERNEL = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
          "language_info": {"name": "python"}}


def code_source(sections: list[str], lang: str = "en") -> str:
    """The sections' code, each expanded as a page expands it (its comments and docstrings in
    `lang`, as the `lang` page shows them), with PEP 8 blank lines between them."""
    return join_code([translate(f'--8<-- "{name}"', lang) for name in sections])


_WIDE = re.compile(r"[\u2e80-\u9fff\u3000-\u303f\uff00-\uffef“”‘’]")


def unwrap(text: str) -> str:
    """Join the lines of each paragraph (snippets/labs.cells.yml wraps them for reading): a line break would show as
    a space, which Chinese text must not have between two Chinese characters."""
    out: list[str] = []
    for line in text.strip("\n").split("\n"):
        starts_block = not line.strip() or re.match(r"\s*(?:[-*+] |\d+\. |#|```|\|)", line)
        if out and out[-1].strip() and not starts_block:
            glue = "" if _WIDE.match(out[-1][-1]) and _WIDE.match(line.lstrip()[0]) else " "
            out[-1] = out[-1].rstrip() + glue + line.lstrip()
        else:
            out.append(line)
    return "\n".join(out)


def build(lab: str, lang: str):
    """The lab as an nbformat notebook (nbformat imported here: the tests that read LABS run
    where it is not installed, on make gpu-check's machine)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = []
    for i, cell in enumerate(LABS[lab]):
        if isinstance(cell, dict):
            cells.append(new_markdown_cell(unwrap(cell[lang])))
        else:
            cells.append(new_code_cell(code_source(cell, lang)))
        cells[-1]["id"] = f"{lab}-{i}"  # stable ids: regenerating gives the same bytes
    nb = new_notebook(cells=cells, metadata=KERNEL)
    nbformat.validate(nb)
    return nb


def path(lab: str, lang: str) -> Path:
    return ROOT / "docs" / lang / "labs" / f"{lab}.ipynb"


def shown(target: Path) -> str:
    return str(target.relative_to(ROOT)) if target.is_relative_to(ROOT) else str(target)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate the lab notebooks.")
    ap.add_argument("--check", action="store_true", help="fail if a committed notebook is out of date")
    args = ap.parse_args(argv)
    import nbformat

    stale = []
    for lab in LABS:
        for lang in LANGS:
            target, text = path(lab, lang), nbformat.writes(build(lab, lang)) + "\n"
            if args.check:
                if not target.exists() or target.read_text(encoding="utf-8") != text:
                    stale.append(shown(target))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
                print(f"wrote {shown(target)}")
    if stale:
        print("out of date (run `make notebooks`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
