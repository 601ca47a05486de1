"""Read the code blocks a page shows, exactly as the site renders them, and run them.

A page is one program: its Python blocks run in order in one namespace, as a
notebook's cells do, in an empty folder, as `__main__`. A fence usually holds only
`--8<-- "snippets/x.py:section"` lines; `expand()` runs them through
pymdownx.snippets configured from mkdocs.yml, so tests run the very code a reader
copies. The marker comments are pytest-codeblocks' syntax, on the lines before a
fence, read with `ast` (never evaluated):

    <!--pytest.mark.skip(reason="...")-->                  not run here; the reason names
                                                          the test that runs this code
    <!--pytest.mark.xfail(raises=ValueError, strict=True)-->  must fail with that error;
                                                          the page goes on after it
    <!--pytest.mark.varies(reason="...", holds="expr")-->  its output depends on the machine or
                                                          the torch release: exact on the pinned
                                                          CPU versions only; elsewhere `expr`
                                                          (optional) must be true after it. The
                                                          page shows the reason under the output
    <!--pytest.mark.cuda-->                               runs only where CUDA is present
    <!--pytest.mark.multiprocess-->  <!--pytest.mark.slow-->  select the page's test
    <!--pytest-codeblocks:expected-output-->              the next fence is the output of
                                                          the block before (for a block
                                                          that must fail: what it printed,
                                                          then `Type: message`)

The same `run_program()` runs a page in the tests (conftest.py, inside tests/plain_run.py: a
fresh interpreter, the page's script code block by block), rewrites its expected outputs
(tools/outputs.py, in-process) and runs the downloaded lab notebooks (tests/test_labs.py).
"""
from __future__ import annotations

import ast
import contextlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
import traceback
import types
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON_FENCES = {"python", "py", "python3"}
MARKER = re.compile(r"^<!--\s*(pytest\.mark\..*|pytest-codeblocks:[\w-]+)\s*-->$")
SELECTING_MARKS = {"cuda", "multiprocess", "slow"}


class MarkerError(ValueError):
    """A marker comment this runner does not understand (reported as page:line)."""


@dataclass(frozen=True)
class Mark:
    name: str                  # skip, xfail, varies, cuda, multiprocess, slow
    reason: str | None = None  # skip; varies (shown on the page under the output)
    raises: str | None = None  # xfail: dotted exception name, e.g. "pickle.UnpicklingError"
    holds: str | None = None   # varies: an expression that is true after the block on every machine


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
            reason, holds = kwargs.get("reason"), kwargs.get("holds")
            if not (isinstance(reason, ast.Constant) and isinstance(reason.value, str) and reason.value):
                raise ValueError('a varies mark needs reason="..." saying why the output differs between machines')
            if holds is not None:
                if not (isinstance(holds, ast.Constant) and isinstance(holds.value, str)):
                    raise ValueError('holds= must be a string: an expression true after the block')
                compile(holds.value, "holds", "eval")
            return Mark("varies", reason=reason.value, holds=holds.value if holds is not None else None)
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


def parse_page(text: str, where: str = "page") -> list[Block]:
    """Split a Markdown page into fenced blocks with their markers."""
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


class _IgnoreTags(yaml.SafeLoader):
    """Reads mkdocs.yml without importing what its !tags name (mkdocs need not be installed)."""


_IgnoreTags.add_multi_constructor("", lambda loader, suffix, node: None)


def mkdocs_config() -> dict:
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_IgnoreTags)


def snippet_options() -> dict:
    """mkdocs.yml's pymdownx.snippets options, with base_path resolved to the project root."""
    for ext in mkdocs_config()["markdown_extensions"]:
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


@lru_cache(maxsize=4096)
def expand(source: str) -> str:
    """Expand `--8<--` includes as mkdocs does (SnippetMissingError if one is broken).

    Cached: a build expands each block for the page, its notebook and its script; a process that
    sees the snippet files change (`mkdocs serve`) calls `expand.cache_clear()` (hooks/pages.py)."""
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


# --- running a page ------------------------------------------------------------------------------
@dataclass
class Result:
    block: Block
    output: str = ""                      # what the block printed (and, if it failed, `Type: message`)
    error: BaseException | None = None    # the exception it raised, if any
    skipped: str | None = None            # why it did not run
    failed_as_it_must: bool = False       # it raised the error it is marked to raise
    warnings: list[str] = field(default_factory=list)  # `Category: message`, kept apart from output
    holds: bool | None = None             # a varies mark's `holds=`, evaluated after the block


class ProgramError(Exception):
    """An error a page raised in the process that ran it: its `Type: message` and traceback."""


def skip_reason(block: Block, *, cuda: bool) -> str | None:
    """Why a block is not run here (None: run it)."""
    if block.mark("skip"):
        return block.mark("skip").reason
    if block.mark("cuda") and not cuda:
        return "needs a CUDA GPU (torch.cuda.is_available() is False)"
    return None


def error_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def fresh_main(workdir: Path, filename: str) -> Iterator[types.ModuleType]:
    """A new `__main__` module, with `workdir` as the current folder, restored afterwards."""
    main = types.ModuleType("__main__")  # a fresh script module: pickling and guards work
    main.__file__ = str(Path(workdir) / filename)
    main.__builtins__ = __builtins__
    saved_main, saved_cwd = sys.modules["__main__"], os.getcwd()
    sys.modules["__main__"] = main
    os.chdir(workdir)
    try:
        yield main
    finally:
        sys.modules["__main__"] = saved_main
        os.chdir(saved_cwd)


def run_program(blocks: list[Block], workdir: Path, *, name: str = "page.py",
                cuda: bool | None = None) -> Iterator[Result]:
    """Run Python blocks in order in one namespace; yield each block's result as it finishes.

    A block marked to fail must raise its error (else the result has error=None and the
    caller reports it); any other error stops the program after yielding its result.
    """
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    with fresh_main(workdir, name) as main:
        for block in python_blocks(blocks):
            reason = skip_reason(block, cuda=cuda)
            if reason:
                yield Result(block, skipped=reason)
                continue
            out = io.StringIO()
            result = Result(block)
            try:
                with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    code = block.source if block.expanded else expand(block.source)
                    exec(compile(code, f"{name}:{block.lineno}", "exec"), main.__dict__)
                    varies = block.mark("varies")
                    if varies and varies.holds:
                        result.holds = bool(eval(varies.holds, main.__dict__))
            except Exception as exc:  # noqa: BLE001  (reported to the caller with its real type)
                result.error = exc
                result.failed_as_it_must = bool(block.must_fail
                                                and isinstance(exc, exception_type(block.must_fail)))
                out.write(("" if out.getvalue().endswith("\n") or not out.getvalue() else "\n")
                          + error_line(exc) + "\n")
            result.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
            result.output = out.getvalue()
            yield result
            if result.error is not None and not result.failed_as_it_must:
                return


# --- a page's program in a fresh interpreter ---------------------------------------------------
# tests/plain_run.py runs a page's blocks, as its script holds them (written as JSON by
# tools.chapter_export.script_program), in a new process whose path holds neither the repository
# nor the tests; it writes each block's result as JSON (`record`), read back by `results_from`.

def program_blocks(path: Path) -> list[Block]:
    return [Block("python", "python", b["source"], b["lineno"], b["lineno"],
                  [Mark(**m) for m in b["marks"]], section=b["section"], expanded=True)
            for b in json.loads(path.read_text(encoding="utf-8"))]


def record(result: Result) -> dict:
    error = result.error
    return {"output": result.output, "skipped": result.skipped, "failed_as_it_must": result.failed_as_it_must,
            "warnings": result.warnings, "holds": result.holds,
            "error": None if error is None else error_line(error),
            "traceback": None if error is None else "".join(traceback.format_exception(error))}


def results_from(records: list[dict], blocks: list[Block]) -> list[Result]:
    """A page's results as run elsewhere, for its own blocks (same code, its own output fences)."""
    blocks = python_blocks(blocks)
    if len(records) > len(blocks):
        raise ValueError(f"{len(records)} results for {len(blocks)} blocks")
    found = []
    for r, block in zip(records, blocks):
        error = None if r["error"] is None else ProgramError(f"{r['error']}\n{r['traceback']}")
        skipped = r["skipped"] and (block.mark("skip").reason if block.mark("skip") else r["skipped"])
        result = Result(block, r["output"], error, skipped or None, r["failed_as_it_must"],
                        r.get("warnings", []), r.get("holds"))
        caught = block.must_fail and error is None and next(
            (line for line in r["output"].split("\n") if line.startswith(f"{block.must_fail.rsplit('.', 1)[-1]}: ")), None)
        if caught:  # the script's try/except caught the error this block must raise, and printed it
            result.error, result.failed_as_it_must = ProgramError(caught), True
        found.append(result)
    return found


def without_repository(pythonpath: str) -> str:
    """PYTHONPATH less the repository (a reader's program cannot import `snippets` or `tools`);
    other folders stay: packages installed outside the interpreter (make gpu-check's private
    folder, a --target install) are what a reader's machine has."""
    keep = [p for p in pythonpath.split(os.pathsep) if p and Path(p).resolve() != ROOT]
    return os.pathsep.join(keep)


class CleanRun:
    """tests/plain_run.py over `files`, started now in the background (cwd `folder`, the repository
    off PYTHONPATH,
    a lower CPU priority than the tests that wait for it); `results()` waits for it and returns
    {file: {"returncode", "seconds"}}."""

    def __init__(self, files: list[Path], folder: Path, parallel: int = 1):
        self.folder = Path(folder)
        env = dict(os.environ, PYTHONPATH=without_repository(os.environ.get("PYTHONPATH", "")))
        with open(self.folder / "plain_run.log", "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "tests" / "plain_run.py"), "results.json", "--parallel", str(parallel),
                 *map(str, files)], cwd=self.folder, env=env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=lambda: os.nice(5))

    def results(self, timeout: float = 900) -> dict[str, dict]:
        if self.process.wait(timeout) != 0:
            log = (self.folder / "plain_run.log").read_text(errors="replace")
            raise RuntimeError(f"tests/plain_run.py exited {self.process.returncode}:\n{log[-3000:]}")
        return json.loads((self.folder / "results.json").read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
