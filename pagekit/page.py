"""The page model: the code blocks a page shows, with their marks and expected outputs, read once.

A page is one program (CONTRIBUTING.md, "A page is one program"); its fences hold `--8<--` includes, which
`expand()` runs through pymdownx.snippets as mkdocs.yml configures it. The marker comments before a fence are
pytest-codeblocks' syntax, read with `ast`, never evaluated: `pytest.mark.skip(reason=...)`,
`xfail(raises=..., strict=True)`, `varies(reason=..., holds=..., cpu=True)`, `cuda`, `multiprocess`, `slow`, and
`pytest-codeblocks:expected-output` (the next fence is the output of the block before). pagekit.run runs them.
"""
from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from pagekit.project import snippet_options

PYTHON_FENCES = {"python", "py", "python3"}
MARKER = re.compile(r"^<!--\s*(pytest\.mark\..*|pytest-codeblocks:[\w-]+)\s*-->$")
SELECTING_MARKS = {"cuda", "multiprocess", "slow"}
FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.S)
TITLE = re.compile(r"^# .*$", re.M)


class MarkerError(ValueError):
    """A marker comment this runner does not understand (reported as page:line)."""


@dataclass(frozen=True)
class Mark:
    name: str                  # skip, xfail, varies, cuda, multiprocess, slow
    reason: str | None = None  # skip; varies (shown on the page under the output)
    raises: str | None = None  # xfail: dotted exception name, e.g. "pickle.UnpicklingError"
    holds: str | None = None   # varies: an expression that is true after the block on every machine
    cpu: bool = False          # varies: its numbers also depend on the CPU, so the pin compares them masked too


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    raise ValueError("raises= must name an exception class, e.g. raises=ValueError")


def parse_mark(text: str, where: str = "") -> Mark:
    """`pytest.mark.xfail(raises=ValueError, strict=True)` -> Mark("xfail", raises="ValueError")."""
    try:
        node = ast.parse(text, mode="eval").body
        call = node if isinstance(node, ast.Call) else None
        target = call.func if call else node
        name = _dotted(target).removeprefix("pytest.mark.")
        kwargs = {k.arg: k.value for k in (call.keywords if call else [])}
        if call and call.args:
            raise ValueError("write arguments by name (reason=..., raises=...)")
        if name == "skip":
            reason = kwargs.get("reason")
            if not (isinstance(reason, ast.Constant) and isinstance(reason.value, str) and reason.value):
                raise ValueError('a skip needs reason="..." naming the test that runs this code')
            return Mark("skip", reason=reason.value)
        if name == "varies":
            reason, holds, cpu = kwargs.get("reason"), kwargs.get("holds"), kwargs.get("cpu")
            if not (isinstance(reason, ast.Constant) and isinstance(reason.value, str) and reason.value):
                raise ValueError('a varies mark needs reason="..." saying why the output differs between machines')
            if holds is not None:
                if not (isinstance(holds, ast.Constant) and isinstance(holds.value, str)):
                    raise ValueError('holds= must be a string: an expression true after the block')
                compile(holds.value, "holds", "eval")
            if cpu is not None and not (isinstance(cpu, ast.Constant) and cpu.value is True):
                raise ValueError("cpu= is True or left out: True when the numbers depend on the CPU too")
            return Mark("varies", reason=reason.value, holds=holds.value if holds is not None else None,
                        cpu=cpu is not None)
        if name == "xfail":
            strict = kwargs.get("strict")
            if "raises" not in kwargs or not (isinstance(strict, ast.Constant) and strict.value is True):
                raise ValueError("a block that must fail is marked xfail(raises=SomeError, strict=True)")
            return Mark("xfail", raises=_dotted(kwargs["raises"]))
        if name in SELECTING_MARKS and not kwargs:
            return Mark(name)
        raise ValueError(f"unknown mark {name!r}; use skip, xfail, varies, {', '.join(sorted(SELECTING_MARKS))}")
    except (SyntaxError, ValueError) as err:
        raise MarkerError(f"{where}: bad marker <!--{text}-->: {err}") from None


def exception_type(dotted: str) -> type[BaseException]:
    """The class a `raises=` names: a builtin (ValueError) or module.Class (pickle.UnpicklingError)."""
    module, _, name = dotted.rpartition(".")
    found = getattr(importlib.import_module(module or "builtins"), name)
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise TypeError(f"raises={dotted} is not an exception class")
    return found


@dataclass
class Block:
    lang: str
    info: str                 # the whole fence info string, e.g. 'python title="x.py"'
    source: str               # the fence body as written in the Markdown
    lineno: int               # first line of the body (1-based)
    end: int = 0              # line of the closing fence (1-based)
    marks: list[Mark] = field(default_factory=list)
    cont: bool = False        # an old `pytest-codeblocks:cont` marker (pages are one program now)
    expected: str | None = None
    expected_span: tuple[int, int] | None = None  # marker line .. closing fence (1-based)
    section: str = ""         # the `##` heading the block sits under
    expanded: bool = False    # source is plain code already (a notebook cell), not includes

    @property
    def is_python(self) -> bool:
        return self.lang in PYTHON_FENCES

    def mark(self, name: str) -> Mark | None:
        return next((m for m in self.marks if m.name == name), None)

    @property
    def must_fail(self) -> str | None:
        """The dotted name of the error this block must raise, or None."""
        mark = self.mark("xfail")
        return mark.raises if mark else None


@lru_cache(maxsize=256)
def parse_page(text: str, where: str = "page") -> list[Block]:
    """Split a Markdown page into fenced blocks with their markers (cached: a build and a test
    session ask for the same page several times; the blocks are not to be changed)."""
    blocks: list[Block] = []
    marks: list[Mark] = []
    cont = False
    expect_at = 0
    section = ""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        if lines[i].startswith("## "):
            section = lines[i][3:].strip()
        m = MARKER.match(stripped)
        if m:
            word = m.group(1)
            if word.startswith("pytest.mark."):
                marks.append(parse_mark(word, f"{where}:{i + 1}"))
            elif word == "pytest-codeblocks:cont":
                cont = True
            elif word == "pytest-codeblocks:expected-output":
                expect_at = i + 1
            else:
                raise MarkerError(f"{where}:{i + 1}: unknown marker {word!r}")
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
        end = i + 1
        i += 1  # closing fence
        source = "\n".join(body) + "\n"
        lang = re.split(r"[\s{]", info.lstrip("{."), maxsplit=1)[0] if info else ""
        if expect_at:
            if not blocks:
                raise MarkerError(f"{where}:{start}: expected-output before any code block")
            blocks[-1].expected = source
            blocks[-1].expected_span = (expect_at, end)
            expect_at = 0
            continue
        blocks.append(Block(lang, info, source, start, end, marks, cont, section=section))
        marks, cont = [], False
    return blocks


@lru_cache(maxsize=None)
def _snippet_preprocessor():
    import markdown

    md = markdown.Markdown(extensions=["pymdownx.snippets"],
                           extension_configs={"pymdownx.snippets": snippet_options()})
    return md.preprocessors["snippet"]


@lru_cache(maxsize=4096)
def expand(source: str) -> str:
    """Expand `--8<--` includes as mkdocs does (SnippetMissingError if one is broken); `mkdocs serve` clears
    the cache when snippet files change (hooks/chapters.py)."""
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


def python_blocks(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if b.is_python]


def front_matter(text: str) -> dict:
    """A page's YAML front matter ({} without one)."""
    found = FRONT_MATTER.match(text)
    return (yaml.safe_load(found.group(1)) or {}) if found else {}


def is_chapter(text: str) -> bool:
    """A page with Python blocks: it runs as a program, and downloads as a script and notebook."""
    return any(b.is_python for b in parse_page(text))


def read(path: Path) -> list[Block]:
    """The blocks of the page at `path`."""
    return parse_page(Path(path).read_text(encoding="utf-8"), str(path))
