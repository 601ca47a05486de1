"""Read the code blocks a page shows, exactly as the site renders them.

A page's Python fence usually holds only `--8<-- "snippets/x.py:section"` lines;
`expand()` runs them through pymdownx.snippets configured from mkdocs.yml, so
tests run the very code a reader copies. `parse_page()` understands the marker
comments of pytest-codeblocks, placed on the lines before a fence:

    <!--pytest.mark.skip(reason="...")-->              any pytest mark
    <!--pytest.mark.xfail(raises=TypeError, strict=True)-->
    <!--pytest-codeblocks:cont-->                      continue the previous block
    <!--pytest-codeblocks:expected-output-->           the next fence is the output
                                                       (or the error line) of the block before

Unlike pytest-codeblocks' own runner, each block of a `cont` chain keeps its own
expected output, and exceptions keep their real type.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON_FENCES = {"python", "py", "python3"}
MARKER = re.compile(r"^<!--\s*(pytest\.mark\..*|pytest-codeblocks:[\w-]+)\s*-->$")


@dataclass
class Block:
    lang: str
    info: str                 # the whole fence info string, e.g. 'python title="x.py"'
    source: str               # the fence body as written in the Markdown
    lineno: int
    marks: list[str] = field(default_factory=list)
    cont: bool = False
    expected: str | None = None

    @property
    def is_python(self) -> bool:
        return self.lang in PYTHON_FENCES


def parse_page(text: str) -> list[Block]:
    """Split a Markdown page into fenced blocks with their markers."""
    blocks: list[Block] = []
    marks: list[str] = []
    cont = expect_output = False
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        m = MARKER.match(stripped)
        if m:
            word = m.group(1)
            if word.startswith("pytest.mark."):
                marks.append(word)
            elif word == "pytest-codeblocks:cont":
                cont = True
            elif word == "pytest-codeblocks:expected-output":
                expect_output = True
            else:
                raise ValueError(f"line {i + 1}: unknown marker {word!r}")
            i += 1
            continue
        fence = re.match(r"^(\s*)(`{3,}|~{3,})(.*)$", lines[i])
        if not fence:
            i += 1
            continue
        indent, ticks, info = fence.group(1), fence.group(2), fence.group(3).strip()
        body, start = [], i + 1
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(ticks):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1  # closing fence
        source = "\n".join(body) + "\n"
        lang = re.split(r"[\s{]", info.lstrip("{."), maxsplit=1)[0] if info else ""
        if expect_output:
            if not blocks:
                raise ValueError(f"line {start}: expected-output before any code block")
            blocks[-1].expected = source
            expect_output = False
            continue
        blocks.append(Block(lang, info, source, start, marks, cont))
        marks, cont = [], False
    return blocks


class _IgnoreTags(yaml.SafeLoader):
    """Reads mkdocs.yml without importing what its !tags name (mkdocs need not be installed)."""


_IgnoreTags.add_multi_constructor("", lambda loader, suffix, node: None)


def snippet_options() -> dict:
    """mkdocs.yml's pymdownx.snippets options, with base_path resolved to the project root."""
    cfg = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_IgnoreTags)
    for ext in cfg["markdown_extensions"]:
        if isinstance(ext, dict) and "pymdownx.snippets" in ext:
            opts = dict(ext["pymdownx.snippets"] or {})
            break
    else:
        raise LookupError("mkdocs.yml does not enable pymdownx.snippets")
    opts["base_path"] = [str(ROOT)]  # `!relative $config_dir` in mkdocs.yml
    return opts


@lru_cache(maxsize=None)
def _snippet_preprocessor():
    import markdown

    md = markdown.Markdown(extensions=["pymdownx.snippets"],
                           extension_configs={"pymdownx.snippets": snippet_options()})
    return md.preprocessors["snippet"]


def expand(source: str) -> str:
    """Expand `--8<--` includes as mkdocs does (SnippetMissingError if one is broken)."""
    return "\n".join(_snippet_preprocessor().run(source.split("\n")))


INCLUDE = re.compile(r'^\s*-{1,}8<-{1,}\s*(?:"([^"]+)")?\s*$')


def includes(source: str) -> list[str]:
    """The `path:section` names a fence includes, in order (inline and block forms)."""
    found, in_block = [], False
    for line in source.split("\n"):
        m = INCLUDE.match(line)
        if m and m.group(1):
            found.append(m.group(1))
        elif m:
            in_block = not in_block
        elif in_block and line.strip():
            found.append(line.strip())
    return found


def chains(blocks: list[Block]) -> list[list[Block]]:
    """Group Python blocks into runs: a block plus the `cont` blocks that follow it."""
    out: list[list[Block]] = []
    for b in blocks:
        if not b.is_python:
            continue
        if b.cont:
            if not out:
                raise ValueError(f"line {b.lineno}: cont marker but no Python block before it")
            out[-1].append(b)
        else:
            out.append([b])
    return out
