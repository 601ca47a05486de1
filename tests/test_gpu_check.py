"""`make gpu-check` (tools/gpu_check.py, tools/gpu_results.py) and the home page's "verified" table
(pagekit/reports.py), tested on the CPU: the GPU run itself happens on a CUDA machine."""
import json
import os
import re
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pagekit import reports
from pagekit.project import LANGS
from pagekit.pytest_plugin import WAIT_S
from pagekit.run import nice_prefix, remembered
from tools import gpu_check, gpu_results

ROOT = Path(__file__).resolve().parents[1]
NO_GPU_REASON = "needs a CUDA GPU (torch.cuda.is_available() is False)"

FACTS = {"python": "3.12.3", "torch": "2.11.0+cu130", "cuda": "13.0", "cudnn": "9.10.2", "driver": "580.159.04",
         "torchvision": "0.26.0", "gpus": [{"name": "NVIDIA H200", "capability": "9.0", "memory_gib": 139.8}]}
RESULTS = {"exitstatus": 1, "tests": [
    {"id": "tests/test_saving.py::test_gpu_checkpoint", "outcome": "passed", "duration": 0.5, "message": ""},
    {"id": "tests/test_multi_gpu.py::test_ddp_nccl", "outcome": "failed", "duration": 2.0,
     "message": "AssertionError: a | b"},
    {"id": "docs/zh/saving.md::line 40", "outcome": "passed", "duration": 0.1, "message": ""},
    {"id": "docs/zh/saving.md::line 88", "outcome": "xfailed", "duration": 0.1, "message": ""},
    {"id": "docs/en/multi-gpu.md::line 12", "outcome": "skipped", "duration": 0.0, "message": "needs 2 GPUs"},
]}


@pytest.fixture
def sample_report(monkeypatch):
    monkeypatch.setattr(gpu_check, "git_commit", lambda: "abc1234")
    return gpu_check.build_report(FACTS, RESULTS, "python3 -m tools.gpu_check --wheels .whl", ["mkdocs 1.6.1"])


def test_report_says_what_ran_where_and_each_outcome(sample_report):
    assert sample_report["counts"] == {"failed": 1, "error": 0, "skipped": 1, "xfailed": 1, "passed": 2}
    assert sample_report["selection"].startswith("2 tests marked `cuda` (tests/) and 3 code blocks")
    md = reports.render_report_md(sample_report)
    for fact in ("1 × NVIDIA H200 (compute capability 9.0, 139.8 GiB)", "580.159.04",
                 "2.11.0+cu130 (CUDA 13.0, cuDNN 9.10.2)", "| Python | 3.12.3 |", "mkdocs 1.6.1", "abc1234",
                 "2 passed, 1 xfailed, 1 skipped, 0 error, 1 failed"):
        assert fact in md
    rows = [line for line in md.splitlines() if line.startswith("| `")]
    assert len(rows) == 5
    assert rows[0] == "| `tests/test_multi_gpu.py::test_ddp_nccl` | failed | 2.00 | AssertionError: a \\| b |"
    assert "needs 2 GPUs" in rows[1]
    two = dict(sample_report, gpus=sample_report["gpus"] * 2)
    assert "| GPU | 2 × NVIDIA H200 (compute capability 9.0, 139.8 GiB) |" in reports.render_report_md(two)
    assert "| GPU · 2 × NVIDIA H200 |" in reports.render_fragment(two, {"torch": "1", "torchvision": "1"}, "en")


def test_fragment_shows_the_gpu_result_and_the_pinned_cpu_versions(sample_report):
    pinned = {"torch": "2.14.1", "torchvision": "0.29.1"}
    for lang, counts in (("zh", "3 通过 · 1 失败 · 1 跳过"), ("en", "3 passed · 1 failed · 1 skipped")):
        text = reports.render_fragment(sample_report, pinned, lang)
        assert "| CPU · CI | torch 2.14.1 · torchvision 0.29.1 | `make test` |" in text
        assert "| GPU · 1 × NVIDIA H200 | torch 2.11.0+cu130 · CUDA 13.0 |" in text
        assert f"{counts} · {sample_report['date']}" in text


def test_fragment_before_any_gpu_run_says_so():
    pinned = {"torch": "9.9.9", "torchvision": "8.8.8"}
    zh, en = (reports.render_fragment(reports.NOT_RUN, pinned, lang) for lang in LANGS)
    assert "torch 9.9.9 · torchvision 8.8.8" in zh and "torch 9.9.9 · torchvision 8.8.8" in en
    assert "| GPU | — | 尚未在 GPU 上运行（`make gpu-check`） |" in zh
    assert "| GPU | — | not yet run on a GPU (`make gpu-check`) |" in en
    with pytest.raises(ValueError, match="requirements.txt pins no torchvision"):
        reports.render_fragment(reports.NOT_RUN, {"torch": "9.9.9"}, "en")
    with pytest.raises(ValueError, match="status must be 'ran' or 'not-run'"):
        reports.render_fragment({"status": "maybe"}, {"torch": "1", "torchvision": "1"}, "en")
    with pytest.raises(ValueError, match="lang must be one of"):
        reports.render_fragment(reports.NOT_RUN, pinned, "fr")


def test_each_language_has_its_own_table_in_its_own_words(sample_report):
    """The Chinese table has no English word outside names, versions and commands; and the reverse."""
    pinned = {"torch": "2.14.1", "torchvision": "0.29.1"}
    for report in (sample_report, reports.NOT_RUN):
        zh, en = (reports.render_fragment(report, pinned, lang) for lang in LANGS)
        names = r"`[^`]*`|torch(vision)?|CUDA|GPU|CPU|CI|NVIDIA|[\w.+-]*\d[\w.+-]*"  # names, versions
        zh_words = re.findall(r"[A-Za-z]{2,}", re.sub(names, "", zh.split("-->", 1)[1]))
        assert zh_words == [], f"English words in the Chinese table: {zh_words}"
        assert not re.search(r"[\u4e00-\u9fff]", en), "Chinese in the English table"
    for lang in LANGS:
        home = (ROOT / "docs" / lang / "index.md").read_text(encoding="utf-8")
        assert re.findall(r'--8<-- "generated/verified[^"]*"', home) == [f'--8<-- "generated/verified.{lang}.md"']


def test_committed_reports_are_what_the_renderer_makes():
    """Fails when requirements.txt or the GPU report changes without `python -m tools.verified`."""
    report = reports.load_report()
    pinned = reports.pins((ROOT / "requirements.txt").read_text(encoding="utf-8"))
    generated = ROOT / "generated"
    for lang in LANGS:
        table = (generated / f"verified.{lang}.md").read_text(encoding="utf-8")
        assert table == reports.render_fragment(report, pinned, lang)
    assert not (generated / "verified.md").exists(), "the bilingual table is gone: one per language"
    assert (generated / "gpu-report.md").read_text(encoding="utf-8") == reports.render_report_md(report)


def test_pins_reads_exact_requirements_only():
    assert reports.pins("# c\ntorch==2.14.1\nfoo>=1\nPyYAML == 6.0  # x\nmkdocs_material==9\n") == {
        "torch": "2.14.1", "pyyaml": "6.0", "mkdocs-material": "9"}


def test_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="unknown outcome 'weird'"):
        reports.counts([{"id": "x", "outcome": "weird"}])


def test_refuses_on_a_machine_without_cuda(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device: torch " in err and "Refusing to write a GPU report from a CPU run" in err
    assert list(tmp_path.iterdir()) == []


def test_finds_missing_packages_and_says_how_to_get_them():
    absent = {"markdown", "torchvision"}

    def fake_find_spec(name):
        if name == "pymdownx":
            raise ImportError("broken")
        return None if name in absent else object()

    missing = gpu_check.find_missing(find_spec=fake_find_spec)
    assert [n.dist for n in missing] == ["Markdown", "pymdown-extensions", "torchvision"]
    message = gpu_check.missing_message(missing, "/usr/bin/python3", None)
    assert "  - Markdown (import markdown): expands the pages' includes" in message
    assert "torchvision (import torchvision)" in message and "this command never installs it" in message
    assert "python -m tools.gpu_check --download-wheels .whl --python-version " in message


def test_page_blocks_expand_without_mkdocs():
    """The GPU machine needs no mkdocs: includes expand from mkdocs.yml's snippet options alone."""
    code = ("import sys; sys.modules['mkdocs'] = None; sys.modules['material'] = None\n"
            "from pagekit.page import expand\n"
            "print(expand('--8<-- \"snippets/layers.py:imports\"'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "import torch" in out.stdout
    needed = {n.module for n in gpu_check.NEEDS}
    assert {"yaml", "markdown", "pymdownx"} <= needed


def _wheel(folder: Path, name: str, requires: str = ""):
    """A tiny handmade wheel holding one package `name`."""
    dist = f"{name}-0.1.dist-info"
    with zipfile.ZipFile(folder / f"{name}-0.1-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{name}/__init__.py", "")
        whl.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n{requires}")
        whl.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{dist}/RECORD", "")


def test_installs_from_wheels_into_a_private_folder_but_never_torch(tmp_path):
    """Each wheel as it is (--no-deps): the folder's torch, and what this interpreter already has
    (pytest here), stay out; the private folder gets only what is missing."""
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    wheels.mkdir()
    _wheel(wheels, "probe", "Requires-Dist: torch\n")
    _wheel(wheels, "torch")
    _wheel(wheels, "pytest")
    need = gpu_check.Need("probe", "probe", "a test", "pure")
    assert [w.name for w in gpu_check.wheels_to_install(wheels)] == ["probe-0.1-py3-none-any.whl"]
    assert gpu_check.install([need], wheels, target) == ["probe"]
    assert (target / "probe").is_dir() and not (target / "torch").exists() and not (target / "pytest").exists()
    assert gpu_check.target_dists(target) == ["probe 0.1"]
    with pytest.raises(FileNotFoundError, match="wheels folder .* does not exist"):
        gpu_check.install([need], tmp_path / "nowhere", target)
    (wheels / "probe-0.1-py3-none-any.whl").unlink()
    with pytest.raises(RuntimeError, match="holds no wheel for a package this interpreter lacks"):
        gpu_check.install([need], wheels, target)


def test_a_page_shows_the_gpu_runs_output_only_for_the_code_that_printed_it(monkeypatch):
    """Under a block whose output differs on the GPU, the committed run's output in a box of its
    own, labelled with the GPU, torch and date; none once the block's code has changed."""
    # the site build's hook: `make gpu-check` and `make matrix` install no site packages
    pytest.importorskip("mkdocs", reason="hooks/chapters.py is the site build's; mkdocs is not installed here")
    from hooks import chapters as pages
    from pagekit.compare import code_sha
    from pagekit.export import block_code
    from pagekit.page import parse_page

    block = parse_page('```python\n--8<-- "snippets/environment.py:demo_pair"\n```\n'
                       "<!--pytest-codeblocks:expected-output-->\n```text\n2.14.1 0.29.1\n```\n")[0]
    run = {"output": "2.11.0+cu130 0.26.0+cu130\n", "code_sha": code_sha(block_code(block))}
    report = dict(FACTS, status="ran", date="2026-12-04",
                  tests=[{"id": "docs/en/environment.md::blocks in order", "blocks": [run]}])
    monkeypatch.setattr(reports, "load_report", lambda: report)
    monkeypatch.setattr(pages, "_GPU_RUN", {})  # read again (a build reads it once)
    box = pages._gpu_box(block, "en", "environment.md")
    assert "Output on 1 × NVIDIA H200 · torch 2.11.0+cu130 · 2026-12-04" in box and "2.11.0+cu130 0.26.0" in box
    assert "在 1 × NVIDIA H200 上的输出 · torch 2.11.0+cu130 · 2026-12-04" in pages._gpu_box(block, "zh", "environment.md")
    run["code_sha"] = code_sha("some other code")
    pages._GPU_RUN.clear()
    assert pages._gpu_box(block, "en", "environment.md") == ""
    run.update(code_sha=code_sha(block_code(block)), output="2.14.1 0.29.1\n")
    pages._GPU_RUN.clear()
    assert pages._gpu_box(block, "en", "environment.md") == ""  # the same output: shown once


def test_download_refuses_torch():
    assert gpu_check.download_wheels(Path("unused"), "3.12.3", ["torchvision"]) == 2


@pytest.mark.parametrize("code, text", [(91002, "9.10.2"), (8907, "8.9.7"), (None, None)])
def test_cudnn_version(code, text):
    assert gpu_check.cudnn_version(code) == text


def test_runs_the_tests_marked_cuda_then_every_page(tmp_path):
    (tests_json, tests), (docs_json, docs) = gpu_check.pytest_commands(tmp_path).items()
    assert tests[3:6] == ["tests", "-m", "cuda"] and docs[3:5] == ["docs", "-p"] and "cuda" not in docs
    for cmd, path in ((tests, tests_json), (docs, docs_json)):
        assert cmd[:3] == [sys.executable, "-m", "pytest"] and "tools.gpu_results" in cmd
        assert cmd[cmd.index("--gpu-results") + 1] == str(path) and path.parent == tmp_path
    left_out = [tests[i + 1] for i, arg in enumerate(tests) if arg == "--ignore"]
    assert left_out == list(gpu_check.SITE_BUILD_TESTS) and all((ROOT / p).is_file() for p in left_out)


def _report(nodeid, when, outcome, longrepr=None, **extra):
    crash = SimpleNamespace(reprcrash=SimpleNamespace(message=longrepr)) if isinstance(longrepr, str) else longrepr
    return SimpleNamespace(nodeid=nodeid, when=when, duration=0.25, skipped=outcome == "skipped",
                           failed=outcome == "failed", longrepr=crash, longreprtext=str(longrepr or ""), **extra)


def test_recorder_folds_setup_call_teardown_into_one_outcome(tmp_path):
    rec = gpu_results.Recorder(tmp_path / "r.json")
    for when, outcome, longrepr in [("setup", "passed", None), ("call", "failed", "AssertionError: boom"),
                                    ("teardown", "passed", None)]:
        rec.pytest_runtest_logreport(_report("t::fails", when, outcome, longrepr))
    rec.pytest_runtest_logreport(_report("t::broken", "setup", "failed", "RuntimeError: no fixture"))
    rec.pytest_runtest_logreport(_report("t::skips", "setup", "skipped", ("t.py", 3, "Skipped: needs 2 GPUs")))
    rec.pytest_runtest_logreport(_report("t::xfails", "call", "skipped", "ValueError: as the page says", wasxfail=""))
    rec.pytest_runtest_logreport(_report("t::passes", "call", "passed"))
    rec.pytest_collectreport(_report("tests/test_x.py", "collect", "failed", "ImportError: no module named x"))
    rec.pytest_sessionfinish(None, 1)
    data = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert data["exitstatus"] == 1
    assert {t["id"]: (t["outcome"], t["message"]) for t in data["tests"]} == {
        "t::fails": ("failed", "AssertionError: boom"), "t::broken": ("error", "RuntimeError: no fixture"),
        "t::skips": ("skipped", "needs 2 GPUs"), "t::xfails": ("xfailed", "ValueError: as the page says"),
        "t::passes": ("passed", ""), "tests/test_x.py": ("error", "ImportError: no module named x")}
    assert data["tests"][0]["duration"] == 0.75


def test_one_report_from_both_sessions(monkeypatch, tmp_path):
    """The `-m cuda` session and the pages' session end in one report; a failure in either fails the check."""
    outcomes = {"tests.json": ("tests/test_saving.py::test_gpu_checkpoint", "failed", 1),
                "docs.json": ("docs/zh/saving.md::blocks in order", "passed", 0)}

    def fake_pytest(cmd, **kwargs):
        path = Path(cmd[cmd.index("--gpu-results") + 1])
        nodeid, outcome, status = outcomes[path.name]
        path.write_text(json.dumps({"exitstatus": status, "tests": [
            {"id": nodeid, "outcome": outcome, "duration": 1.0, "message": ""}]}), encoding="utf-8")
        return SimpleNamespace(returncode=status)
    monkeypatch.setattr(gpu_check, "gpu_facts", lambda: FACTS)
    monkeypatch.setattr(gpu_check, "find_missing", lambda: [])
    monkeypatch.setattr(gpu_check, "RESULTS", tmp_path / "results")
    (tmp_path / "results").mkdir()
    monkeypatch.setattr(gpu_check.subprocess, "run", fake_pytest)
    assert gpu_check.run_check(None, tmp_path / "out", "python3 -m tools.gpu_check", "abc1234") == 1
    report = json.loads((tmp_path / "out" / reports.REPORT_JSON).read_text(encoding="utf-8"))
    assert [t["id"] for t in report["tests"]] == sorted(o[0] for o in outcomes.values())
    assert report["exitstatus"] == 1 and report["counts"]["failed"] == 1 and report["counts"]["passed"] == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine `make gpu-check` runs these tests")
def test_cuda_tests_are_each_skipped_with_a_reason_on_cpu(tmp_path, request):
    """gpu-check's `-m cuda` session on the CPU, over the smoke tests (its whole selection would take
    as long as collecting every test module): each is skipped with the reason. And so is every `cuda`
    test this session collected (all of them, in `make test`)."""
    results = Path(".cache/cuda-smoke.json")  # in ROOT: the same command each time, so it is remembered
    args = ["tests/test_cuda_smoke.py", "-m", "cuda", "-q"]
    done = remembered(gpu_check.pytest_command(args, results), cwd=ROOT, env=gpu_check.pytest_env(tmp_path / "none"),
                      depends=[ROOT / name for name in ("conftest.py", "pyproject.toml", "pagekit", "snippets", "tests",
                                                        "tools")], files=[results], timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tests = json.loads((ROOT / results).read_text(encoding="utf-8"))["tests"]
    assert len(tests) == 8 and all(t["id"].startswith("tests/test_cuda_smoke.py::") for t in tests), tests
    assert {(t["outcome"], t["message"]) for t in tests} == {("skipped", NO_GPU_REASON)}
    marked = [item for item in request.session.items if item.get_closest_marker("cuda")]
    assert [item.nodeid for item in marked
            if [m.kwargs.get("reason") for m in item.iter_markers("skip")] != [NO_GPU_REASON]] == []


def test_the_modules_gpu_check_leaves_out_mark_nothing_cuda(request):
    """gpu-check does not import the site-build test modules (their packages are not on the GPU
    machine): a `cuda` test put there would never run. Read from this session's items."""
    left_out = {ROOT / path for path in gpu_check.SITE_BUILD_TESTS}
    items = [item for item in request.session.items if item.path in left_out]
    if not items:
        pytest.skip("reads this session's items: run with the modules gpu-check leaves out (`make test`)")
    assert [item.nodeid for item in items if item.get_closest_marker("cuda")] == []


class BareMachineRun:
    """`make gpu-check WHEELS=.whl` on a bare GPU machine, simulated: an interpreter with only
    torch, torchvision and NumPy (tests/bare_machine.py), the rest from a folder of wheels, the
    checkout copied without .git; started in the background at the end of collection (EARLY,
    tests/conftest.py). `--test-on-cpu` lifts the GPU refusal and writes the report elsewhere."""

    def __init__(self, folder: Path, pages: set[str] | None = None):  # the machine, not pages
        import bare_machine

        self.folder = folder
        self.python = bare_machine.interpreter(folder / "python")
        bare_machine.wheels([n.dist for n in gpu_check.NEEDS if n.kind != "torch-matched"], folder / "whl")
        self.checkout = bare_machine.checkout_copy(ROOT, folder / "checkout")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        # Paths relative to the checkout: the same command each time, remembered by the files it names;
        # niced as background work is (run.nice_prefix: to NICE, not NICE more than this process).
        nice = nice_prefix()
        self.done = ThreadPoolExecutor(1).submit(
            remembered, [*nice, "../python/bin/python", "-m", "tools.gpu_check", "--wheels", "../whl", "--test-on-cpu",
                         "--out", "out", "--commit", "test", "--pages", "docs/en/containers.md"],
            cwd=self.checkout, env=env, depends=[self.checkout, folder / "whl"], files=["out", "generated"],
            timeout=WAIT_S)

    def result(self) -> tuple[int, str]:
        done = self.done.result(timeout=WAIT_S)  # as long as the test may wait
        return done.returncode, done.stdout + done.stderr

    def close(self):
        self.done.cancel()  # one that has started ends with its command (WAIT_S at most)


EARLY = {"bare_machine_run": BareMachineRun}


@pytest.mark.slow
def test_the_documented_procedure_runs_on_a_machine_with_only_torch_and_a_wheels_folder(early):
    """Every test package and the page runner come from the private folder there: a page's run
    that dropped it, or a runner that needed a notebook library, fails here."""
    returncode, out = early.result("bare_machine_run", BareMachineRun)
    handle = early.handles["bare_machine_run"]
    assert subprocess.run([handle.python, "-c", "import pytest"], capture_output=True).returncode == 1
    assert returncode == 0, out[-4000:]
    report = json.loads((handle.checkout / "out" / reports.REPORT_JSON).read_text())
    outcomes = {t["id"]: t["outcome"] for t in report["tests"]}
    assert outcomes.pop("docs/en/containers.md::blocks in order") == "passed"
    assert set(outcomes.values()) == {"skipped"}  # the `cuda` tests, on a CPU
    assert (handle.checkout / "generated" / "gpu-report.json").read_bytes() == (ROOT / "generated" / "gpu-report.json").read_bytes()
    private = {d.split()[0].lower() for d in report["from_wheels"]}
    assert {"pytest", "pymdown-extensions", "pyyaml"} <= private and "nbformat" not in private


