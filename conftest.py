"""Run every page the site shows as the program a reader runs: its Python blocks in order.

Each docs/**/*.md page with Python blocks is one test item. Its blocks, with their `--8<--`
includes expanded by the same pymdownx.snippets settings as mkdocs.yml, run in order in one
namespace, as a fresh `__main__`, in an empty temporary folder (tools/shown_code.py). Each
block's output is compared with the fence the page shows under it (tools/outputs.py: exact on
the pinned CPU versions, `...` only where VOLATILE allows it). A block marked to fail must raise
that error, and the page goes on after it. Marks such as `multiprocess` on a block select the
page's item; `skip` and `cuda` (on CPU) leave that one block out, with the reason reported.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from tools.outputs import problem  # noqa: E402
from tools.shown_code import SELECTING_MARKS, Block, parse_page, python_blocks, run_program  # noqa: E402

DOCS = ROOT / "docs"


class ShownPage(pytest.Item):
    def __init__(self, *, blocks: list[Block], **kwargs):
        super().__init__(**kwargs)
        self.blocks = blocks
        for name in sorted({m.name for b in blocks for m in b.marks} & SELECTING_MARKS - {"cuda"}):
            self.add_marker(name)

    def runtest(self):
        with tempfile.TemporaryDirectory(prefix=f"page-{self.path.stem}-") as workdir:
            self._run(Path(workdir))

    def _run(self, workdir: Path):
        problems, skipped = [], []
        for result in run_program(self.blocks, workdir, name=self.path.with_suffix(".py").name):
            if result.skipped:
                skipped.append(f"line {result.block.lineno}: {result.skipped}")
                continue
            found = problem(result)
            if found:
                problems.append(found)
            if result.error is not None and not result.failed_as_it_must:
                raise AssertionError(f"{self.path.name} line {result.block.lineno} "
                                     f"({result.block.section}) raised:\n{result.output}") from result.error
        self.user_properties.append(("blocks_skipped", skipped))
        assert not problems, f"{self.path.relative_to(ROOT)}:\n" + "\n".join(problems)

    def reportinfo(self):
        return self.path, 0, f"{self.path.relative_to(ROOT)}: its blocks in order"


class ShownCodePage(pytest.File):
    def collect(self):
        blocks = python_blocks(parse_page(self.path.read_text(encoding="utf-8"), str(self.path)))
        if blocks:
            yield ShownPage.from_parent(self, name="blocks in order", blocks=blocks)


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


def pytest_terminal_summary(terminalreporter):
    # blocks left out of a page's run, with the reason the page gives (a GPU, a test that covers them)
    lines = [f"{item_id}: {line}" for item_id, props in _skips(terminalreporter) for line in props]
    if lines:
        terminalreporter.section("shown blocks not run here")
        for line in lines:
            terminalreporter.line(line)


def _skips(terminalreporter):
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", []):
        for key, value in getattr(report, "user_properties", []):
            if key == "blocks_skipped" and value:
                yield report.nodeid, value
