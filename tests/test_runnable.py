""""Copy as a runnable program": each Python block of a chapter, with the earlier blocks it needs
(pagekit/runnable.py), runs alone in an empty folder and prints what the page shows under those
blocks; the button on the built page holds exactly that program, in the page's language."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from pagekit.comments import code_tokens
from pagekit.compare import mask, own_messages, program_differs
from pagekit.export import block_code
from pagekit.page import parse_page, python_blocks, read
from pagekit.project import CHAPTERS, LANGS
from pagekit.run import FreshRun, remembered
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
        self.expected: dict[str, list[tuple[int, str, list]]] = {}  # page -> (line, file, its blocks)
        self.own: dict[str, list[str]] = {}  # page -> the project's own error messages
        files: dict[str, Path] = {}
        for chapter in CHAPTERS:
            if pages is not None and chapter.page not in pages:
                continue
            blocks = python_blocks(read(chapter.path("en")))
            self.own[chapter.page] = own_messages("\n".join(block_code(b) for b in blocks))
            for (chosen, text), block in zip(programs(blocks), blocks):
                if block.mark("skip") or block.mark("cuda"):
                    continue
                if text not in files:
                    files[text] = folder / f"{len(files)}-{chapter.module}" / "program.py"
                    files[text].parent.mkdir()
                    files[text].write_text(text, encoding="utf-8")
                parts = [blocks[j] for j in chosen + [blocks.index(block)]]
                self.expected.setdefault(chapter.page, []).append((block.lineno, str(files[text]), parts))
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


@pytest.mark.parametrize("chapter", [c.page for c in CHAPTERS])
def test_each_runnable_program_runs_alone_and_prints_what_the_page_shows(chapter, runnable_runs):
    """Compared as the page's run is (`pagekit.compare.program_differs`): exactly on the pinned
    CPU versions; under another torch release torch's wording of an error, and the output of a
    block the page marks `varies`, may differ."""
    problems = []
    for line, file, parts in runnable_runs.expected[chapter]:
        status = runnable_runs.status[file]["returncode"]
        printed = Path(f"{file}.out").read_text(encoding="utf-8", errors="replace")
        if status != 0:
            problems.append(f"line {line}: exited {status}:\n{Path(f'{file}.err').read_text()[-1500:]}")
        elif program_differs(parts, printed, own=runnable_runs.own[chapter]):
            shown = "".join(b.expected or "" for b in parts)
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
    done = remembered([sys.executable, "p.py"], cwd=tmp_path, depends=[tmp_path / "p.py"],
                      keep=lambda done: done.returncode == 1)
    assert done.returncode == 1 and "NameError: name '_check_2d' is not defined" in done.stderr


# --- what a runnable copy may print elsewhere ----------------------------------------------------
def shown_page(*blocks: tuple[str, str, str]) -> list:
    """Blocks as (marker comment, code, the output the page shows)."""
    text = "\n\n".join(f"{mark}\n```python\n{code}\n```\n\n<!--pytest-codeblocks:expected-output-->\n"
                       f"```text\n{out}\n```" for mark, code, out in blocks)
    return python_blocks(parse_page(text))


POLICY_PAGE = shown_page(
    ("", "print(1)", "x = 1"),
    ('<!--pytest.mark.varies(reason="other kernels", holds="True")-->', "print(2)", "loss 0.681\nacc 0.95"),
    ("<!--pytest.mark.xfail(raises=TypeError, strict=True)-->", "print(3)",
     "before\nTypeError: transpose() received an invalid combination of arguments"),
    ("<!--pytest.mark.xfail(raises=ValueError, strict=True)-->", "print(4)", "ValueError: x must be positive"),
)
SHOWN = "x = 1\nloss 0.681\nacc 0.95\nbefore\nTypeError: transpose() received an invalid combination of arguments\n" \
        "ValueError: x must be positive\n"


@pytest.mark.parametrize("printed, exact, different", [
    (SHOWN, True, False),
    (SHOWN.replace("x = 1\n", "x = 1\n\n"), True, False),  # blank lines aside
    (SHOWN.replace("0.681", "0.769"), True, True),  # exact on the pin, varies or not
    (SHOWN.replace("0.681", "0.769"), False, False),  # a varies block's lines are free elsewhere
    (SHOWN.replace("acc 0.95\n", "acc 0.96\nepoch 2\n"), False, False),  # ... their number too
    (SHOWN.replace("x = 1", "x = 2"), False, True),  # any other block prints what the page shows
    (SHOWN.replace("x = 1\n", ""), False, True),
    (SHOWN + "extra\n", False, True),
    (SHOWN.replace("received an invalid combination of arguments", "takes 2 positional arguments"), False, False),
    (SHOWN.replace("received an invalid combination of arguments", "takes 2 positional arguments"), True, True),
    (SHOWN.replace("TypeError: transpose()", "RuntimeError: transpose()"), False, True),  # the type holds
    (SHOWN.replace("before", "after"), False, True),  # and what the must-fail block printed before it
    (SHOWN.replace("x must be positive", "x must be > 0"), False, True),  # the project's own message
])
def test_a_runnable_copy_is_held_to_the_pages_policy(printed, exact, different):
    own = ["x must be positive"]
    assert program_differs(POLICY_PAGE, printed, exact=exact, own=own) is different


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
