"""A download button on each chapter page for that chapter's code, as one runnable file.

Which files a page offers: the chapter's module snippets/<slug>.py (the page slug with
'-' as '_', the naming rule of CONTRIBUTING.md), then every other snippets/*.py the page
includes whole (multi-gpu.md shows snippets/ddp_train.py). Pages without a module (home,
errata, labs) offer none. The files are written next to the page (site/<slug>/<name>.py,
site/en/<slug>/<name>.py) and linked relatively from overrides/main.html, like the
notebooks.

A downloaded file must run alone (`python training.py`), but some modules import names
from other snippet modules (`from snippets.environment import pick_device`). The copy
offered for download replaces each such import with the source of the snippet section
that defines the name, so the repository keeps one source. Section marker comments are
dropped from the copy.
"""
from __future__ import annotations

import ast
import builtins
import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = ROOT / "snippets"
_MARKER = re.compile(r"^\s*# -{1,}8<-{1,} \[(start|end):([\w-]+)\]\s*$")
_WHOLE_FILE = re.compile(r'^\s*(?:-{1,}8<-{1,}\s*")?(snippets/\w+\.py)"?\s*$', re.M)


class InlineError(ValueError):
    """A module's import of another snippet module cannot be made standalone."""


def chapter_modules(slug: str, markdown: str) -> list[Path]:
    """The snippet modules a chapter page offers for download, main module first."""
    found = []
    main = SNIPPETS / f"{slug.replace('-', '_')}.py"
    if main.is_file():
        found.append(main)
    for rel in _WHOLE_FILE.findall(markdown):
        path = ROOT / rel
        if path.is_file() and path not in found:
            found.append(path)
    return found


def sections(text: str) -> dict[str, tuple[int, int]]:
    """Section name -> (first, last) 0-based line numbers of its content."""
    found, open_at = {}, {}
    for i, line in enumerate(text.split("\n")):
        m = _MARKER.match(line)
        if m and m[1] == "start":
            open_at[m[2]] = i + 1
        elif m and m[2] in open_at:
            found[m[2]] = (open_at.pop(m[2]), i - 1)
    return found


def _top_level_definition(tree: ast.Module, name: str) -> ast.stmt | None:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return node
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            if name in names:
                return node
    return None


def definition_source(module: Path, name: str) -> tuple[str, str]:
    """(the code that defines `name` in module, where it came from): its snippet section if one holds it."""
    text = module.read_text(encoding="utf-8")
    node = _top_level_definition(ast.parse(text), name)
    if node is None:
        raise InlineError(f"snippets/{module.name} defines no top-level {name!r} to inline")
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
    last = node.end_lineno - 1
    holding = [(end - start, section, start, end) for section, (start, end) in sections(text).items()
               if start <= first and last <= end]
    lines = text.split("\n")
    if holding:
        _, section, start, end = min(holding)
        where = f'section "{section}" of snippets/{module.name}'
    else:
        start, end, where = first, last, f"snippets/{module.name}"
    return textwrap.dedent("\n".join(lines[start:end + 1])).strip("\n"), where


def _free_names(code: str) -> set[str]:
    """Names the code reads at its top level that it does not bind itself (roughly: globals it needs)."""
    tree = ast.parse(code)
    bound = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    loaded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (bound.add if isinstance(node.ctx, ast.Store) else loaded.add)(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return loaded - bound - set(dir(builtins))


def _module_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def standalone_source(module: Path) -> str:
    """The module's text with every `from snippets.x import name` replaced by the code defining name."""
    text = module.read_text(encoding="utf-8")
    tree = ast.parse(text)
    available = _module_level_names(tree)
    lines = text.split("\n")
    replacements = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "snippets" for a in node.names):
            raise InlineError(f"{module.name}:{node.lineno}: `import snippets...` cannot be inlined; "
                              "write `from snippets.<module> import <name>`")
        if not (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "snippets"):
            continue
        source_module = SNIPPETS / f"{node.module.removeprefix('snippets.')}.py"
        if node.level or not source_module.is_file():
            raise InlineError(f"{module.name}:{node.lineno}: no snippet module for `from {node.module} import ...`")
        indent = " " * node.col_offset
        block = []
        for alias in node.names:
            code, where = definition_source(source_module, alias.name)
            missing = _free_names(code) - available - {alias.name}
            if missing:
                raise InlineError(f"{module.name}:{node.lineno}: the code of {alias.name!r} ({where}) needs "
                                  f"{sorted(missing)}, which {module.name} does not import or define")
            block.append(f"# {alias.name}: from {where} (copied here so that this file runs alone)")
            block += code.split("\n")
            if alias.asname:
                block.append(f"{alias.asname} = {alias.name}")
        replacements.append((node.lineno - 1, node.end_lineno - 1,
                             [indent + line if line else line for line in block]))
    for first, last, block in sorted(replacements, reverse=True):
        lines[first:last + 1] = block
    out = "\n".join(line for line in lines if not _MARKER.match(line))
    ast.parse(out)  # still valid Python
    return out


def on_page_markdown(markdown, page, config, files):
    src = Path(page.file.src_uri)
    page.code_download_sources = chapter_modules(src.stem, markdown) if src.suffix == ".md" else []
    page.code_downloads = [module.name for module in page.code_download_sources]  # read by main.html
    return markdown


def on_post_page(output, page, config):
    sources = getattr(page, "code_download_sources", [])
    if sources:
        folder = Path(config.site_dir) / Path(page.file.dest_uri).parent
        folder.mkdir(parents=True, exist_ok=True)
        for module in sources:
            (folder / module.name).write_text(standalone_source(module), encoding="utf-8")
    return output
