"""pytest plugin used by `make gpu-check` (tools/gpu_check.py loads it with `-p tools.gpu_results`).

With `--gpu-results FILE` it writes each item's outcome to FILE as JSON (tools/gpu_check.py
picks the items: `pytest tests -m cuda`, then `pytest docs`):

    {"exitstatus": 0, "tests": [{"id": ..., "outcome": ..., "duration": ..., "message": ...}]}

outcome is one of passed, failed, error (setup, teardown or collection failed), skipped,
xfailed (a block that must fail did fail as the page says).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

MESSAGE_CHARS = 300


def pytest_addoption(parser):
    parser.addoption("--gpu-results", metavar="FILE", default=None,
                     help="write each test's outcome to FILE as JSON (make gpu-check)")


def pytest_configure(config):
    path = config.getoption("--gpu-results")
    if path:
        config.pluginmanager.register(Recorder(Path(path)), "gpu-results-recorder")


def _message(report) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        text = str(report.longrepr[2]).removeprefix("Skipped: ")
    else:
        crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
        text = crash.message if crash is not None else "".join(report.longreprtext.strip().splitlines()[-1:])
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 1] + "…"


class Recorder:
    """Folds the setup/call/teardown reports of each item into one outcome."""

    RANK = {"passed": 0, "skipped": 1, "xfailed": 1, "error": 2, "failed": 3}

    def __init__(self, path: Path):
        self.path = path
        self.tests: dict[str, dict] = {}

    def _set(self, nodeid: str, outcome: str, message: str = "", duration: float = 0.0):
        entry = self.tests.setdefault(nodeid, {"id": nodeid, "outcome": "passed", "duration": 0.0, "message": ""})
        entry["duration"] = round(entry["duration"] + duration, 3)
        if self.RANK[outcome] > self.RANK[entry["outcome"]] or (outcome != "passed" and not entry["message"]):
            entry["outcome"], entry["message"] = outcome, message

    def pytest_runtest_logreport(self, report):
        if report.skipped:  # xfailed: the error the block raised, as its page says
            outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        else:
            outcome = ("failed" if report.when == "call" else "error") if report.failed else "passed"
        message = "" if outcome == "passed" else _message(report) or getattr(report, "wasxfail", "")
        self._set(report.nodeid, outcome, message, report.duration)
        blocks = dict(getattr(report, "user_properties", ())).get("block_results")
        if report.when == "call" and blocks is not None:  # a page: what each of its blocks printed
            self.tests[report.nodeid]["blocks"] = blocks

    def pytest_collectreport(self, report):
        if report.failed:
            self._set(report.nodeid or "collection", "error", _message(report))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        data = {"exitstatus": int(exitstatus), "tests": list(self.tests.values())}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
