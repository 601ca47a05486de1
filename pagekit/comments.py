"""Code comments and docstrings in the reader's language, from one source of code.

`snippets/<module>.zh.yml` maps the English text of each comment and docstring a page shows to its Chinese; only
those tokens change (`code_tokens` is the same in both languages). See CONTRIBUTING.md, "Comments in the reader's
language".
"""
from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import yaml

from pagekit.memo import remembered
from pagekit.page import INCLUDE, expand, front_matter, parse_page
from pagekit.project import ROOT

SOURCE_LANG = "en"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Words:
    """A comment or a docstring in a block's code."""
    module: str          # snippets/layers.py
    section: str         # corr2d
    kind: str            # "comment" or "docstring"
    text: str            # its English text: the comment after `#`, stripped; the docstring cleaned
    start: tuple[int, int]  # (row, col) of its token in the block's code, rows from 1
    end: tuple[int, int]
    token: str           # the token as written


def table_path(module: str, lang: str) -> Path:
    """snippets/layers.py -> snippets/layers.zh.yml"""
    return ROOT / Path(module).with_suffix(f".{lang}.yml")


def module_of(path: Path) -> str:
    """snippets/layers.zh.yml -> snippets/layers.py (or .sh): the module it translates."""
    stem = path.name.split(".")[0]
    found = [p for p in path.parent.glob(f"{stem}.*") if p.suffix in (".py", ".sh")]
    if len(found) != 1:
        raise LookupError(f"{path.relative_to(ROOT)} translates no one module beside it ({len(found)} found)")
    return str(found[0].relative_to(ROOT))


@lru_cache(maxsize=None)
def table(module: str, lang: str) -> dict[str, str]:
    """English text -> its translation, for one module ({} where it has no translation file)."""
    path = table_path(module, lang)
    if not path.is_file():
        return {}
    found = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}
    if not isinstance(found, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
        raise ValueError(f"{path.relative_to(ROOT)}: write `English text: translation` pairs, both strings")
    return {key(k): v.strip("\n") for k, v in found.items()}


def key(text: str) -> str:
    """A text as its table writes it: runs of white space (a docstring's line breaks) as one space."""
    return " ".join(text.split())


_STRING_LINE = re.compile(r"^[ \t]*[rRuU]?['\"]", re.M)  # a docstring starts its line


def _docstrings(code: str) -> dict[tuple[int, int], str]:
    """(row, col) of each docstring's token -> its cleaned text."""
    found = {}
    if not _STRING_LINE.search(code):
        return found
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                # col_offset counts bytes: only the indentation precedes a docstring, so it counts characters
                found[(first.lineno, first.col_offset)] = inspect.cleandoc(first.value.value)
    return found


SHELLS = {"bash", "sh", "shell"}


def _shell_comments(code: str) -> Iterator[tokenize.TokenInfo]:
    """A shell script's comments as tokens: from a `#` that starts a word outside quotes to the
    end of its line (not a first line's `#!`)."""
    for row, line in enumerate(code.split("\n"), 1):
        quote = None
        for col, char in enumerate(line):
            if quote:
                quote = None if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "#" and (col == 0 or line[col - 1].isspace()):
                if not (row == 1 and line.startswith("#!")):
                    yield tokenize.TokenInfo(tokenize.COMMENT, line[col:], (row, col), (row, len(line)), line)
                break


def _found(code: str, shell: bool, skip: re.Pattern | None = None) -> Iterator[tuple[tokenize.TokenInfo, str, str]]:
    """(token, kind, text) for each comment (but those `skip` matches) and docstring of `code`."""
    docs = {} if shell else _docstrings(code)
    tokens = _shell_comments(code) if shell else tokenize.generate_tokens(io.StringIO(code).readline)
    for tok in tokens:
        if tok.type == tokenize.COMMENT and not (skip and skip.match(tok.string)):
            yield tok, "comment", tok.string[1:].strip()
        elif tok.type == tokenize.STRING and tok.start in docs:
            yield tok, "docstring", docs[tok.start]


@lru_cache(maxsize=4096)
def words(source: str, shell: bool = False) -> tuple[Words, ...]:
    """Every comment and docstring of a fence (its `--8<--` includes), with the module and
    section it comes from; `shell`: a shell script's comments."""
    code = expand(source)
    named = [m.group(1) for m in map(INCLUDE.match, source.split("\n")) if m and m.group(1)]
    if len(named) == 1:  # one include: every line is its own
        owner = [tuple(named[0].partition(":")[::2])] * len(code.split("\n"))
    else:  # the include lines expanded one by one
        owner = []
        for line in source.split("\n"):
            m = INCLUDE.match(line)
            module, _, section = (m.group(1) or "").partition(":") if m else ("", "", "")
            owner += [(module, section)] * len(expand(line).split("\n"))
    return tuple(Words(*owner[tok.start[0] - 1], kind, text, tok.start, tok.end, tok.string)
                 for tok, kind, text in _found(code, shell))


def _translated_token(w: Words, text: str) -> str:
    """The token of `w` with `text` in place of its own, a docstring's quotes and layout kept."""
    token = w.token
    if w.kind == "comment":
        if "\n" in text:
            raise ValueError(f"the translation of the comment {w.text!r} ({w.module}) spans lines")
        return "#" + token[1:len(token) - len(token[1:].lstrip())] + text
    body_at = next(i for i, c in enumerate(token) if c in "'\"")
    prefix, quote = token[:body_at], token[body_at:body_at + 3]
    quote = quote if quote in ('"""', "'''") else token[body_at]
    inner = token[len(prefix) + len(quote):-len(quote)]
    lines = text.split("\n")
    if len(lines) > 1 and len(quote) == 1:
        raise ValueError(f"a translation of {token!r} spans lines; its docstring has single quotes")
    if quote in text or "\\" in text:
        raise ValueError(f"a translation of {token!r} holds {quote} or a backslash")
    pad = " " * w.start[1]
    body = lines[0] + "".join("\n" + (pad + line if line.strip() else "") for line in lines[1:])
    if "\n" in inner and inner.rstrip(" ").endswith("\n"):  # closing quotes on their own line
        body += "\n" + pad
    return prefix + quote + body + quote


@lru_cache(maxsize=4096)
@remembered
def translate(source: str, lang: str, shell: bool = False) -> str:
    """A fence's code as the `lang` build shows it: its includes expanded, each comment and
    docstring in `lang` where its module's table has it (English where it has not). `shell`:
    the fence is a shell script (only its comments)."""
    code = expand(source)
    if lang == SOURCE_LANG:
        return code
    return _in_language(code, words(source, shell), lang)


def _in_language(code: str, found, lang: str) -> str:
    """`code` with each of its comments and docstrings `found` in `lang`, where its module's
    table has it."""
    lines = code.split("\n")
    for w in reversed(found):
        text = table(w.module, lang).get(key(w.text)) if w.module else None
        if text is None or text == w.text:
            continue
        (srow, scol), (erow, ecol) = w.start, w.end
        new = lines[srow - 1][:scol] + _translated_token(w, text) + lines[erow - 1][ecol:]
        lines[srow - 1:erow] = new.split("\n")
    return "\n".join(lines)


_SECTION_MARK = re.compile(r"^#\s*-{1,}8<-{1,}\s*\[(start|end):([^\]]*)\]")


@lru_cache(maxsize=64)
def file_words(module: str) -> tuple[Words, ...]:
    """Every comment and docstring of a whole snippet file that a page offers as a download
    (front matter `downloads:`), with the section it sits in ('' outside every section);
    the `--8<--` section marks are not words to translate."""
    path = ROOT / module
    if not path.is_file():
        raise FileNotFoundError(f"{module}: no such file to offer (a page's `downloads:` names it)")
    code, shell = path.read_text(encoding="utf-8"), path.suffix == ".sh"
    sections = [""]
    for line in code.split("\n"):
        mark = _SECTION_MARK.match(line.strip())
        sections.append(mark.group(2) if mark and mark.group(1) == "start" else
                        "" if mark else sections[-1])
    return tuple(Words(module, sections[tok.start[0]], kind, text, tok.start, tok.end, tok.string)
                 for tok, kind, text in _found(code, shell, skip=_SECTION_MARK))


def file_in_language(module: str, lang: str) -> str:
    """A snippet file offered as a download, as the `lang` page offers it: the file itself, byte
    for byte, in English; in another language each comment and docstring its table translates,
    in that language (the code the same, token for token)."""
    found = file_words(module)  # FileNotFoundError for a file that is not there
    text = (ROOT / module).read_text(encoding="utf-8")
    return text if lang == SOURCE_LANG else _in_language(text, found, lang)


def offered_files(pages: list[Path] | None = None) -> list[str]:
    """The snippet files the pages offer as downloads beside their notebook and script."""
    pages = pages or sorted((ROOT / "docs" / SOURCE_LANG).rglob("*.md"))
    return sorted({rel for page in pages
                   for rel in front_matter(page.read_text(encoding="utf-8")).get("downloads", [])})


def page_in_language(markdown: str, lang: str) -> str:
    """A page's Markdown with each Python fence whose comments or docstrings `lang` translates
    holding its code, translated, in place of its includes (other fences stay includes, which
    pymdownx.snippets expands to the same code). For the zh build's pages (hooks/chapters.py)."""
    if lang == SOURCE_LANG:
        return markdown
    lines = markdown.split("\n")
    for block in reversed(parse_page(markdown)):
        if not (block.is_python or block.lang in SHELLS):
            continue
        code = translate(block.source, lang, block.lang in SHELLS).rstrip("\n")
        if code == expand(block.source).rstrip("\n"):
            continue
        opening = lines[block.lineno - 1]  # Block.lineno: the opening fence's line, counted from 1
        indent = opening[:len(opening) - len(opening.lstrip())]
        lines[block.lineno:block.end - 1] = [indent + line if line.strip() else "" for line in code.split("\n")]
    return "\n".join(lines)


def code_tokens(code: str) -> list[tuple[int, str]]:
    """The code's tokens without its comments and with its docstrings blanked: the same in every
    language."""
    docs = _docstrings(code)
    skip = {tokenize.COMMENT, tokenize.NL}
    return [(tok.type, "<docstring>" if tok.type == tokenize.STRING and tok.start in docs else tok.string)
            for tok in tokenize.generate_tokens(io.StringIO(code).readline) if tok.type not in skip]


def clear_caches() -> None:
    """For a process that sees snippet or translation files change (`mkdocs serve`)."""
    table.cache_clear()
    words.cache_clear()
    translate.cache_clear()
    file_words.cache_clear()


def shown_words(pages: list[Path] | None = None) -> list[Words]:
    """Every comment and docstring the pages' Python blocks show (both languages show the same),
    and those of the files the pages offer as downloads."""
    pages = pages or sorted((ROOT / "docs" / SOURCE_LANG).rglob("*.md"))
    return [w for page in pages for b in parse_page(page.read_text(encoding="utf-8"), str(page))
            if b.is_python or b.lang in SHELLS for w in words(b.source, b.lang in SHELLS)] + [
        w for module in offered_files(pages) for w in file_words(module)] + [
        w for name in lab_sections() for w in words(f'--8<-- "{name}"')]


def lab_sections() -> list[str]:
    """The snippet sections the lab notebooks' code cells show (snippets/labs.cells.yml)."""
    labs = yaml.load((ROOT / "snippets" / "labs.cells.yml").read_text(encoding="utf-8"), Loader=_Loader)
    return [name for cells in labs.values() for cell in cells if isinstance(cell, list) for name in cell]


def missing(lang: str) -> dict[str, dict[str, Words]]:
    """module -> {English text: where it is shown} for each shown text its table lacks."""
    found: dict[str, dict[str, Words]] = {}
    for w in shown_words():
        if w.module and key(w.text) not in table(w.module, lang):
            found.setdefault(w.module, {}).setdefault(key(w.text), w)
    return found


class _Dumper(yaml.SafeDumper):
    """Multi-line translations as literal blocks (`|-`), as a translator writes them."""


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def entry(text: str, translation: str) -> str:
    """One `English: translation` line of a table, quoted where YAML needs it."""
    return yaml.dump({key(text): translation}, Dumper=_Dumper, allow_unicode=True, width=10_000, sort_keys=False)

