""""Copy as a runnable program": each Python block of a chapter, with the earlier blocks it needs
(pagekit/runnable.py), runs alone in an empty folder and prints what the page shows under those
blocks; the button on the built page holds exactly that program, in the page's language."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pagekit.comments import code_tokens
from pagekit.compare import mask
from pagekit.page import parse_page, python_blocks, read
from pagekit.project import CHAPTERS, LANGS
from pagekit.run import FreshRun
from pagekit.runnable import needs, programs

ROOT = Path(__file__).resolve().parents[1]


def page(*blocks: str, marks: dict[int, str] | None = None) -> list:
    marks = marks or {}
    text = "\n\n".join(f"{marks.get(i, '')}\n```python\n{code}\n```" for i, code in enumerate(blocks))
    return python_blocks(parse_page(text))


# --- what a block needs ---------------------------------------------------------------------------
def test_a_function_needs_what_its_body_calls_even_when_defined_after_it():
    blocks = page("import torch", "def f(x):\n    return g(x)", "def g(x):\n    return x + 1",
                  "def h():\n    pass", "print(f(torch.ones(1)))")
    assert needs(blocks)[4] == [0, 1, 2]


def test_work_on_an_object_is_needed_printing_and_module_calls_are_not():
    blocks = page("import torch\nfrom torch import nn", "model = nn.Linear(2, 1)", "torch.manual_seed(0)",
                  "print(model)", "model.weight.data.zero_()", "print(model(torch.ones(2)))")
    assert needs(blocks)[5] == [0, 1, 4]


def test_the_nearest_binding_is_the_one_used():
    blocks = page("x = 1", "x.bit_length()", "x = 2", "print(x)")
    assert needs(blocks)[3] == [2]


def test_files_are_needed_by_name_pattern_and_through_a_function_or_a_script():
    blocks = page("import torch", 'torch.save(1, "a.pt")', 'for n in ["b"]:\n    torch.save(2, f"w_{n}.pt")',
                  'def write():\n    torch.save(3, "c.pt")', "write()",
                  'print(torch.load("a.pt"), torch.load("w_b.pt"))',
                  'import subprocess, sys\nsubprocess.run([sys.executable, "-c", "open(\'c.pt\')"])')
    found = needs(blocks)
    assert found[5] == [0, 1, 2] and found[6] == [0, 3, 4]  # write() needs torch when it runs


def test_blocks_outside_the_program_are_never_needed():
    marks = {1: '<!--pytest.mark.skip(reason="needs a GPU file")-->', 2: "<!--pytest.mark.cuda-->",
             3: "<!--pytest.mark.xfail(raises=NameError, strict=True)-->"}
    blocks = page("x = 0", "x = 1", "x = 2", "x = 3 + y", "print(x)", marks=marks)
    assert needs(blocks)[4] == [0]


def test_a_program_that_starts_workers_is_laid_out_for_spawn():
    marks = {1: "<!--pytest.mark.multiprocess-->"}
    blocks = page("data = [1, 2]", "import multiprocessing\nprint(multiprocessing.Pool(1).map(abs, data))",
                  marks=marks)
    assert programs(blocks)[1][1].endswith('if __name__ == "__main__":\n'
                                           "    print(multiprocessing.Pool(1).map(abs, data))\n")


# --- every chapter's programs, run alone ---------------------------------------------------------
class RunnableRuns:
    """Every distinct runnable program of every chapter (English; the Chinese differ in comments
    only, test below), each alone in an empty folder, in a fresh interpreter, in the background
    from the end of collection (EARLY, tests/conftest.py)."""

    def __init__(self, folder: Path, pages: set[str] | None = None):
        self.expected: dict[str, list[tuple[int, str, str]]] = {}  # page -> (line, file, output)
        files: dict[str, Path] = {}
        for chapter in CHAPTERS:
            if pages is not None and chapter.page not in pages:
                continue
            blocks = python_blocks(read(chapter.path("en")))
            for (chosen, text), block in zip(programs(blocks), blocks):
                if block.mark("skip") or block.mark("cuda"):
                    continue
                if text not in files:
                    files[text] = folder / f"{len(files)}-{chapter.module}" / "program.py"
                    files[text].parent.mkdir()
                    files[text].write_text(text, encoding="utf-8")
                shown = "".join(blocks[j].expected or "" for j in chosen + [blocks.index(block)])
                self.expected.setdefault(chapter.page, []).append((block.lineno, str(files[text]), shown))
        self.run = FreshRun(list(files.values()), folder, parallel=1)

    def result(self) -> RunnableRuns:
        self.status = self.run.results()
        return self

    def close(self):
        self.run.stop()


EARLY = {"runnable_runs": RunnableRuns}


@pytest.fixture(scope="session")
def runnable_runs(early) -> RunnableRuns:
    return early.result("runnable_runs", RunnableRuns)


def _lines(text: str) -> list[str]:
    return [line for line in mask(text).split("\n") if line.strip()]


@pytest.mark.parametrize("chapter", [c.page for c in CHAPTERS])
def test_each_runnable_program_runs_alone_and_prints_what_the_page_shows(chapter, runnable_runs):
    problems = []
    for line, file, shown in runnable_runs.expected[chapter]:
        status = runnable_runs.status[file]["returncode"]
        printed = Path(f"{file}.out").read_text(encoding="utf-8", errors="replace")
        if status != 0:
            problems.append(f"line {line}: exited {status}:\n{Path(f'{file}.err').read_text()[-1500:]}")
        elif _lines(printed) != _lines(shown):
            problems.append(f"line {line}: printed\n{mask(printed)}\nthe page shows\n{shown}")
    assert not problems, f"{chapter}:\n" + "\n".join(problems)


def test_without_a_block_it_needs_the_program_fails(tmp_path):
    """The mutant: the layers page's first demo without the block that defines the check its
    function calls (defined after it on the page)."""
    blocks = python_blocks(read(ROOT / "docs" / "en" / "layers.md"))
    index = next(i for i, b in enumerate(blocks) if "demo_corr2d" in b.source)
    chosen, text = programs(blocks)[index]
    check = next(j for j in chosen if "check_2d" in blocks[j].source)
    without = [j for j in chosen if j != check]
    from pagekit.runnable import program

    (tmp_path / "p.py").write_text(program(blocks, index, without), encoding="utf-8")
    done = subprocess.run([sys.executable, "p.py"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and "NameError: name '_check_2d' is not defined" in done.stderr


# --- the buttons on the built pages --------------------------------------------------------------
BUTTON = re.compile(r'<div class="language-python highlight"><pre>(?:<button class="md-code__button tpn-runnable" '
                    r'title="([^"]*)" aria-label="[^"]*" data-runnable="(\d+)" data-blocks="(\d+)"></button>)?')


@pytest.mark.parametrize("chapter", [c.page for c in CHAPTERS])
def test_each_block_on_the_built_page_copies_its_program_in_the_pages_language(chapter, built_site):
    """The buttons name how many blocks they add; runnable.json beside the page, which they copy
    from (tests/test_browser.py clicks one), holds each program in the page's language."""
    copied = {}
    for lang in LANGS:
        folder = built_site / ("" if lang == "zh" else lang) / Path(chapter).stem
        found = BUTTON.findall((folder / "index.html").read_text(encoding="utf-8"))
        texts = json.loads((folder / "runnable.json").read_text(encoding="utf-8"))
        blocks = python_blocks(read(ROOT / "docs" / lang / chapter))
        assert len(found) == len(blocks)
        expected = programs(blocks, lang)
        for (title, index, count), block, (chosen, program) in zip(found, blocks, expected):
            if block.mark("skip") or block.mark("cuda"):
                assert not index, f"{lang} line {block.lineno}: a block outside the program has no runnable copy"
                continue
            assert texts[int(index)] == program and int(count) == len(chosen)
            assert (str(len(chosen)) in title) == (len(chosen) > 1 or lang == "zh" and len(chosen) == 1), title
        copied[lang] = texts
    assert [code_tokens(t) for t in copied["zh"]] == [code_tokens(t) for t in copied["en"]]
    assert copied["zh"] != copied["en"] or chapter == "autograd.md"  # the zh copies carry zh comments
