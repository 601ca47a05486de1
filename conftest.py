"""Run every Python block the site shows, as a reader would run it.

Each block of docs/**/*.md, with its `--8<--` includes expanded by the same
pymdownx.snippets settings as mkdocs.yml (tools/shown_code.py), becomes a test
item named after its Markdown line. A block joined to the ones before it with
`<!--pytest-codeblocks:cont-->` runs in their namespace, in one item. Each chain
runs as a fresh `__main__` script in an empty temporary folder, so a block that
reads a file must have made it itself. Expected outputs are compared per block;
for a block that must fail (a strict xfail mark) the expected output is the
error's last line, `Type: message`, and `...` matches anything.
"""
from __future__ import annotations

import contextlib
import doctest
import io
import os
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from tools.shown_code import Block, chains, expand, parse_page  # noqa: E402

DOCS = ROOT / "docs"
_CHECKER = doctest.OutputChecker()


def output_matches(expected: str, got: str) -> bool:
    """Exact, except trailing spaces and `...` (doctest's ELLIPSIS)."""
    norm = lambda s: "\n".join(line.rstrip() for line in s.strip("\n").split("\n")) + "\n"  # noqa: E731
    return _CHECKER.check_output(norm(expected), norm(got), doctest.ELLIPSIS)


def _marks(block: Block):
    return [eval(m, {"pytest": pytest, "sys": sys, "os": os}) for m in block.marks]


def _raises(block: Block) -> bool:
    return any(m.name == "xfail" for m in _marks(block))


class ShownCodeChain(pytest.Item):
    def __init__(self, *, chain: list[Block], **kwargs):
        super().__init__(**kwargs)
        self.chain = chain
        for b in chain:
            for mark in _marks(b):
                self.add_marker(mark)

    def runtest(self):
        main = types.ModuleType("__main__")  # a fresh script module: pickling and guards work
        main.__file__ = str(Path(self.path).with_suffix(".py"))
        saved_main, saved_cwd = sys.modules["__main__"], os.getcwd()
        tmp = self.config._tmp_path_factory.mktemp("shown")  # type: ignore[attr-defined]
        sys.modules["__main__"] = main
        os.chdir(tmp)
        try:
            for block in self.chain:
                self._run_block(block, main)
        finally:
            sys.modules["__main__"] = saved_main
            os.chdir(saved_cwd)

    def _run_block(self, block: Block, main: types.ModuleType):
        code = expand(block.source)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"{self.path.name}:{block.lineno}", "exec"), main.__dict__)
        except Exception as exc:
            if _raises(block) and block.expected is not None:
                got = f"{type(exc).__name__}: {exc}"
                if not output_matches(block.expected, got):
                    raise AssertionError(
                        f"line {block.lineno} raised as expected, but its error differs from the page.\n"
                        f"page shows:\n{block.expected}\nraised:\n{got}") from exc
            raise
        if block.expected is not None and not output_matches(block.expected, out.getvalue()):
            raise AssertionError(
                f"line {block.lineno}: output differs from the page.\n"
                f"page shows:\n{block.expected}\nthe code printed:\n{out.getvalue()}")

    def reportinfo(self):
        return self.path, self.chain[0].lineno - 1, f"shown code, line {self.chain[0].lineno}"


class ShownCodePage(pytest.File):
    def collect(self):
        for chain in chains(parse_page(self.path.read_text(encoding="utf-8"))):
            for b in chain[:-1]:
                if _raises(b):
                    raise ValueError(f"{self.path}:{b.lineno}: a block that must fail has to end its cont chain")
            yield ShownCodeChain.from_parent(self, name=f"line {chain[0].lineno}", chain=chain)


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix == ".md" and DOCS in file_path.parents:
        return ShownCodePage.from_parent(parent, path=file_path)


def pytest_collection_modifyitems(config, items):
    # CUDA tests: skipped with a visible reason where no GPU is present
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)
