"""The pages' programs and the claim tests on CPU under other torch releases: `make matrix`.

    python3.11 -m tools.matrix                   # the releases in RELEASES
    python3.11 -m tools.matrix 2.11.0 2.15.0     # some releases (`2.16.0:0.31.0` names torchvision too)
    python3.11 -m tools.matrix --render          # rewrite the Markdown from generated/matrix.json

What it does per release is README.md's "Other torch releases": a fresh venv
(.cache/matrix/venv-<torch>) from one shared wheel folder (.cache/matrix/wheels; pip's own config
stays out), one pytest session like tools/gpu_check.py's on CPU without LEFT_OUT, within
--timeout-s. PyPI's Linux torch wheels are CUDA builds; without their nvidia-* wheels `import torch`
fails (`libcudnn.so.9`), so each venv has them (about 3 GB per CUDA generation, 5.6 GiB per venv).
Results, merged by release: generated/matrix.json (versions, counts, each failure's message),
generated/matrix.md (per release, each failing block, what differs, why) and
generated/matrix-summary.{zh,en}.md (the release x passed/failed table a page includes).

It needs only Python's standard library (no torch); loaded into pytest with `-p tools.matrix
--matrix-details FILE` it also leaves out the tests that need a built site and writes each
failure's whole message to FILE.
"""
from __future__ import annotations

import argparse
import datetime
import difflib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pagekit.project import GENERATED, LANGS, ROOT, pins

WORK = ROOT / ".cache" / "matrix"
WHEELS = WORK / "wheels"
RELEASES = ("2.6.0", "2.11.0", "2.14.1", "2.15.0")  # the oldest supported, the GPU machine's, the pin, the newest
# torch 2.N ships with torchvision 0.(N+15); pip picks the patch release that declares the same torch.
# torchvision 0.29 is built on torch's stable ABI and declares torch>=2.14.0: no 0.30 is out, and
# 0.29 is what PyPI offers for torch 2.15 (the matrix checks that it imports and runs).
TORCHVISION = {f"2.{n}": f"0.{n + 15}" for n in range(0, 15)} | {"2.15": "0.29"}
# requirements.txt's page and test packages (pinned there), and what the page runner (Markdown, PyYAML)
# and snippets/labs.py (IPython) import, unpinned there.
PACKAGES = ("numpy", "pillow", "scikit-learn", "matplotlib", "safetensors", "pytest", "pytest-timeout",
            "pymdown-extensions", "nbformat", "Markdown", "PyYAML", "ipython")
# Test modules about the site build and the browser (their packages are not installed here), and the
# fixtures that build the site: items using them are deselected.
LEFT_OUT = ("tests/test_site.py", "tests/test_labs.py", "tests/test_notebook_css.py", "tests/test_pages.py",
            "tests/test_browser.py")
SITE_FIXTURES = {"served_site", "built_site", "second_build", "downloads", "project_copy"}
MARKS = "not browser and not cuda"
DETAIL_CHARS = 8000
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed")


@dataclass(frozen=True)
class Release:
    torch: str        # "2.11.0"
    torchvision: str  # what pip is asked for: "0.26.*", or an exact release


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0])[:3])


def torchvision_for(torch: str, pins: dict[str, str]) -> str:
    """The torchvision spec for a torch release: the pin's own for the pin, else TORCHVISION's series."""
    if torch == pins.get("torch") and "torchvision" in pins:
        return pins["torchvision"]
    series = ".".join(torch.split(".")[:2])
    if series not in TORCHVISION:
        raise ValueError(f"no torchvision known for torch {torch}; name it: {torch}:0.X.Y")
    return f"{TORCHVISION[series]}.*"


def parse_releases(words: list[str], pins: dict[str, str]) -> list[Release]:
    """'2.11.0', '2.11.0:0.26.0' or several in one word ("2.6.0 2.11.0", commas too) -> releases."""
    found, seen = [], set()
    for word in (w for text in words for w in re.split(r"[\s,]+", text) if w):
        torch, _, vision = word.partition(":")
        if not re.fullmatch(r"2\.\d+\.\d+", torch) or (vision and not re.fullmatch(r"0\.\d+\.\d+", vision)):
            raise ValueError(f"bad release {word!r}: write torch's full version, e.g. 2.11.0 or 2.11.0:0.26.0")
        if torch not in seen:
            seen.add(torch)
            found.append(Release(torch, vision or torchvision_for(torch, pins)))
    return found


def requirements_for(release: Release, pinned: dict[str, str]) -> list[str]:
    specs = [f"torch=={release.torch}", f"torchvision=={release.torchvision}"]
    return specs + [f"{p}=={pinned[p.lower()]}" if p.lower() in pinned else p for p in PACKAGES]


# --- running one release ----------------------------------------------------------------------------
def pip_env() -> dict[str, str]:
    """This machine's pip settings (a torch cap, local indexes) stay out: PyPI, as a reader has it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") or k in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT")}
    return env | {"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def size_mb(path: Path) -> int:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) if path.exists() else 0
    return round(total / 2**20)


def install(release: Release, venv: Path, python: str, log: Path) -> str | None:
    """A fresh venv with the release; None, or why it could not be installed (pip's last lines)."""
    shutil.rmtree(venv, ignore_errors=True)
    specs = requirements_for(release, pins())
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    env = pip_env()
    for cmd in ([python, "-m", "venv", str(venv)],
                [*pip, "download", "--only-binary=:all:", "-d", str(WHEELS), "--find-links", str(WHEELS), *specs],
                [*pip, "install", "--no-index", "--find-links", str(WHEELS), *specs]):
        with open(log, "a") as out:
            out.write(f"+ {shlex.join(map(str, cmd))}\n")
            out.flush()
            failed = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
        if failed:
            lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip() and "[notice]" not in x]
            return f"`{shlex.join(cmd[1:4] if cmd[0] == python else cmd[2:4])}` failed: " + " / ".join(lines[-3:])
    return None


VERSIONS = """import json, platform, sys
facts = {"python": platform.python_version()}
for name in ("torch", "torchvision", "numpy"):
    try:
        facts[name] = __import__(name).__version__
    except Exception as exc:
        facts[name] = None
        facts["import_error"] = f"import {name}: {type(exc).__name__}: {exc}"
if facts["torch"]:
    import torch
    facts["cuda_build"] = torch.version.cuda
    facts["cuda_available"] = torch.cuda.is_available()
print(json.dumps(facts))
"""


def versions(venv: Path) -> dict:
    done = subprocess.run([str(venv / "bin" / "python"), "-c", VERSIONS], capture_output=True, text=True, cwd=WORK)
    if done.returncode:
        return {"import_error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout)


def session_command(python: Path, results: Path, details: Path) -> list[str]:
    ignore = [arg for path in LEFT_OUT for arg in ("--ignore", path)]
    return [str(python), "-m", "pytest", "docs", "tests", "-m", MARKS, *ignore, "-p", "pytest_timeout",
            "-p", "tools.gpu_results", "--gpu-results", str(results), "-p", "tools.matrix",
            "--matrix-details", str(details), "--continue-on-collection-errors", "-rfE",
            "-o", "console_output_style=count"]


PROGRESS = re.compile(r"^(?:(?:docs|tests)/\S+\.(?:md|py) |FAILED |ERROR |=+ .* in [\d.]+s)")


def run_tests(cmd: list[str], log: Path, label: str, timeout_s: float) -> tuple[int, bool]:
    """pytest, its lines echoed with the release in front; SIGINT at the limit (pytest then still
    writes its results), SIGKILL a minute later. (exit status, timed out)"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": ""}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    timed_out = threading.Event()

    def stop(sig):
        if proc.poll() is None:
            timed_out.set()
            os.killpg(proc.pid, sig)

    timers = [threading.Timer(timeout_s, stop, (signal.SIGINT,)),
              threading.Timer(timeout_s + 60, stop, (signal.SIGKILL,))]
    for t in timers:
        t.daemon = True
        t.start()
    with open(log, "w") as out:
        for line in proc.stdout:
            out.write(line)
            if PROGRESS.match(line):
                print(f"[torch {label}] {line.rstrip()}", flush=True)
    rc = proc.wait()
    for t in timers:
        t.cancel()
    return rc, timed_out.is_set()


def run_release(release: Release, python: str, timeout_s: float, keep: bool) -> dict:
    folder = WORK / f"torch-{release.torch}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    venv = WORK / f"venv-{release.torch}"
    entry = {"release": release.torch, "torchvision_spec": release.torchvision}
    wheels_before, start = size_mb(WHEELS), time.monotonic()
    print(f"[torch {release.torch}] installing torch=={release.torch} torchvision=={release.torchvision} "
          f"and the page/test packages (log: {(folder / 'install.log').relative_to(ROOT)})", flush=True)
    why = install(release, venv, python, folder / "install.log")
    entry |= {"install_s": round(time.monotonic() - start), "venv_mb": size_mb(venv),
              "downloaded_mb": size_mb(WHEELS) - wheels_before}
    try:
        if why:
            return entry | {"status": "not-installed", "reason": why}
        entry["versions"] = versions(venv)
        if entry["versions"].get("import_error"):
            return entry | {"status": "not-importable", "reason": entry["versions"]["import_error"]}
        results, details = folder / "results.json", folder / "details.json"
        start = time.monotonic()
        rc, timed_out = run_tests(session_command(venv / "bin" / "python", results, details),
                                  folder / "pytest.log", release.torch, timeout_s)
        entry |= {"tests_s": round(time.monotonic() - start), "exitstatus": rc}
        if not results.exists():
            tail = (folder / "pytest.log").read_text(errors="replace").strip().splitlines()[-3:]
            why = f"pytest exited {rc} without results: " + " / ".join(tail)
            return entry | {"status": "no-results", "reason": why}
        full = json.loads(details.read_text()) if details.exists() else {}
        return entry | summarize(json.loads(results.read_text()), full, timed_out, timeout_s)
    finally:
        if not keep:
            shutil.rmtree(venv, ignore_errors=True)


# --- pytest plugin (-p tools.matrix --matrix-details FILE) ---------------------------------------------
def pytest_addoption(parser):
    parser.addoption("--matrix-details", metavar="FILE", default=None,
                     help="make matrix: leave out the tests that need a built site; each failure's message to FILE")


def pytest_configure(config):
    if config.getoption("--matrix-details"):
        config.pluginmanager.register(Details(Path(config.getoption("--matrix-details"))), "matrix-details")


class Details:
    def __init__(self, path: Path):
        self.path, self.messages = path, {}

    def pytest_collection_modifyitems(self, config, items):
        site = [i for i in items if SITE_FIXTURES & set(getattr(i, "fixturenames", ()))]
        if site:
            items[:] = [i for i in items if i not in site]
            config.hook.pytest_deselected(items=site)

    def pytest_runtest_logreport(self, report):
        if report.failed and report.nodeid not in self.messages:
            crash = getattr(report.longrepr, "reprcrash", None)
            text = crash.message if crash is not None else report.longreprtext
            self.messages[report.nodeid] = text[-DETAIL_CHARS:]

    def pytest_collectreport(self, report):
        if report.failed:
            self.messages[report.nodeid or "collection"] = report.longreprtext[-DETAIL_CHARS:]

    def pytest_sessionfinish(self, session):
        self.path.write_text(json.dumps(self.messages, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# --- what failed, and why ----------------------------------------------------------------------------
BLOCK_START = re.compile(r"^(?:AssertionError: )?(?:\S+\.md )?line (\d+) \((.*?)\)(?=:| raised:)", re.M)
ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Warning|Interrupt|Exit)\b[^:\n]*:")
WARNED = "(warning, not output: "  # pagekit.compare: a warning torch printed, kept apart from the output
ERROR_NAME = re.compile(r"\b([A-Z]\w*(?:Error|Exception)): ")
VERSION = re.compile(r"\b\d+\.\d+\.\d+(?:\+\w+)?")
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _between(text: str, start: str, end: str | None) -> str | None:
    if start not in text:
        return None
    rest = text.split(start, 1)[1]
    return (rest.split(end, 1)[0] if end and end in rest else rest).strip("\n")


def page_blocks(message: str) -> list[dict]:
    """A page item's failure message -> one entry per block it names: line, section, what happened."""
    first, *rest = re.split(r"\n\s*assert not \[", message)[0].split("\n")
    if rest and all(not x.strip() or x.startswith("  ") for x in rest):  # pytest indents a crash message
        rest = [x[2:] for x in rest]
    message = "\n".join([first, *rest])
    starts = list(BLOCK_START.finditer(message))
    found = []
    for m, nxt in zip(starts, starts[1:] + [None]):
        chunk = message[m.end(): nxt.start() if nxt else len(message)]
        entry = {"line": int(m.group(1)), "section": m.group(2)}
        if chunk.startswith(" raised:"):
            printed = chunk.split("\nTraceback (most recent call last):", 1)[0].removeprefix(" raised:").strip("\n")
            errors = [x for x in printed.splitlines() if ERROR_LINE.match(x)]
            entry |= {"kind": "raised", "error": errors[-1] if errors else printed.splitlines()[-1:]}
        elif "page shows:" in chunk:
            shown = _between(chunk, "page shows:\n", "\nthe code printed:") or ""
            printed = (_between(chunk, "the code printed:\n", None) or "").split("\n")
            warned = [x.removeprefix(WARNED).removesuffix(")") for x in printed if x.startswith(WARNED)]
            printed = "\n".join(x for x in printed if not x.startswith(WARNED)).strip("\n")
            entry |= {"kind": "differs", "shown": shown, "printed": printed, "why": why_differs(shown, printed)}
            entry |= {"warnings": warned} if warned else {}
        else:
            entry |= {"kind": "other", "text": chunk.lstrip(": ").strip()}
        found.append(entry)
    if not found:
        found.append({"kind": "other", "text": message.strip()})
    return found


def changed_lines(shown: str, printed: str) -> tuple[list[str], list[str]]:
    diff = list(difflib.ndiff(shown.splitlines(), printed.splitlines()))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


def why_differs(shown: str, printed: str) -> str:
    """A first reading of a difference, for the report (the lines themselves are shown beside it)."""
    gone, new = changed_lines(shown, printed)
    if not gone and not new:
        return "whitespace only"
    errors = [set(ERROR_NAME.findall("\n".join(lines))) for lines in (gone, new)]
    if errors[0] and errors[1]:
        return "the same error, in other words" if errors[0] == errors[1] else "another type of error"
    if any(VERSION.search(x) for x in gone) and \
            [VERSION.sub("#", x) for x in gone] == [VERSION.sub("#", x) for x in new]:
        return "other version numbers"
    if not gone and all("Warning" in x or x.startswith(" ") for x in new) and any("Warning" in x for x in new):
        return "a warning printed in the block's output"
    if len(gone) == len(new) and all(NUMBER.sub("#", a) == NUMBER.sub("#", b) for a, b in zip(gone, new)):
        return "other numbers"
    return "other text"


def summarize(results: dict, details: dict, timed_out: bool = False, timeout_s: float = 0) -> dict:
    tests = results["tests"]
    counts = {k: sum(t["outcome"] == k for t in tests) for k in OUTCOMES}
    failures = [{"id": t["id"], "outcome": t["outcome"], "message": details.get(t["id"], t["message"])}
                for t in sorted(tests, key=lambda t: t["id"]) if t["outcome"] in ("failed", "error")]
    for f in failures:
        if f["id"].startswith("docs/"):
            f["blocks"] = page_blocks(f["message"])
    out = {"status": "timed-out" if timed_out else "ran", "counts": counts,
           "pages": sum(t["id"].startswith("docs/") for t in tests), "failures": failures}
    if timed_out:
        out["reason"] = f"stopped at the wall-clock limit ({timeout_s:.0f} s); the counts are what had finished"
    return out


# --- the report --------------------------------------------------------------------------------------
def merge(old: dict | None, entries: list[dict], facts: dict) -> dict:
    by_release = {e["release"]: e for e in (old or {}).get("releases", [])}
    by_release.update({e["release"]: e for e in entries})
    return facts | {"releases": sorted(by_release.values(), key=lambda e: version_key(e["release"]))}


def result_words(entry: dict, lang: str) -> str:
    c = entry.get("counts")
    if entry.get("status") in ("ran", "timed-out") and c:
        passed, failed = c["passed"] + c["xfailed"], c["failed"] + c["error"]
        text = f"{passed} 通过 · {failed} 失败" if lang == "zh" else f"{passed} passed · {failed} failed"
        if entry["status"] == "timed-out":
            text += "（超时）" if lang == "zh" else " (timed out)"
        return text
    return {"zh": "未能安装或导入", "en": "could not be installed or imported"}[lang]


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _code(value) -> str:
    return f"`{value}`" if value else "—"


def render_summary(report: dict, lang: str) -> str:
    """The release x passed/failed table, one per language (a page includes its own)."""
    head = {"zh": "| `torch` | `torchvision` | `numpy` | 结果 |",
            "en": "| torch | torchvision | NumPy | Result |"}[lang]
    pin = {"zh": "（固定版本）", "en": " (pinned)"}[lang]
    rows = []
    for e in report["releases"]:
        v = e.get("versions", {})
        torch = _code(e["release"]) + (pin if e["release"] == report.get("pinned_torch") else "")
        rows.append(f"| {torch} | {_code(v.get('torchvision'))} | {_code(v.get('numpy'))} | {result_words(e, lang)} |")
    return ("<!-- generated by `make matrix` (tools/matrix.py) from generated/matrix.json -->\n\n"
            f"{head}\n| --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")


def _fence(text: str, lang: str = "text") -> list[str]:
    ticks = "````" if "```" in text else "```"
    return [f"{ticks}{lang}", *text.splitlines(), ticks]


def _block_lines(block: dict) -> list[str]:
    where = f"line {block['line']} ({block['section'] or 'top'})" if "line" in block else "the page"
    if block["kind"] == "differs":
        gone, new = changed_lines(block["shown"], block["printed"])
        diff = [f"- {x}" for x in gone] + [f"+ {x}" for x in new]
        warned = [f"  (and a warning, not part of the output: `{w}`)" for w in block.get("warnings", [])]
        return [f"- {where}: the output differs: {block['why']} (`-` the page, `+` this torch)", "",
                *("  " + x for x in _fence("\n".join(diff) or "(whitespace)", "diff")), "", *warned]
    if block["kind"] == "raised":
        return [f"- {where}: raised `{block['error']}`", ""]
    return [f"- {where}:", "", *("  " + x for x in _fence(block["text"])), ""]


def short(message: str, most: int = 25) -> str:
    """A test's failure for the report: pytest's `E` lines when it has them, at most `most` lines."""
    lines = message.strip().splitlines()
    lines = [x[1:].strip() for x in lines if x.startswith("E ")] or lines
    return "\n".join(lines[:most] + (["…"] if len(lines) > most else []))


def _same_blocks(a: list[dict], b: list[dict]) -> bool:
    strip = lambda blocks: [{k: v for k, v in x.items() if k not in ("line", "section")} for x in blocks]  # noqa: E731
    return strip(a) == strip(b)


def render_release(e: dict) -> list[str]:
    v = e.get("versions", {})
    lines = [f"## torch {e['release']}", ""]
    facts = [("torch", f"{v.get('torch') or '—'}" + (f" (a CUDA {v['cuda_build']} build, run on CPU)"
                                                     if v.get("cuda_build") else "")),
             ("torchvision", v.get("torchvision") or f"— (asked for {e['torchvision_spec']})"),
             ("NumPy", v.get("numpy") or "—"), ("Python", v.get("python") or "—"),
             ("install", f"{e['install_s']} s; venv {e['venv_mb'] / 1024:.1f} GiB (removed after the run); "
                         f"{e['downloaded_mb'] / 1024:.1f} GiB new in the wheel folder"),
             ("tests", f"{e['tests_s']} s" if "tests_s" in e else "—")]
    if e.get("counts"):
        c = e["counts"]
        facts.append(("result", f"{c['passed']} passed, {c['xfailed']} xfailed, {c['skipped']} skipped, "
                                f"{c['failed']} failed, {c['error']} errors ({e['pages']} page items)"))
    if e.get("reason"):
        facts.append(("note", e["reason"]))
    lines += ["| | |", "| --- | --- |", *(f"| {k} | {_cell(x)} |" for k, x in facts), ""]
    failures = e.get("failures", [])
    if e.get("counts") and not failures:
        lines += ["Every page and every claim test passed.", ""]
    shown: dict[str, list[dict]] = {}
    said: dict[str, str] = {}
    for f in failures:
        if "blocks" in f:
            page = f["id"].split("::")[0]
            other = page.replace("docs/zh/", "docs/en/")
            if other != page and other in shown and _same_blocks(shown[other], f["blocks"]):
                lines += [f"### `{page}`", "", f"The same blocks as `{other}` (its own lines: "
                          + ", ".join(str(b.get("line")) for b in f["blocks"]) + ").", ""]
                continue
            shown[page] = f["blocks"]
            lines += [f"### `{page}`", ""]
            for block in f["blocks"]:
                lines += _block_lines(block)
        elif f["message"] in said:
            lines += [f"### `{f['id']}` ({f['outcome']})", "", f"The same message as `{said[f['message']]}`.", ""]
        else:
            said[f["message"]] = f["id"]
            lines += [f"### `{f['id']}` ({f['outcome']})", "", *_fence(short(f["message"])), ""]
    return lines


def render_md(report: dict) -> str:
    en = render_summary(report, "en").split("\n", 2)[2]
    lines = ["# The pages under other torch releases, on CPU", "",
             "<!-- generated by `make matrix` (tools/matrix.py) from generated/matrix.json; do not edit -->", "",
             f"Last run {report['date']} on {report['machine']}, Python {report['python']}, commit "
             f"{report['commit']}. Each release ran in its own fresh venv: torch and torchvision from PyPI, the "
             f"other packages at requirements.txt's pins. One pytest session each: every page's blocks in order "
             f"(as `make test` runs them) and every claim test, `-m \"{MARKS}\"`, without the modules that test "
             f"the site build or drive a browser ({', '.join(f'`{p}`' for p in LEFT_OUT)}) and the tests that read "
             f"a built site. Page outputs are compared by `pagekit.compare`: exactly on the pinned torch "
             f"{report.get('pinned_torch')}, elsewhere by its rules for other machines.", "",
             "## Summary", "", en.rstrip("\n"), ""]
    for e in report["releases"]:
        lines += render_release(e)
    return "\n".join(lines).rstrip("\n") + "\n"


def write(report: dict, out: Path = GENERATED) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    for f in (f for e in report["releases"] for f in e.get("failures", []) if f["id"].startswith("docs/")):
        f["blocks"] = page_blocks(f["message"])  # read again: --render after a change to the reading
    files = {out / "matrix.json": json.dumps(report, indent=1, ensure_ascii=False) + "\n",
             out / "matrix.md": render_md(report)}
    files |= {out / f"matrix-summary.{lang}.md": render_summary(report, lang) for lang in LANGS}
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return list(files)


def facts(python: str, argv: list[str]) -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {"date": datetime.date.today().isoformat(), "commit": commit.stdout.strip() or "unknown",
            "python": subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                                     capture_output=True, text=True).stdout.strip(),
            "machine": f"{platform.machine()} Linux, {os.cpu_count()} CPU cores, no GPU",
            "pinned_torch": pins().get("torch"), "command": shlex.join(["python3.11", "-m", "tools.matrix", *argv])}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python3.11 -m tools.matrix", description=__doc__.split("\n\n")[0])
    p.add_argument("releases", nargs="*", help=f"torch releases (default: {' '.join(RELEASES)})")
    p.add_argument("--python", default="python3.11", help="the interpreter each venv is made with")
    p.add_argument("--timeout-s", type=float, default=2400, help="wall-clock limit of each release's tests")
    p.add_argument("--keep-venv", action="store_true", help="keep each venv (.cache/matrix/venv-<torch>)")
    p.add_argument("--out", type=Path, default=GENERATED)
    p.add_argument("--render", action="store_true", help="only rewrite the Markdown from matrix.json")
    args = p.parse_args(argv)
    old_path = args.out / "matrix.json"
    old = json.loads(old_path.read_text(encoding="utf-8")) if old_path.exists() else None
    if args.render:
        if old is None:
            print(f"{old_path} is missing: run `make matrix` first", file=sys.stderr)
            return 2
        for path in write(old, args.out):
            print(f"wrote {path}")
        return 0
    try:
        releases = parse_releases(args.releases or list(RELEASES), pins())
    except ValueError as exc:
        print(f"matrix: {exc}", file=sys.stderr)
        return 2
    WHEELS.mkdir(parents=True, exist_ok=True)
    entries, rc = [], 0
    for release in releases:
        entry = run_release(release, args.python, args.timeout_s, args.keep_venv)
        entries.append(entry)
        report = merge(old, entries, facts(args.python, argv))  # written after each release
        write(report, args.out)
        print(f"[torch {release.torch}] {entry['status']}: {result_words(entry, 'en')}"
              + (f" — {entry['reason']}" if entry.get("reason") else ""), flush=True)
        rc = rc or int(entry["status"] != "ran" or bool(entry.get("failures")))
    print(f"wrote {', '.join(map(str, write(report, args.out)))}; "
          f"wheel folder {WHEELS.relative_to(ROOT)}: {size_mb(WHEELS) / 1024:.1f} GiB")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
