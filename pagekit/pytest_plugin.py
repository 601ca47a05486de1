"""The pytest plugin (loaded by conftest.py): each docs/**/*.md page with Python blocks is one test item.

All collected pages' programs run in the background from the end of collection (pagekit.run; the zh and
en pages of a chapter share one run), while the other tests run; each block's output is then compared with
the fence its page shows (pagekit.compare). A block marked to fail must raise that error and the page goes
on; marks such as `multiprocess` select the page's item; `skip` and `cuda` (on CPU) leave a block out, with
the reason reported.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from pagekit.compare import code_sha, own_messages, problem
from pagekit.export import block_code
from pagekit.page import SELECTING_MARKS, Block, includes, python_blocks, read
from pagekit.project import DOCS, ROOT
from pagekit.run import FreshRun, program_file, results_from


class ShownPage(pytest.Item):
    def __init__(self, *, blocks: list[Block], **kwargs):
        super().__init__(**kwargs)
        self.blocks = blocks
        for name in sorted({m.name for b in blocks for m in b.marks} & SELECTING_MARKS - {"cuda"}):
            self.add_marker(name)

    def runtest(self):
        records, error = self.config.stash[PAGE_RUNS].outcome(self)
        results = results_from(records, self.blocks)
        own = own_messages("\n".join(block_code(b) for b in self.blocks))  # the project's error messages
        self.user_properties.append(("block_results", [  # what each block printed here (make gpu-check keeps it)
            {"line": r.block.lineno, "section": r.block.section, "includes": includes(r.block.source),
             "code_sha": code_sha(block_code(r.block)),
             "output": r.output, "warnings": r.warnings,
             "holds": r.holds, "error": None if r.error is None else str(r.error).split("\n")[0]}
            for r in results if not r.skipped]))
        problems, skipped = [], []
        for result in results:
            if result.skipped:
                skipped.append(f"line {result.block.lineno}: {result.skipped}")
                continue
            found = problem(result, own=own)
            if found:
                problems.append(found)
            if result.error is not None and not result.failed_as_it_must:
                raise AssertionError(f"{self.path.name} line {result.block.lineno} "
                                     f"({result.block.section}) raised:\n{result.output}\n{result.error}")
        self.user_properties.append(("blocks_skipped", skipped))
        assert len(results) == len(self.blocks), f"the run stopped after {len(results)} blocks:\n{error}"
        assert not problems, f"{self.path.relative_to(ROOT)}:\n" + "\n".join(problems)

    def reportinfo(self):
        return self.path, 0, f"{self.path.relative_to(ROOT)}: its blocks in order"


class ShownCodePage(pytest.File):
    def collect(self):
        blocks = python_blocks(read(self.path))
        if blocks:
            yield ShownPage.from_parent(self, name="blocks in order", blocks=blocks)


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix == ".md" and DOCS in file_path.parents:
        return ShownCodePage.from_parent(parent, path=file_path)


class PageRuns:
    """The collected pages' programs, each run once by pagekit.run in the background."""

    def __init__(self, pages: list[ShownPage]):
        self.folder = Path(tempfile.mkdtemp(prefix="page-runs-"))
        self.files: dict[tuple, Path] = {}
        self.broken: dict[tuple, Exception] = {}
        for page in pages:
            key = self.key(page)
            if key in self.files or key in self.broken:
                continue
            folder = self.folder / f"{len(self.files) + len(self.broken)}-{page.path.parent.name}"
            folder.mkdir()
            try:
                self.files[key] = program_file(page.blocks, folder / f"{page.path.stem}.json")
            except Exception as exc:  # noqa: BLE001  (a broken include: that page's test reports it)
                self.broken[key] = exc
        self.run = FreshRun(list(self.files.values()), self.folder) if self.files else None

    @staticmethod
    def key(page: ShownPage) -> tuple:
        return tuple((b.source, b.must_fail, bool(b.mark("skip")), bool(b.mark("cuda"))) for b in page.blocks)

    def outcome(self, page: ShownPage) -> tuple[list[dict], str]:
        """The page's block results, and what its run wrote to stderr."""
        key = self.key(page)
        if key in self.broken:
            raise self.broken[key]
        path = self.files[key]
        status = self.run.results()[str(path)]
        results = path.with_name(path.stem + ".results.json")
        err = path.with_name(path.name + ".err").read_text(errors="replace")
        if not results.is_file():
            raise AssertionError(f"{page.path.name}: the run exited {status['returncode']}:\n{err[-3000:]}")
        return json.loads(results.read_text()), err[-3000:]

    def close(self):
        if self.run:
            self.run.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


PAGE_RUNS = pytest.StashKey[PageRuns]()
WAIT_S = 900  # FreshRun.results' own limit; pyproject's per-test `timeout` (300 s) is for a test's own work


# Under pytest-xdist (`make test`: -n 2) every worker collects every test. One worker runs all the tests
# that read the site or wait for work in the background (the build, the pages' runs, `early`): our
# scheduler sends them to it as one unit (each worker writes every test's unit to GROUPS, a folder the
# main process makes), and that worker starts the work when it runs the first of them; the other worker
# starts none and takes the other units one by one, as does the first when its unit is done.
GROUPS = "TPN_XDIST_GROUPS"
_STARTS = pytest.StashKey[list]()
_BACKGROUND = pytest.StashKey[set]()
_UNITS = pytest.StashKey[dict]()  # test id -> the unit xdist sends it in
_STARTERS = pytest.StashKey[list]()  # the workers that started background work (one, or none)


def _shares_a_module_fixture(item) -> bool:
    defs = getattr(item, "_fixtureinfo", None)
    return bool(defs) and any(d.scope == "module" for ds in defs.name2fixturedefs.values() for d in ds)


def in_background(config, start) -> None:
    """Call `start()` (which starts background work) now, or, in an xdist worker, before the worker's
    first test that reads the site or waits for the background."""
    if hasattr(config, "workerinput"):
        config.stash.setdefault(_STARTS, []).append(start)
    else:
        start()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.nodeid in item.config.stash.get(_BACKGROUND, ()) and item.config.stash.get(_STARTS, []):
        for start in item.config.stash[_STARTS]:
            start()
        item.config.stash[_STARTS] = []
        item.config.workeroutput["started_background"] = True  # sent to the main process at the end


@pytest.hookimpl(tryfirst=True)  # before xdist sends the worker's collection to the main process
def pytest_collection_finish(session):
    pages = [item for item in session.items if isinstance(item, ShownPage)]
    if pages:
        in_background(session.config, lambda: session.config.stash.__setitem__(PAGE_RUNS, PageRuns(pages)))
    if hasattr(session.config, "workerinput"):
        units = session.config.stash.get(_UNITS, {})
        worker = session.config.workerinput["workerid"]
        (Path(os.environ[GROUPS]) / f"{worker}.json").write_text(json.dumps(units))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    if node.workeroutput.get("started_background"):
        node.config.stash.setdefault(_STARTERS, []).append(node.gateway.id)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class BackgroundAsOne(LoadScopeScheduling):
        """The tests in the background group are one unit, sent first; the tests of a module that share a
        module-scoped fixture are one unit (the fixture is made once); every other test is a unit of its
        own (one unit per module balanced worse: 292 s against 272 s warm). Sent in the order collected."""

        def _split_scope(self, nodeid: str) -> str:
            if not hasattr(self, "units"):  # every worker collected the same tests (xdist checks)
                self.units = {}
                for written in Path(os.environ[GROUPS]).glob("*.json"):
                    self.units.update(json.loads(written.read_text()))
            return self.units.get(nodeid, nodeid)

    config.option.loadscopereorder = False  # the order collected: the background first, `multiprocess` last
    return BackgroundAsOne(config, log)


def pytest_sessionfinish(session):
    if PAGE_RUNS in session.config.stash:
        session.config.stash[PAGE_RUNS].close()
    if getattr(session.config.option, "numprocesses", None) and not hasattr(session.config, "workerinput"):
        shutil.rmtree(os.environ.pop(GROUPS), ignore_errors=True)


def pytest_configure(config):
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        os.environ[GROUPS] = tempfile.mkdtemp(prefix="tpn-xdist-")  # xdist's main process: its workers inherit it
        return  # it runs no test: no torch to import (2 s of a core while the workers collect)
    # This process runs on one core: the other is busy with the build, the pages' runs and the
    # browser meanwhile, and two torch threads on a shared core spin-wait on each other. Processes
    # the tests start (the pages' runs among them) keep torch's default, as a reader has it.
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    # Order: tests that need no build, then those that read the built site, then the pages, the
    # downloaded labs and the other tests that wait for work in the background (`early`), then the
    # tests that start several processes. The build (tests/conftest.py), the downloads after it,
    # the pages' runs and the `early` work start at the end of collection and go on in the
    # background, on the other core, while the first groups run; the last group needs both cores.
    reads_site = {"served_site", "built_site"}

    def group(item) -> int:
        waits = {"downloads", "early"} & set(getattr(item, "fixturenames", ()))  # for work in the background
        if isinstance(item, ShownPage) or waits:
            return 2
        if reads_site & set(getattr(item, "fixturenames", ())):
            return 1
        return 3 if item.get_closest_marker("multiprocess") else 0

    items.sort(key=group)
    for item in items:  # a test that waits for the background may wait as long as that work may take
        if group(item) == 2 and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(WAIT_S))
    config.stash[_BACKGROUND] = background = {item.nodeid for item in items if group(item) in (1, 2)}
    if hasattr(config, "workerinput"):  # xdist: the background unit first
        items.sort(key=lambda item: item.nodeid not in background)
        config.stash[_UNITS] = {item.nodeid: "background" if item.nodeid in background else
                                item.nodeid.split("::")[0] if _shares_a_module_fixture(item) else item.nodeid
                                for item in items}
    # CUDA tests: skipped with a visible reason where no GPU is present
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if getattr(terminalreporter.config.option, "numprocesses", None):
        starters = sorted(terminalreporter.config.stash.get(_STARTERS, []))
        terminalreporter.write_line(f"background work started by: {', '.join(starters) or 'no worker'}")
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
