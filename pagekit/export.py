"""A chapter page as a download: a plain script and a notebook, made from the page itself, that both run top
to bottom (see CONTRIBUTING.md, "Downloads"). Relative links point at the hosted site; Material-only syntax
becomes plain Markdown.
"""
from __future__ import annotations

import ast
import io
import re
import textwrap
import tokenize
from dataclasses import dataclass
from urllib.parse import urljoin

from pagekit.comments import translate
from pagekit.memo import remembered
from pagekit.page import MARKER, Block, Mark, expand, parse_page, python_blocks

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)
_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
_ADMONITION = re.compile(r'^(!!!|\?\?\?\+?) *(\w+)(?: +"([^"]*)")? *$')
_PAGE_INCLUDE = re.compile(r'^--8<-- "([^"]+)"$')
_ATTRS = re.compile(r"\s*\{[:#.][^}]*\}\s*$")


@dataclass
class Chapter:
    title: str
    url: str                  # the page's address on the hosted site
    parts: list[tuple[str, object]]  # ("md", text) or ("code", Block)


ANY_SITE = "https://any-site.invalid/"  # a stand-in site_url: results made for it hold no real address


def page_address(site_url: str, lang: str, default_lang: str, src: str) -> str:
    """Hosted address of a Markdown page: 'layers.md' -> https://host/en/layers/."""
    base = site_url if lang == default_lang else urljoin(site_url, f"{lang}/")
    stem = src.removesuffix(".md")
    return base if stem == "index" else urljoin(base, f"{stem}/")


def absolute_link(target: str, page_url: str, lang_base: str) -> str:
    if re.match(r"^[a-z]+:|^//", target):
        return target
    if target.startswith("#"):
        return page_url + target
    path, _, anchor = target.partition("#")
    if path.endswith(".md"):
        stem = path.removesuffix(".md").removeprefix("./")
        url = lang_base if stem == "index" else urljoin(lang_base, f"{stem}/")
        return url + (f"#{anchor}" if anchor else "")
    return urljoin(page_url, target)


def _plain_markdown(text: str, page_url: str, lang_base: str, in_admonition: bool = False) -> str:
    """Site Markdown -> Markdown any notebook viewer shows the same way. `in_admonition`: the
    text comes after a block inside an admonition (an exercise's solution), so its leading
    indented lines are the rest of that admonition, quoted as its header was."""
    out, lines, i = [], text.split("\n"), 0
    while in_admonition and i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
        if lines[i].strip() or out:  # no quoted blank line before the first one
            out.append(f"> {lines[i][4:]}".rstrip())
        i += 1
    while out and out[-1] == ">":  # nor after the last
        out.pop()
    out += [""] if out else []
    while i < len(lines):
        line = lines[i]
        adm = _ADMONITION.match(line)
        if adm:
            title = adm.group(3) or adm.group(2).capitalize()
            body, i = [], i + 1
            while i < len(lines) and (lines[i].startswith("    ") or not lines[i].strip()):
                body.append(lines[i][4:])
                i += 1
            while body and not body[-1].strip():
                body.pop()
            out += [f"> **{title}**", ">"] + [f"> {b}".rstrip() for b in body] + [""]
            continue
        if _PAGE_INCLUDE.match(line.strip()):
            out += expand(line).split("\n")
        elif not MARKER.match(line.strip()):
            out.append(_ATTRS.sub("", line) if line.startswith("#") else line)
        i += 1
    md = hosted_links("\n".join(out), page_url, lang_base)
    return re.sub(r"\n{3,}", "\n\n", md).strip("\n")


def hosted_links(markdown: str, page_url: str, lang_base: str) -> str:
    """Every Markdown link made absolute, to the hosted site."""
    return _LINK.sub(lambda m: m[1] + absolute_link(m[2], page_url, lang_base) + m[3], markdown)


def read_chapter(markdown: str, page_url: str, lang_base: str, where: str = "page", lang: str = "en") -> Chapter:
    """Split a page into prose and Python blocks, in order; a shell block is prose, its comments
    in `lang`."""
    markdown = _FRONT_MATTER.sub("", markdown)
    lines = markdown.split("\n")
    blocks = parse_page(markdown, where)
    title = next((ln[2:].strip() for ln in lines if ln.startswith("# ")), "")
    parts: list[tuple[str, object]] = []
    cursor = 0  # 0-based index of the first line not yet used
    nested = False  # the previous block sits inside an admonition (its fence is indented)
    for block in blocks:
        opening = block.lineno - 2  # the opening fence
        start = opening
        while start > cursor and MARKER.match(lines[start - 1].strip()):
            start -= 1
        prose = _plain_markdown("\n".join(lines[cursor:start]), page_url, lang_base, nested)
        nested = lines[block.lineno - 1].startswith(" ")
        if prose:
            parts.append(("md", prose))
        if block.is_python:
            parts.append(("code", block))
        elif block.lang in ("bash", "sh", "shell", "console"):
            parts.append(("md", f"```{block.lang}\n{translate(block.source, lang, shell=True).rstrip()}\n```"))
        cursor = (block.expected_span[1] if block.expected_span else block.end)
        if block.expected is not None and block.is_python:
            parts.append(("output", block))
    prose = _plain_markdown("\n".join(lines[cursor:]), page_url, lang_base, nested)
    if prose:
        parts.append(("md", prose))
    return Chapter(title, page_url, parts)


WORDS = {
    "zh": {"source": "本章网页", "run": "运行方法", "fails": "这一段会按预期报错", "output": "输出"},
    "en": {"source": "This chapter online", "run": "Run it with", "fails": "this block fails on purpose",
           "output": "Output"},
}

# A block outside the page's program (marked skip), in the reader's words: by the kind of its
# reason (the words before the first colon, which the tests read; the rest names the test).
NOT_RUN = {
    "needs a checkpoint saved on a GPU": {
        "zh": "这一段不属于本页连续运行的程序：它读取在 GPU 上保存的 checkpoint。把 {files} 下载到运行目录，它就能运行。",
        "en": "Not part of this page's program: it reads checkpoints saved on a GPU. Download {files} into your "
              "folder and it runs."},
    "part of ddp_train.py, run under torchrun": {
        "zh": "这一段不属于本页连续运行的程序：它是 ddp_train.py（页首可下载）的一部分，由 torchrun 启动。",
        "en": "Not part of this page's program: it is part of ddp_train.py (download it at the top of the page), "
              "which torchrun starts."},
    "runs in 2 processes": {
        "zh": "这一段不属于本页连续运行的程序：它在两个进程里运行，由 run_ddp_checks 启动。",
        "en": "Not part of this page's program: it runs in two processes, started by run_ddp_checks."},
    "needs CUDA": {
        "zh": "这一段不属于本页连续运行的程序：它需要 CUDA GPU。",
        "en": "Not part of this page's program: it needs a CUDA GPU."},
    "compiling takes seconds": {
        "zh": "这一段不属于本页连续运行的程序，因为第一次调用要编译好几秒；接在上面的代码块之后就能运行。",
        "en": "Not part of this page's program, because its first call compiles for seconds; it runs after the "
              "blocks above."},
}
_FILE = re.compile(r"^[\w.-]+(/[\w.-]+)*\.[A-Za-z]\w{0,11}$|^[\w.-]+/[\w./-]*$")  # "net.pt", "digits/train"
_DATA_FILE = re.compile(r"[\w./-]+\.(?:pt|pth|pt2|ckpt|bin|safetensors|onnx|png|jpg|json|csv|txt|npy|npz|pkl|py|sh)\b")


def named_files(node: ast.AST) -> set[str]:
    """The files code names: a string that is a path, or names one (code run elsewhere)."""
    strings = [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    return {f for text in strings for f in ([text] if _FILE.match(text) else _DATA_FILE.findall(text))}


def not_run(block: Block, lang: str, link=lambda name: name) -> str:
    """Why a skipped block is not part of the page's program, and what to do, in `lang`; the
    files it reads as `link(name)` makes them."""
    reason = block.mark("skip").reason
    kind = reason.split(":")[0]
    if kind not in NOT_RUN:
        raise ValueError(f"line {block.lineno}: skip reason {reason!r} has no reader's words: its words before "
                         f"the first ':' must be one of {sorted(NOT_RUN)} (pagekit/export.py NOT_RUN)")
    files = sorted(named_files(ast.parse(block_code(block))))
    joined = ("、" if lang == "zh" else ", ").join(link(f) for f in files)
    return NOT_RUN[kind][lang].format(files=joined)


def block_code(block: Block, lang: str = "en") -> str:
    """A block's code as the site shows it (includes expanded), its comments and docstrings in
    `lang` (pagekit.comments; the code itself is the same in every language)."""
    return (block.source if block.expanded else translate(block.source, lang)).rstrip("\n")


_DEFINES = re.compile(r"^(?:def|class|async def|@)", re.M)


def join_code(parts: list[str]) -> str:
    """Pieces of code as one file, with PEP 8's blank lines: two around a definition, else one."""
    parts = [part.strip("\n") for part in parts]
    text = parts[0]
    for before, part in zip(parts, parts[1:]):
        text += ("\n\n\n" if _DEFINES.search(before) or _DEFINES.search(part) else "\n\n") + part
    return text


def _indent(code: str) -> str:
    return textwrap.indent(code, "    ", lambda line: bool(line.strip()))


def _comment(text: str) -> str:
    return "\n".join(f"# {line}".rstrip() for line in text.strip("\n").split("\n"))


def starts_processes(blocks: list[Block]) -> bool:
    """Does the page's program start worker processes (a block it runs is marked multiprocess)?"""
    return any(b.mark("multiprocess") and not b.mark("skip") for b in python_blocks(blocks))


_GUARD = 'if __name__ == "__main__":'


def _is_definition(node: ast.stmt) -> bool:
    """What a spawned worker must find when it imports the script: imports, functions, classes,
    constants, and the script's own `if __name__ == "__main__":`."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, ast.If):
        return ast.unparse(node.test).replace("'", '"') == _GUARD[3:-1]
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        try:
            ast.literal_eval(node.value)
        except ValueError:
            return False
        return True
    return False


def _no_multiline_strings(code: str) -> None:
    """Indenting code changes a string literal that spans lines: refuse it."""
    kinds = {tokenize.STRING} | ({tokenize.FSTRING_MIDDLE} if hasattr(tokenize, "FSTRING_MIDDLE") else set())
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type in kinds and tok.start[0] != tok.end[0]:
            raise ValueError(f"line {tok.start[0]}: a string literal spanning lines would change when "
                             "indented under the guard; write it on one line with \\n escapes")


def spawn_safe(code: str) -> str:
    """The code as a script that worker processes may import (spawn, forkserver): definitions
    stay at the top level, every other statement goes under `if __name__ == "__main__":`, so a
    worker that imports the script defines what it needs and runs nothing else. Comments stay
    with the statement below them."""
    lines = code.split("\n")
    body = ast.parse(code).body
    groups: list[tuple[bool, list[str]]] = []
    start = 0
    for i, node in enumerate(body):
        end = node.end_lineno if i + 1 < len(body) else len(lines)
        guarded = not _is_definition(node)
        chunk = lines[start:end]
        if groups and groups[-1][0] == guarded:
            groups[-1][1].extend(chunk)
        else:
            groups.append((guarded, chunk))
        start = end
    out = []
    for guarded, chunk in groups:
        text = "\n".join(chunk).strip("\n")
        if guarded:
            _no_multiline_strings(text)
            text = f"{_GUARD}\n{_indent(text)}"
        out.append(text)
    return "\n\n".join(out)


def script_code(block: Block, spawn: bool = False, lang: str = "en") -> str | None:
    """A block's code as the chapter's script runs it (a must-fail block inside a try/except that prints
    `Type: message`; None for a skipped block); `spawn`: laid out for worker processes (`spawn_safe`)."""
    if block.mark("skip"):
        return None
    code = block_code(block, lang)
    if block.must_fail:
        error = block.must_fail
        head = [f"import {error.rsplit('.', 1)[0]}"] if "." in error else []
        code = "\n".join(head + ["try:", _indent(code), f"except {error} as error:",
                                  '    print(f"{type(error).__name__}: {error}")'])
    return spawn_safe(code) if spawn else code


def script(chapter: Chapter, lang: str, filename: str) -> str:
    """The chapter's blocks in order, as one file that `python FILE` runs top to bottom."""
    w = WORDS[lang]
    head = [f'"""{chapter.title}', "", f"{w['source']}: {chapter.url}",
            f"{w['run']}: python {filename}", '"""']
    body: list[str] = []
    section = ""
    spawn = starts_processes([part for kind, part in chapter.parts if kind == "code"])
    for kind, part in chapter.parts:
        if kind != "code":
            continue
        if part.section != section:
            section = part.section
            body += ["", f"# ## {section}", ""]
        code = script_code(part, spawn, lang)
        if code is None:
            body += ["", _comment(not_run(part, lang)), _comment(block_code(part, lang)), ""]
        elif part.must_fail:
            body += ["", f"# --- {w['fails']} ({part.must_fail.rsplit('.', 1)[-1]})", code, ""]
        else:
            body += [code, ""]
    text = "\n".join(head + body).rstrip("\n") + "\n"
    return re.sub(r"\n{4,}", "\n\n\n", text)


def _cell(kind: str, source: str, n: int, tags: list[str] | None = None) -> dict:
    """A notebook cell as nbformat 4.5 writes it (built as a dict: validating each cell as it is
    made costs more than the rest of the build's work on notebooks; tests validate the result)."""
    cell = {"cell_type": kind, "id": f"cell-{n}", "metadata": {"tags": tags} if tags else {},
            "source": source}
    if kind == "code":
        cell.update(execution_count=None, outputs=[])
    return cell


def notebook(chapter: Chapter, lang: str):
    """The chapter as a notebook (an nbformat.NotebookNode): prose as Markdown cells, blocks as
    code cells. nbformat is imported here: running a page needs no notebook library."""
    import nbformat

    w = WORDS[lang]
    cells = [("markdown", f"{w['source']}: <{chapter.url}>", None)]
    for kind, part in chapter.parts:
        if kind == "md":
            cells.append(("markdown", str(part), None))
        elif kind == "output":
            continue
        elif part.mark("skip"):
            cells.append(("markdown", f"*{not_run(part, lang)}*\n\n```python\n{block_code(part, lang)}\n```", None))
        else:
            cells.append(("code", block_code(part, lang), ["raises-exception"] if part.must_fail else None))
    return nbformat.from_dict({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "cells": [_cell(kind, source, n, tags) for n, (kind, source, tags) in enumerate(cells)]})


@remembered  # a warm build reads them (pagekit.memo): a third of the chapters hook's time
def chapter_files(markdown: str, url: str, lang_base: str, where: str, lang: str, slug: str) -> dict:
    """What a chapter's page offers beside its text: its notebook and script (`<slug>.ipynb`, `<slug>.py`),
    each Python block's runnable copy (`runnable`: [needed blocks, program], or None for a block outside
    the program), whether its program starts worker processes (`spawns`), and each block's code in
    `lang` -> the code that ran (`english`, to find a block's GPU output)."""
    import nbformat

    from pagekit.runnable import programs

    chapter = read_chapter(markdown, url, lang_base, where=where, lang=lang)
    code = [part for kind, part in chapter.parts if kind == "code"]
    return {f"{slug}.ipynb": nbformat.writes(notebook(chapter, lang)) + "\n",
            f"{slug}.py": script(chapter, lang, f"{slug}.py"),
            "runnable": [None if b.mark("skip") or b.mark("cuda") else found for b, found in zip(code, programs(code, lang))],
            "spawns": starts_processes(code),
            "english": {block_code(b, lang): block_code(b) for b in code}}


def notebook_blocks(nb) -> list[Block]:
    """A notebook's code cells as blocks that pagekit.run.run_program runs in order."""
    found = []
    for n, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        marks = [Mark("xfail", raises="Exception")] if "raises-exception" in tags else []
        found.append(Block("python", "python", cell.source, n + 1, n + 1, marks,
                           section=f"cell {n}", expanded=True))
    return found

