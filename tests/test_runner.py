"""The page runner (pagekit.run) and the output fences (pagekit.compare)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pagekit import compare
from pagekit.page import Mark, MarkerError, parse_mark, parse_page
from pagekit.project import ROOT
from pagekit.run import run_program


def page(*blocks: tuple[str, str | None, str | None]) -> str:
    """A page from (code, marker, expected output) triples; code is typed (the runner expands it)."""
    parts = []
    for code, marker, expected in blocks:
        parts += [f"<!--{marker}-->"] if marker else []
        parts += ["```python", code, "```", ""]
        if expected is not None:
            parts += ["<!--pytest-codeblocks:expected-output-->", "```text", expected, "```", ""]
    return "\n".join(parts)


def run(text: str, tmp_path):
    return list(run_program(parse_page(text), tmp_path, cuda=False))


@pytest.mark.parametrize("text, mark", [
    ('pytest.mark.skip(reason="tests/test_x.py runs it")', Mark("skip", reason="tests/test_x.py runs it")),
    ("pytest.mark.xfail(raises=ValueError, strict=True)", Mark("xfail", raises="ValueError")),
    ("pytest.mark.xfail(raises=pickle.UnpicklingError, strict=True)", Mark("xfail", raises="pickle.UnpicklingError")),
    ("pytest.mark.multiprocess", Mark("multiprocess")),
    ('pytest.mark.varies(reason="bfloat16 kernels", cpu=True)', Mark("varies", reason="bfloat16 kernels", cpu=True)),
])
def test_markers_are_read_without_running_them(text, mark):
    assert parse_mark(text) == mark


@pytest.mark.parametrize("text, message", [
    ("pytest.mark.skip", "a skip needs reason="),
    ("pytest.mark.xfail(raises=ValueError)", "strict=True"),
    ('pytest.mark.xfail(raises=__import__("os").X, strict=True)', "must name an exception class"),
    ("pytest.mark.parametrize", "unknown mark 'parametrize'"),
    ("pytest.mark.skip(reason=", "bad marker"),
    ('pytest.mark.varies(reason="x", cpu=False)', "cpu= is True or left out"),
])
def test_a_bad_marker_is_reported_with_its_page_and_line(text, message):
    with pytest.raises(MarkerError, match=message) as err:
        parse_page(f"# title\n\n<!--{text}-->\n```python\nx = 1\n```\n", "docs/en/x.md")
    assert str(err.value).startswith("docs/en/x.md:3: ")


def test_blocks_share_one_namespace_and_run_in_an_empty_folder(tmp_path):
    results = run(page(("x = 2", None, None), ("import os\nprint(x * 21, os.listdir('.'))", None, "42 []")),
                  tmp_path)
    assert [r.output for r in results] == ["", "42 []\n"]
    assert all(compare.problem(r) is None for r in results)


def test_a_block_that_must_fail_shows_its_error_and_the_page_goes_on(tmp_path):
    text = page(("print('before')\nint('x')", "pytest.mark.xfail(raises=ValueError, strict=True)",
                 "before\nValueError: invalid literal for int() with base 10: 'x'"),
                ("print('after')", None, "after"))
    results = run(text, tmp_path)
    assert [r.failed_as_it_must for r in results] == [True, False]
    assert all(compare.problem(r) is None for r in results)


def test_a_block_that_must_fail_but_does_not_is_reported(tmp_path):
    results = run(page(("x = 1", "pytest.mark.xfail(raises=ValueError, strict=True)", None)), tmp_path)
    assert "must fail with ValueError but ran without error" in compare.problem(results[0])


def test_an_unexpected_error_stops_the_page(tmp_path):
    results = run(page(("1 / 0", None, None), ("print('never')", None, None)), tmp_path)
    assert len(results) == 1 and isinstance(results[0].error, ZeroDivisionError)


def test_skipped_and_gpu_blocks_are_left_out_with_their_reason(tmp_path):
    text = page(("x = 1", 'pytest.mark.skip(reason="tests/test_x.py::test_y runs it")', None),
                ("y = 1", "pytest.mark.cuda", None), ("print('rest')", None, "rest"))
    results = run(text, tmp_path)
    assert [r.skipped for r in results] == ["tests/test_x.py::test_y runs it",
                                            "needs a CUDA GPU (torch.cuda.is_available() is False)", None]


@pytest.mark.parametrize("printed, shown, problem", [
    ("loss 0.1234\n", "loss 0.1234", None),
    ("loss 0.1234\n", "loss 0.1235", "output differs"),
    ("loss 0.1234\n", "loss ...", "output differs"),        # `...` may not hide a number
    ("took 3.2 s\n", "took ...", None),                      # a duration may
    ("took 3.2 s\n", "took 3.2 s", "output differs"),        # and must: it differs between runs
    ("42\n", None, "prints output but the page shows none"),
])
def test_outputs_compare_exactly_with_only_volatile_parts_masked(tmp_path, printed, shown, problem):
    results = run(page((f"print({printed.strip()!r})", None, shown)), tmp_path)
    found = compare.problem(results[0])
    assert (found is None) if problem is None else (problem in found)


def test_elsewhere_nothing_is_loosened_but_torchs_wording_of_an_error():
    # numbers and lines about the machine are compared exactly everywhere (a `varies` mark frees them)
    assert compare.differs("val acc 0.9667", "val acc 0.9611\n", exact=False)
    assert compare.differs("device: cpu", "device: cuda:0 (NVIDIA H200)\n", exact=False)
    # a must-fail block: the error's type and what was printed before it must match
    shown = "before\nTypeError: transpose() takes 2 positional arguments but 3 were given"
    torch_2_11 = "before\nTypeError: transpose() received an invalid combination of arguments\n * (int dim0, int dim1)\n"
    assert not compare.differs(shown, torch_2_11, exact=False, error="TypeError", own=[])
    assert compare.differs(shown, torch_2_11, exact=True, error="TypeError", own=[])
    assert compare.differs(shown, torch_2_11.replace("TypeError", "ValueError"), exact=False, error="TypeError", own=[])
    assert compare.differs(shown, torch_2_11.replace("before", "after"), exact=False, error="TypeError", own=[])
    # the project's own message is compared word for word
    own = compare.own_messages('def f(p):\n    raise ValueError(f"no checkpoint file at {p!r}; check the path")\n')
    assert own == ["no checkpoint file at"]
    mine = "ValueError: no checkpoint file at 'a.pt'; check the path"
    assert compare.differs(mine, mine.replace("check", "fix") + "\n", exact=False, error="ValueError", own=own)


def test_a_block_marked_varies_is_free_elsewhere_but_what_must_hold_holds(tmp_path):
    marker = 'pytest.mark.varies(reason="GPU kernels round differently", holds="acc >= 0.95")'
    text = page(("acc = 0.97\nprint(acc)", marker, "0.96"))
    (result,) = run(text, tmp_path)
    assert result.holds is True
    assert compare.problem(result, exact=False) is None
    assert "output differs" in compare.problem(result, exact=True)  # the pinned CPU run: exact
    (result,) = run(text.replace("acc = 0.97", "acc = 0.90"), tmp_path)
    assert "what must hold on every machine does not: acc >= 0.95" in compare.problem(result, exact=False)


def test_a_block_whose_numbers_depend_on_the_cpu_is_compared_without_them_even_on_the_pin(tmp_path):
    """bfloat16 training on a CPU with AMX prints other digits than on one without, or with another
    number of threads: `varies(cpu=True)` frees the numbers on the pin too, never the words or lines."""
    marker = 'pytest.mark.varies(reason="bfloat16 kernels", cpu=True, holds="acc >= 0.95")'
    text = page(("acc = 0.97\nprint(f'val acc {acc:.3f} after 8 epochs')", marker, "val acc 0.964 after 8 epochs"))
    (result,) = run(text, tmp_path)
    assert compare.problem(result, exact=True) is None and compare.problem(result, exact=False) is None
    assert compare._same_but_numbers(result)  # `make outputs` keeps the page's digits: no churn between CPUs
    for printed in ("val loss {acc:.3f} after 8 epochs", "val acc {acc:.3f} after 8 epochs\\nmore",
                    "val acc -{acc:.3f} after 8 epochs"):
        (result,) = run(text.replace("val acc {acc:.3f} after 8 epochs", printed), tmp_path)
        assert "differs from the page in more than its numbers" in compare.problem(result, exact=True)
        assert not compare._same_but_numbers(result)
    (result,) = run(text.replace("acc = 0.97", "acc = 0.90"), tmp_path)
    assert "what must hold on every machine does not" in compare.problem(result, exact=True)
    # a runnable copy: the block's numbers free, the plain block before it exact
    blocks = parse_page(page(("print(8)", None, "8"), ("print('val acc 0.964')", marker, "val acc 0.964")))
    assert not compare.program_differs(blocks, "8\nval acc 0.936\n", exact=True)
    assert not compare.program_differs(blocks, "8\nval acc 0.936\n", exact=False)
    for printed in ("9\nval acc 0.936\n", "8\nval loss 0.936\n", "8\nval acc 0.936\nmore\n"):
        assert compare.program_differs(blocks, printed, exact=True)
        assert compare.program_differs(blocks, printed, exact=False)


def test_warnings_are_kept_apart_from_what_a_block_prints(tmp_path):
    (result,) = run(page(("import warnings\nwarnings.warn('careful')\nprint('done')", None, "done")), tmp_path)
    assert result.output == "done\n" and result.warnings == ["UserWarning: careful"]
    assert compare.problem(result, exact=True) is None


def test_make_outputs_adds_updates_and_removes_fences():
    text = page(("a", None, "old"), ("b", None, None), ("c", None, "gone"), ("d", None, None))
    new = compare.rewrite(text, ["new\n", "added\n", "", None])
    blocks = parse_page(new)
    assert [b.expected for b in blocks] == ["new\n", "added\n", None, None]
    assert compare.rewrite(new, ["new\n", "added\n", "", None]) == new


def test_make_outputs_keeps_an_indented_blocks_fence_inside_its_admonition():
    """An exercise's solution sits in a collapsed `??? success` block, indented by four spaces:
    its output fence is written at the same indentation, so it stays inside the block."""
    text = ('??? success "Solution"\n\n    ```python\n    print(1)\n    ```\n\nAfter.\n')
    new = compare.rewrite(text, ["1\n  indented\n\nlast\n"])
    assert "\n    <!--pytest-codeblocks:expected-output-->\n    ```text\n    1\n      indented\n\n    last\n    ```\n" in new
    (block,) = parse_page(new)
    assert block.expected == "1\n  indented\n\nlast\n"
    assert compare.rewrite(new, ["1\n  indented\n\nlast\n"]) == new
    assert compare.rewrite(new, ["2\n"]).count("    2\n") == 1
    assert parse_page(compare.rewrite(new, [""]))[0].expected is None


# --- remembered runs ---------------------------------------------------------------------------
def test_a_run_is_remembered_by_what_it_depends_on_and_a_failure_is_not(tmp_path, monkeypatch):
    from pagekit import run

    monkeypatch.setattr(run, "RUN_CACHE", tmp_path / "cache")
    monkeypatch.delenv("TPN_RUN_CACHE", raising=False)

    def fresh(name: str, code: str) -> tuple[run.FreshRun, Path]:
        folder = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}"
        (folder / "f").mkdir(parents=True)
        path = folder / "f" / "x.py"
        path.write_text(code, encoding="utf-8")
        return run.FreshRun([path], folder), path

    first, path = fresh("a", "print('hello')")
    assert first.results()[str(path)]["returncode"] == 0 and first.process is not None
    again, path = fresh("b", "print('hello')")  # the same file elsewhere: not run again
    assert again.process is None and again.results()[str(path)]["returncode"] == 0
    assert Path(f"{path}.out").read_text() == "hello\n"
    changed, path = fresh("c", "print('hello!')")
    assert changed.process is not None and changed.results()[str(path)]["returncode"] == 0
    for name in ("d", "e"):  # a failure runs every time
        failing, path = fresh(name, "raise SystemExit(3)")
        assert failing.process is not None and failing.results()[str(path)]["returncode"] == 3
    monkeypatch.setenv("TPN_RUN_CACHE", "0")
    forced, _ = fresh("f", "print('hello')")
    assert forced.process is not None and forced.results()


def test_a_notebook_is_remembered_by_its_code_with_what_it_left_in_its_folder(tmp_path, monkeypatch):
    """A downloaded lab links to the site that served it (a new port in each test session): its text does not
    run, so only its code cells key its run; read back, its folder holds what the run wrote there."""
    import nbformat

    from pagekit import run

    monkeypatch.setattr(run, "RUN_CACHE", tmp_path / "cache")
    monkeypatch.delenv("TPN_RUN_CACHE", raising=False)

    def notebook(text: str, code: str) -> Path:
        path = tmp_path / str(len(list(tmp_path.iterdir()))) / "lab" / "lab.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text),
                                                       nbformat.v4.new_code_cell(code)]), path)
        return path

    write = "import pathlib\npathlib.Path('out/a.txt').parent.mkdir()\npathlib.Path('out/a.txt').write_text('made')"
    first = notebook("[site](http://127.0.0.1:1/)", write)
    assert run.FreshRun([first], first.parent.parent).results()[str(first)]["returncode"] == 0
    path = notebook("[site](http://127.0.0.1:2/)", write)
    again = run.FreshRun([path], path.parent.parent)
    assert again.process is None and again.results()[str(path)]["returncode"] == 0
    assert (path.parent / "out" / "a.txt").read_text() == "made"
    assert sorted(p.name for p in path.parent.iterdir()) == ["lab.ipynb", "lab.ipynb.err", "lab.ipynb.out", "out"]
    assert run.run_key(notebook("[site](http://127.0.0.1:2/)", write + "\nprint(1)"), False) != run.run_key(path, False)


def test_a_run_is_remembered_per_cpu_whose_vector_kernels_print_other_digits(tmp_path, monkeypatch):
    """A page's run read back on another CPU would show that CPU the digits of the one that ran it (the
    training chapter's fit prints others with AVX2 than with AVX-512): the CPU is part of every run's key."""
    from pagekit import run

    script = tmp_path / "page.py"
    script.write_text("print(1)\n")
    here = run.run_key(script, False)
    assert "flags" in run.cpu() or not Path("/proc/cpuinfo").exists()
    run.environment.cache_clear()
    monkeypatch.setattr(run, "cpu", lambda: "another CPU")
    try:
        assert run.run_key(script, False) != here
    finally:
        run.environment.cache_clear()


def test_a_command_is_remembered_with_its_files_by_what_it_depends_on(tmp_path, monkeypatch):
    from pagekit import run

    monkeypatch.setattr(run, "RUN_CACHE", tmp_path / "cache")
    monkeypatch.delenv("TPN_RUN_CACHE", raising=False)
    runs, data = tmp_path / "runs.log", tmp_path / "data.txt"
    data.write_text("1")
    code = (f"import pathlib, sys\nopen({str(runs)!r}, 'a').write('x')\npathlib.Path('left.txt').write_text('kept')\n"
            f"print(pathlib.Path({str(data)!r}).read_text()); sys.exit(int(sys.argv[1]))")

    def remembered(exit_code: int = 0, depends=(data,), **kwargs) -> tuple[subprocess.CompletedProcess, Path]:
        cwd = tmp_path / f"cwd-{len(list(tmp_path.iterdir()))}"
        cwd.mkdir()
        return run.remembered([sys.executable, "-c", code, str(exit_code)], cwd=cwd, files=["."], depends=depends,
                              **kwargs), cwd

    first, _ = remembered()
    again, cwd = remembered()  # read back, with the file it left in its folder
    assert (first.returncode, first.stdout, again.returncode, again.stdout) == (0, "1\n", 0, "1\n")
    assert (cwd / "left.txt").read_text() == "kept" and runs.read_text() == "x"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "data.txt").write_text("1")  # the same file in another folder: read back
    assert remembered(depends=[tmp_path / "elsewhere" / "data.txt"])[0].stdout == "1\n" and runs.read_text() == "x"
    data.write_text("2")  # a file it depends on changed
    assert remembered()[0].stdout == "2\n" and runs.read_text() == "xx"
    remembered(env={**os.environ, "SOME_SETTING": "1"})  # another environment
    assert runs.read_text() == "xxx"
    for _ in range(2):  # refused by keep (by default: exited 0): runs every time
        assert remembered(3)[0].returncode == 3
    assert runs.read_text() == "xxxxx"
    assert remembered(3, keep=lambda done: done.returncode == 3)[0].returncode == 3 and remembered(3)[0].returncode == 3
    assert runs.read_text() == "xxxxxx"
    monkeypatch.setenv("TPN_RUN_CACHE", "0")
    remembered()
    assert runs.read_text() == "xxxxxxx"


def test_a_remembered_command_past_its_timeout_is_killed_with_what_it_started(tmp_path):
    import time

    from pagekit import run

    pids = tmp_path / "pids"
    code = ("import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\ntime.sleep(60)")
    with pytest.raises(subprocess.TimeoutExpired):
        run.remembered([sys.executable, "-c", code], timeout=3)

    def alive(pid: int) -> bool:
        status = Path(f"/proc/{pid}/status")
        return status.is_file() and "\nState:\tZ" not in status.read_text()
    deadline = time.monotonic() + 5
    while any(map(alive, map(int, pids.read_text().split()))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(alive, map(int, pids.read_text().split())))


@pytest.mark.parametrize("caller", [0, 5])
def test_a_runs_programs_are_niced_to_five_whatever_the_callers_niceness(tmp_path, caller):
    """Work started in the background by a process already niced (the device check's test) is not
    niced twice: at 10 its programs were starved on a loaded machine. A remembered command takes the
    same niceness from `nice_prefix`."""
    (tmp_path / "f").mkdir()
    program = tmp_path / "f" / "x.py"
    program.write_text("import os\nprint(os.nice(0))\n")
    starter = (f"import os, pathlib\nprint(os.nice({caller}))\nfrom pagekit import run\n"
               f"p = pathlib.Path({str(program)!r})\nassert run.FreshRun([p], p.parent.parent).results()[str(p)]['returncode'] == 0\n"
               "import subprocess, sys\nsubprocess.run(run.nice_prefix() + [sys.executable, str(p)])")
    done = subprocess.run([sys.executable, "-c", starter], check=True, cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "TPN_RUN_CACHE": "0"})
    caller_level, prefixed = done.stdout.split()
    assert Path(f"{program}.out").read_text() == f"{max(5, int(caller_level))}\n"
    assert int(prefixed) == max(5, int(caller_level))


def test_background_work_starts_only_for_the_pages_the_selected_tests_take():
    """`pytest -k layers` starts the runnable copies of the layers chapter, not of all ten."""
    import types

    import conftest as tests_conftest  # tests/conftest.py (pytest puts tests/ on the path)

    started = {}
    def start(folder, pages):
        started["pages"] = pages
        return types.SimpleNamespace(close=lambda: None)

    module = types.SimpleNamespace(EARLY={"work": start})

    def item(**params):
        return types.SimpleNamespace(module=module, fixturenames=["work"],
                                     callspec=types.SimpleNamespace(params=params))

    for items, pages in (([item(chapter="layers.md"), item(chapter="init.md")], {"layers.md", "init.md"}),
                         ([item(chapter="layers.md"), item()], None)):
        started.clear()
        session = types.SimpleNamespace(items=items, config=types.SimpleNamespace(stash={}))
        tests_conftest.pytest_collection_finish(session)
        session.config.stash[tests_conftest.EARLY].close()
        assert started["pages"] == pages


def test_a_run_whose_parent_dies_stops_its_programs(tmp_path):
    """A killed pytest leaves no page runs behind, still using the CPU."""
    import signal
    import time

    program = tmp_path / "slow.py"
    program.write_text("import time\nfor _ in range(600):\n    time.sleep(0.1)\n")
    # a shell starts the run in the background and exits at once, as a killed parent would
    shell = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m pagekit.run {tmp_path / 'out.json'} --parallel 1 {program} & "
                       "sleep 3; echo $!"], capture_output=True, text=True, check=True)
    runner = int(shell.stdout.split()[-1])
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.kill(runner, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(runner, signal.SIGKILL)
        pytest.fail("pagekit.run kept running after its parent exited")
    assert not (tmp_path / "out.json").exists()


def test_a_test_that_waits_for_the_background_may_wait_as_long_as_that_work(request, early):
    """Tests that wait for the background (`early`, the pages' runs, the downloads) take the runs'
    own limit, not pyproject's 300 s per test: under load, three runs beside a build timed out there."""
    from pagekit.pytest_plugin import WAIT_S

    assert request.node.get_closest_marker("timeout").args == (WAIT_S,)


@pytest.mark.multiprocess
def test_under_two_workers_one_starts_the_background_and_runs_every_test_that_waits_for_it():
    """`make test` runs pytest with two workers (pytest-xdist): the pages' items wait for their runs in the
    background, so they go to one worker as one unit, and that worker alone starts the runs."""
    from pagekit.run import remembered

    pages = [f"docs/{lang}/{slug}.md" for slug in ("containers", "init", "losses") for lang in ("en", "zh")]
    sources = [*pages, "tests/test_losses.py", "tests/conftest.py", "conftest.py", "pyproject.toml", "pagekit", "snippets"]
    done = remembered([sys.executable, "-m", "pytest", "-n", "2", "-v", *pages, "tests/test_losses.py"],
                      cwd=ROOT, depends=[ROOT / source for source in sources], timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    ran = re.findall(r"^\[(gw\d)\] \[ *\d+%\] PASSED (.+?)\s*$", done.stdout, re.M)
    assert {test.split("::")[0] for _, test in ran} == {*pages, "tests/test_losses.py"}
    page_workers = {worker for worker, test in ran if test.split("::")[0] in pages}
    assert len(page_workers) == 1
    assert re.search(r"^background work started by: (.*)$", done.stdout, re.M).group(1) == page_workers.pop()
