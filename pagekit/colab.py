"""Each chapter's notebook as Colab opens it from this project's repository (`notebooks/<lang>/<slug>.ipynb`,
`make colab`): the notebook the build offers, made for mkdocs.yml's default `site_url`, with a first cell that
installs what Colab lacks, or says it lacks nothing (CONTRIBUTING.md, "Open in Colab").
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat

from pagekit import export
from pagekit.project import CHAPTERS, DEFAULT_LANG, LANGS, ROOT, pins

NOTEBOOKS = ROOT / "notebooks"
COLAB = "https://colab.research.google.com/github/"
# Imported by the chapters and installed on every Colab runtime (with the standard library);
# psutil comes with ipykernel, which every notebook runtime runs on.
COLAB_HAS = {"torch", "torchvision", "numpy", "matplotlib", "sklearn", "PIL", "IPython", "psutil"}
DISTRIBUTION = {"sklearn": "scikit-learn", "PIL": "pillow"}  # import name -> the name pip knows

WORDS = {
    "zh": {"install": "# 本章用到 {names}，Colab 未必预装：先运行这一格（已装好时 pip 什么也不做）",
           "none": "**在 Colab 中运行：**本章用到的包（{names}）Colab 都已预装，不需要安装；"
                   "从上往下依次运行各个单元格即可。"},
    "en": {"install": "# this chapter uses {names}, which Colab may lack: run this cell first "
                      "(pip does nothing where it is installed)",
           "none": "**Running in Colab:** Colab has every package this chapter uses ({names}) "
                   "installed; run the cells from top to bottom."},
}


def configured(key: str, name: str) -> str:
    """mkdocs.yml's default for `key: !ENV [NAME, "default"]` (site_url, repo_url): the address
    the committed notebooks are made for, whatever the environment sets."""
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    found = re.search(rf'^{key}: !ENV \[{name}, "([^"]+)"\]', text, re.M)
    if not found:
        raise LookupError(f"mkdocs.yml has no `{key}: !ENV [{name}, \"...\"]` line")
    return found.group(1)


def colab_url(repo_url: str, lang: str, slug: str) -> str | None:
    """Colab's address of a chapter's committed notebook, or None where the repository is not
    on GitHub (Colab opens notebooks from GitHub only)."""
    found = re.match(r"https://github\.com/([^/]+)/([^/]+?)/?$", repo_url or "")
    if not found:
        return None
    return f"{COLAB}{found[1]}/{found[2]}/blob/main/notebooks/{lang}/{slug}.ipynb"


def imported(nb) -> set[str]:
    """The top-level packages a notebook's code cells import."""
    names = set()
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.source.lstrip().startswith("%"):
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def third_party(names: set[str]) -> list[str]:
    return sorted(n for n in names if n not in sys.stdlib_module_names and n != "__future__")


def to_install(nb) -> list[str]:
    """pip requirements for what the notebook imports and Colab lacks: at least the project's
    pin, so that a runtime that has it installs nothing and one that has a newer one keeps it."""
    found = []
    for name in third_party(imported(nb)):
        if name in COLAB_HAS:
            continue
        dist = DISTRIBUTION.get(name, name)
        pin = pins().get(dist.lower())
        found.append(f"{dist}>={pin}" if pin else dist)
    return found


def chapter_notebook(page: str, lang: str, site_url: str | None = None):
    """The notebook the build offers for docs/<lang>/<page> (hooks/chapters.py), at `site_url`
    (mkdocs.yml's default where None)."""
    if lang not in WORDS:
        raise ValueError(f"no Colab words for language {lang!r}; known: {', '.join(WORDS)}")
    path = ROOT / "docs" / lang / page
    if not path.is_file():
        raise FileNotFoundError(f"docs/{lang}/{page}: no such page")
    site_url = site_url or configured("site_url", "SITE_URL")
    url = export.page_address(site_url, lang, DEFAULT_LANG, page)
    lang_base = export.page_address(site_url, lang, DEFAULT_LANG, "index.md")
    chapter = export.read_chapter(path.read_text(encoding="utf-8"), url, lang_base, where=str(page), lang=lang)
    return export.notebook(chapter, lang)


def colab_notebook(page: str, lang: str):
    """The chapter's notebook with Colab's first cell: the install it needs, or why none."""
    nb = chapter_notebook(page, lang)
    words = WORDS[lang]
    needed = to_install(nb)
    if needed:
        names = ", ".join(n.split(">=")[0] for n in needed)
        pip = " ".join(f'"{n}"' for n in needed)
        first = nbformat.v4.new_code_cell(words["install"].format(names=names) + f"\n%pip install -q {pip}")
    else:
        names = "、".join if lang == "zh" else ", ".join
        used = [DISTRIBUTION.get(n, n) for n in third_party(imported(nb))]
        first = nbformat.v4.new_markdown_cell(words["none"].format(names=names(used)))
    first.id = "colab-setup"
    nb.cells.insert(0, first)
    nb.metadata["colab"] = {"provenance": []}
    return nb


def notebook_path(page: str, lang: str) -> Path:
    return NOTEBOOKS / lang / f"{Path(page).stem}.ipynb"


def write_all(check: bool = False) -> list[Path]:
    """Write (or, `check`, compare) every chapter's Colab notebook; returns those that differ."""
    differ = []
    for chapter in CHAPTERS:
        for lang in LANGS:
            path = notebook_path(chapter.page, lang)
            text = nbformat.writes(colab_notebook(chapter.page, lang)) + "\n"
            if path.is_file() and path.read_text(encoding="utf-8") == text:
                continue
            differ.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return differ

