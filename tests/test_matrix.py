"""`make matrix` (tools/matrix.py), the parts that need no download: which releases and torchvision,
how pip is told to leave this machine's settings out, and the report rendered from fake results."""
import json
import re
import subprocess
import sys

import pytest

from pagekit.project import LANGS
from tools import matrix

PINS = {"torch": "2.14.1", "torchvision": "0.29.1", "numpy": "2.4.6", "pytest": "9.2.0"}


def test_releases_are_read_from_words_commas_and_one_string():
    got = matrix.parse_releases(["2.6.0 2.11.0,2.15.0", "2.16.0:0.31.0", "2.6.0"], PINS)
    assert got == [matrix.Release("2.6.0", "0.21.*"), matrix.Release("2.11.0", "0.26.*"),
                   matrix.Release("2.15.0", "0.29.*"), matrix.Release("2.16.0", "0.31.0")]


@pytest.mark.parametrize("word", ["2.11", "v2.11.0", "1.13.1", "2.11.0:26", "2.11.0:0.26"])
def test_a_bad_release_says_how_to_write_one(word):
    with pytest.raises(ValueError, match=r"write torch's full version, e\.g\. 2\.11\.0"):
        matrix.parse_releases([word], PINS)


def test_torchvision_matches_torch_and_the_pin_keeps_its_own():
    assert matrix.torchvision_for("2.6.0", PINS) == "0.21.*"
    assert matrix.torchvision_for("2.11.0", PINS) == "0.26.*"
    assert matrix.torchvision_for("2.14.0", PINS) == "0.29.*"
    assert matrix.torchvision_for("2.14.1", PINS) == "0.29.1"  # requirements.txt's pair
    assert matrix.torchvision_for("2.15.0", PINS) == "0.29.*"  # stable ABI: 0.29 declares torch>=2.14
    with pytest.raises(ValueError, match="no torchvision known for torch 2.16.0; name it: 2.16.0:0.X.Y"):
        matrix.torchvision_for("2.16.0", PINS)


def test_each_venv_gets_the_release_and_the_pinned_page_packages_not_the_site_stack():
    specs = matrix.requirements_for(matrix.Release("2.11.0", "0.26.*"), PINS)
    assert specs[:2] == ["torch==2.11.0", "torchvision==0.26.*"]
    assert "numpy==2.4.6" in specs and "pytest==9.2.0" in specs and "PyYAML" in specs
    assert not [s for s in specs if re.match(r"(mkdocs|playwright|jieba)", s)]
    real = matrix.requirements_for(matrix.Release("2.11.0", "0.26.*"), matrix.pins())
    assert all("==" in s for s in real if s.split("==")[0].lower() in matrix.pins())


def test_pip_runs_without_this_machines_config_and_constraints(monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    monkeypatch.setenv("PIP_CONSTRAINT", "/etc/xdg/pip/constraints.txt")
    monkeypatch.setenv("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    env = matrix.pip_env()
    assert env["PIP_CONFIG_FILE"] == "/dev/null" and env["PIP_CERT"].endswith(".crt")
    assert "PIP_FIND_LINKS" not in env and "PIP_CONSTRAINT" not in env


def test_the_session_leaves_out_site_and_browser_tests_and_records_outcomes(tmp_path):
    cmd = matrix.session_command(tmp_path / "python", tmp_path / "r.json", tmp_path / "d.json")
    assert cmd[1:6] == ["-m", "pytest", "docs", "tests", "-m"] and cmd[6] == "not browser and not cuda"
    ignored = {cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--ignore"}
    from tools.gpu_check import SITE_BUILD_TESTS
    assert set(SITE_BUILD_TESTS) | {"tests/test_browser.py", "tests/test_site.py"} == ignored
    assert "tools.gpu_results" in cmd and "tools.matrix" in cmd and str(tmp_path / "d.json") in cmd


SHOWN = "RuntimeError: Error(s) in loading state_dict for Linear:\n\tsize mismatch"
PAGE_MESSAGE = (
    "AssertionError: docs/en/saving.md:\n"
    "line 120 (Loading (strictly)): output differs from the page; run `make outputs` if the code changed on purpose.\n"
    "page shows:\nkeys: ['w']\nTypeError: transpose() received an invalid combination of arguments\n"
    "the code printed:\nkeys: ['w']\nTypeError: transpose() got an invalid combination of arguments\n"
    "line 200 (Export): output differs from the page; run `make outputs` if the code changed on purpose.\n"
    "page shows:\nepoch 1 val acc 0.681\n"
    "the code printed:\nepoch 1 val acc 0.769\n(warning, not output: UserWarning: slow)\n"
    "line 230 (top): must fail with pickle.UnpicklingError but ran without error\n"
    "assert not ['line 120 ...']"
)
RAISED = ("AssertionError: saving.md line 90 (Safetensors) raised:\nsaved\nAttributeError: module 'torch' has no "
          "attribute 'nope'\nAttributeError: module 'torch' has no attribute 'nope'\n"
          "Traceback (most recent call last):\n  File \"saving.py:90\", line 1\n")


def test_a_pages_failure_becomes_one_entry_per_block_with_what_differs():
    blocks = matrix.page_blocks(PAGE_MESSAGE)
    assert [(b["line"], b["section"], b["kind"]) for b in blocks] == [
        (120, "Loading (strictly)", "differs"), (200, "Export", "differs"), (230, "top", "other")]
    assert blocks[0]["why"] == "the same error, in other words"
    assert blocks[1]["why"] == "other numbers" and blocks[1]["printed"] == "epoch 1 val acc 0.769"
    assert blocks[1]["warnings"] == ["UserWarning: slow"] and "warnings" not in blocks[0]
    assert blocks[2]["text"] == "must fail with pickle.UnpicklingError but ran without error"
    raised = matrix.page_blocks(RAISED)
    assert raised == [{"line": 90, "section": "Safetensors", "kind": "raised",
                       "error": "AttributeError: module 'torch' has no attribute 'nope'"}]


@pytest.mark.parametrize("shown, printed, why", [
    ("a\nb", "a\nb\nUserWarning: x is deprecated", "a warning printed in the block's output"),
    ("ValueError: bad", "TypeError: bad", "another type of error"),
    ("x | built-in | NotImplementedError: no", "x | built-in | RuntimeError: no", "another type of error"),
    ("TypeError: f() takes 2 positional arguments", "TypeError: f() received\n * (int dim0)",
     "the same error, in other words"),
    ("2.14.1+cu130 0.29.1+cu130", "2.6.0+cu124 0.21.0+cu124", "other version numbers"),
    ("CUDA 13.0", "no GPU here", "other text"),
])
def test_a_difference_gets_a_first_reading(shown, printed, why):
    assert matrix.why_differs(shown, printed) == why


def fake_report():
    results = {"exitstatus": 1, "tests": [
        {"id": "docs/en/saving.md::blocks in order", "outcome": "failed", "duration": 3.0, "message": "short"},
        {"id": "docs/zh/saving.md::blocks in order", "outcome": "failed", "duration": 3.0, "message": "short"},
        {"id": "docs/en/layers.md::blocks in order", "outcome": "passed", "duration": 3.0, "message": ""},
        {"id": "tests/test_saving.py::test_weights_only_default", "outcome": "failed", "duration": 0.1,
         "message": "AssertionError: assert False | True"},
        {"id": "tests/test_saving.py::test_loads", "outcome": "passed", "duration": 0.1, "message": ""},
        {"id": "tests/test_data.py::test_cuda_pin", "outcome": "skipped", "duration": 0.0, "message": "no GPU"},
    ]}
    details = {"docs/en/saving.md::blocks in order": PAGE_MESSAGE,
               "docs/zh/saving.md::blocks in order": PAGE_MESSAGE.replace("line 120", "line 118")}
    ran = {"release": "2.11.0", "torchvision_spec": "0.26.*", "install_s": 60, "venv_mb": 5632, "downloaded_mb": 3072,
           "tests_s": 240, "exitstatus": 1,
           "versions": {"torch": "2.11.0+cu130", "torchvision": "0.26.0", "numpy": "2.4.6", "python": "3.11.7",
                        "cuda_build": "13.0", "cuda_available": False}} | matrix.summarize(results, details)
    gone = {"release": "2.5.1", "torchvision_spec": "0.20.*", "install_s": 5, "venv_mb": 0, "downloaded_mb": 0,
            "status": "not-installed", "reason": "`pip download` failed: no matching distribution"}
    facts = {"date": "2026-12-04", "commit": "abc1234", "python": "3.11.7", "machine": "x86_64 Linux, 2 CPU cores",
             "pinned_torch": "2.14.1", "command": "python3.11 -m tools.matrix"}
    return matrix.merge(None, [ran, gone], facts)


def test_results_are_counted_and_merged_by_release_in_version_order():
    report = fake_report()
    assert [e["release"] for e in report["releases"]] == ["2.5.1", "2.11.0"]
    ran = report["releases"][1]
    assert ran["counts"] == {"passed": 2, "failed": 3, "error": 0, "skipped": 1, "xfailed": 0}
    assert ran["pages"] == 3 and len(ran["failures"]) == 3
    again = matrix.merge(report, [dict(ran, counts=dict(ran["counts"], failed=0))], {"date": "2026-12-05"})
    assert [e["release"] for e in again["releases"]] == ["2.5.1", "2.11.0"] and again["date"] == "2026-12-05"
    assert again["releases"][1]["counts"]["failed"] == 0


def test_the_report_names_each_block_what_differs_and_why():
    md = matrix.render_md(fake_report())
    assert "| `2.11.0` | `0.26.0` | `2.4.6` | 2 passed · 3 failed |" in md
    assert "| `2.5.1` | — | — | could not be installed or imported |" in md
    assert "| torch | 2.11.0+cu130 (a CUDA 13.0 build, run on CPU) |" in md
    assert "- line 120 (Loading (strictly)): the output differs: the same error, in other words" in md
    assert "  - TypeError: transpose() received an invalid combination of arguments" in md
    assert "  + TypeError: transpose() got an invalid combination of arguments" in md
    assert "- line 200 (Export): the output differs: other numbers" in md
    assert "  - epoch 1 val acc 0.681" in md and "  + epoch 1 val acc 0.769" in md
    assert "  (and a warning, not part of the output: `UserWarning: slow`)" in md
    assert "- line 230 (top):" in md and "must fail with pickle.UnpicklingError" in md
    assert "The same blocks as `docs/en/saving.md` (its own lines: 118, 200, 230)." in md
    assert "### `tests/test_saving.py::test_weights_only_default` (failed)" in md
    assert "`pip download` failed: no matching distribution" in md


def test_the_summary_tables_hold_the_same_numbers_in_both_languages():
    report = fake_report()
    tables = {lang: matrix.render_summary(report, lang) for lang in LANGS}
    assert "| `2.11.0` | `0.26.0` | `2.4.6` | 2 通过 · 3 失败 |" in tables["zh"]
    assert not re.search(r"[\u4e00-\u9fff]", tables["en"])
    numbers = {lang: re.findall(r"\d+(?:\.\d+)?", t) for lang, t in tables.items()}
    assert numbers["zh"] == numbers["en"]
    pinned = matrix.merge(report, [dict(report["releases"][1], release="2.14.1")], {"pinned_torch": "2.14.1"})
    assert "| `2.14.1` (pinned) |" in matrix.render_summary(pinned, "en")


def test_render_rewrites_the_markdown_from_the_json(tmp_path):
    (tmp_path / "matrix.json").write_text(json.dumps(fake_report()), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "tools.matrix", "--render", "--out", str(tmp_path)],
                          cwd=matrix.ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "matrix-summary.en.md", "matrix-summary.zh.md", "matrix.json", "matrix.md"]
    assert (tmp_path / "matrix.md").read_text(encoding="utf-8") == matrix.render_md(fake_report())


def test_the_committed_report_is_what_its_json_renders():
    report = json.loads((matrix.GENERATED / "matrix.json").read_text(encoding="utf-8"))
    assert (matrix.GENERATED / "matrix.md").read_text(encoding="utf-8") == matrix.render_md(report)
    for lang in LANGS:
        assert (matrix.GENERATED / f"matrix-summary.{lang}.md").read_text(encoding="utf-8") == \
            matrix.render_summary(report, lang)
    assert {e["release"] for e in report["releases"]} >= {"2.11.0", report["pinned_torch"]}


def test_the_supported_range_is_the_matrix_and_readers_find_it_in_the_readme_and_the_environment_page():
    """The issue asks for the range in the README and on the environment page: the oldest and the
    newest release the matrix runs, in both languages."""
    from pagekit.project import DOCS, ROOT
    assert list(matrix.RELEASES) == sorted(matrix.RELEASES, key=matrix.version_key)
    oldest, newest = (".".join(r.split(".")[:2]) for r in (matrix.RELEASES[0], matrix.RELEASES[-1]))
    words = {"en": f"torch {oldest} to {newest}", "zh": f"torch {oldest} 到 {newest}"}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for lang in LANGS:
        assert words[lang] in readme, words[lang]
        page = (DOCS / lang / "environment.md").read_text(encoding="utf-8")
        assert words[lang] in page and all(r in page for r in matrix.RELEASES), lang
