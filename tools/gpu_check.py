"""Verify the site on a CUDA machine: `make gpu-check`, or `python3 -m tools.gpu_check`.

It uses the machine's own python3 and torch (any recent torch 2.x, not requirements.txt's pin):

1. refuses (exit 2) where torch sees no CUDA device: a GPU report from a CPU run would be
   false, and `make test` is the CPU check;
2. installs the test and docs packages that python3 lacks (pytest, mkdocs, pymdown-extensions…)
   from a folder of wheels, with `pip install --no-index --target .cache/gpu-check/site-packages`:
   nothing of the system's Python changes, torch least of all (exit 3 if something is still missing);
3. runs every test marked `cuda` under tests/ (`pytest tests -m cuda`), then every block shown
   on the site (`pytest docs`), each block as a reader runs it;
4. writes generated/gpu-report.json, then generated/gpu-report.md and generated/verified.{zh,en}.md
   (pagekit/reports.py); exits 1 if any test failed.

    python3 -m tools.gpu_check [--wheels DIR]    # DIR defaults to .whl/ when it exists
    python -m tools.gpu_check --download-wheels .whl --python-version 3.12.3  # where there is network
    python -m tools.gpu_check --reset            # the 'not yet run on a GPU' report
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pagekit import reports

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WHEELS = ROOT / ".whl"
TARGET = ROOT / ".cache" / "gpu-check" / "site-packages"
RESULTS = ROOT / ".cache" / "gpu-check"   # <session>.json: each pytest session's outcomes
# Test modules that test the site build, not torch: they import what the build needs (nbformat,
# mkdocs-jupyter, tinycss2), which the GPU machine lacks, and mark nothing `cuda` (tested).
SITE_BUILD_TESTS = ("tests/test_labs.py", "tests/test_notebook_css.py", "tests/test_pages.py")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
NEVER_INSTALLED = ("torch", "torchvision", "triton", "nvidia")  # must stay the system's own


class NoGPU(RuntimeError):
    """torch is missing or sees no CUDA device."""


@dataclass(frozen=True)
class Need:
    dist: str     # the name pip knows
    module: str   # what the tests import
    why: str
    kind: str     # "pure": fetched by --download-wheels; "compiled": from DIR only if put there;
    #               "torch-matched": never installed here, it must match the system's torch


NEEDS = (
    Need("pytest", "pytest", "runs the tests", "pure"),
    Need("pytest-timeout", "pytest_timeout", "pyproject.toml sets a per-test `timeout`", "pure"),
    Need("PyYAML", "yaml", "reads mkdocs.yml", "pure"),
    Need("Markdown", "markdown", "expands the pages' includes", "pure"),
    Need("pymdown-extensions", "pymdownx", "pymdownx.snippets expands the pages' includes", "pure"),
    Need("setuptools", "setuptools", "torch.utils.benchmark and torch.compile on CPU import it "
         "(torch 2.6 on Python 3.11 does not install it)", "pure"),
    Need("numpy", "numpy", "page blocks and tests use NumPy arrays", "compiled"),
    Need("pillow", "PIL", "the data chapter writes and reads PNG files", "compiled"),
    Need("safetensors", "safetensors", "the saving chapter saves and loads .safetensors files", "compiled"),
    Need("psutil", "psutil", "the saving chapter measures resident memory", "compiled"),
    Need("matplotlib", "matplotlib", "page blocks draw figures", "compiled"),
    Need("scikit-learn", "sklearn", "the real digits data set (load_digits)", "compiled"),
    Need("torchvision", "torchvision", "datasets and transforms", "torch-matched"),
)


def find_missing(needs=NEEDS, find_spec=importlib.util.find_spec) -> list[Need]:
    """The needs whose module cannot be imported here."""
    missing = []
    for need in needs:
        try:
            found = find_spec(need.module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(need)
    return missing


def missing_message(missing: list[Need], python: str, wheels: Path | None) -> str:
    lines = [f"missing for {python}:"]
    for need in missing:
        where = "" if need.kind != "torch-matched" else (
            " — install the release built for this machine's torch; this command never installs it")
        lines.append(f"  - {need.dist} (import {need.module}): {need.why}{where}")
    fetchable = [n for n in missing if n.kind != "torch-matched"]
    if fetchable:
        looked = f"no wheel for them in {wheels}" if wheels else "no wheels folder given (--wheels DIR, or .whl/)"
        version = platform.python_version()
        lines += [f"{looked}. On a machine with network, fetch wheels for this Python ({version}):",
                  f"  python -m tools.gpu_check --download-wheels .whl --python-version {version}"]
        if any(n.kind == "compiled" for n in fetchable):
            names = " ".join(n.dist for n in fetchable if n.kind == "compiled")
            lines.append(f"  (the compiled ones are not fetched by default: add --with {names.replace(' ', ' --with ')})")
        lines.append("then copy .whl/ into this checkout and run `make gpu-check` again (or WHEELS=DIR).")
    return "\n".join(lines)


def wheels_to_install(wheels: Path) -> list[Path]:
    """The folder's wheels for distributions this interpreter does not have. What it has stays
    its own (NumPy built for its torch, say), and torch's family never comes from the folder."""
    chosen = {}
    for path in sorted(wheels.glob("*.whl")):
        dist = path.name.split("-")[0]
        if dist.lower().replace("_", "-") in NEVER_INSTALLED or dist.lower().startswith("nvidia"):
            continue
        if dist_version(dist) is None:
            chosen[dist.lower()] = path
    return list(chosen.values())


def install(missing: list[Need], wheels: Path, target: Path = TARGET) -> list[str]:
    """Install the folder's wheels that this interpreter lacks into `target`, each as it is
    (`--no-deps`: pip would otherwise want wheels for what the system already has, and could
    replace it); whether that covers every need is checked afterwards by importing them."""
    if not wheels.is_dir():
        raise FileNotFoundError(f"wheels folder {wheels} does not exist; pass --wheels DIR with .whl files in it")
    if not [n for n in missing if n.kind != "torch-matched"]:
        return []
    files = wheels_to_install(wheels)
    if not files:
        raise RuntimeError(f"{wheels} holds no wheel for a package this interpreter lacks")
    target.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "install", "--isolated", "--no-index", "--no-deps", "--target", str(target),
           "--upgrade", "--no-compile", "--disable-pip-version-check", "-q", *map(str, files)]
    print("+", shlex.join(cmd), flush=True)
    done = subprocess.run(cmd)
    if done.returncode:
        raise RuntimeError(f"pip could not install the wheels in {wheels} (exit {done.returncode})")
    return [f.name.split("-")[0] for f in files]


def download_wheels(dest: Path, python_version: str, extra: list[str], platforms=PLATFORMS) -> int:
    """Fetch the pure-Python test and docs stack (requirements.txt's pins) for a GPU machine."""
    pinned = reports.pins(reports.REQUIREMENTS.read_text(encoding="utf-8"))
    wanted = [n.dist for n in NEEDS if n.kind == "pure"] + list(extra)
    bad = [name for name in wanted if name.lower() in NEVER_INSTALLED]
    if bad:
        print(f"refusing to fetch {', '.join(bad)}: the GPU machine must use its own torch build", file=sys.stderr)
        return 2
    specs = [f"{name}=={pinned[name.lower()]}" if name.lower() in pinned else name for name in wanted]
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--python-version", python_version,
           "--implementation", "cp", "--disable-pip-version-check", "-q", "-d", str(dest),
           *(arg for tag in platforms for arg in ("--platform", tag))]
    print("+", shlex.join(cmd + specs), flush=True)
    rc = subprocess.run(cmd + specs).returncode
    if rc == 0:
        print(f"wheels for Python {python_version} in {dest}/; on the GPU machine: make gpu-check WHEELS={dest}")
    return rc


def gpu_facts() -> dict:
    """Versions and GPUs, or NoGPU with a message that says what was found."""
    try:
        import torch
    except ImportError as exc:
        raise NoGPU(f"torch cannot be imported by {sys.executable} ({exc}). Run this with the python3 "
                    "that has a CUDA build of torch (make gpu-check GPU_PYTHON=/path/to/python3).") from exc
    if not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        hint = f"; CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
        raise NoGPU(f"no CUDA device: torch {torch.__version__} ({build}) on {sys.executable} sees no GPU{hint}. "
                    "Refusing to write a GPU report from a CPU run; on a CPU machine `make test` is the check.")
    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    gpus = [{"name": p.name, "capability": f"{p.major}.{p.minor}",
             "memory_gib": round(p.total_memory / 2**30, 1)} for p in props]
    return cpu_facts() | {"cudnn": cudnn_version(torch.backends.cudnn.version()),
                          "driver": driver_version(), "gpus": gpus}


def cpu_facts() -> dict:
    """The machine's facts without its GPUs: gpu_facts adds those; alone, on a machine without a GPU,
    for the test of the procedure."""
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": None, "driver": None, "torchvision": dist_version("torchvision"), "gpus": []}


def cudnn_version(code: int | None) -> str | None:
    """91002 -> '9.10.2' (cuDNN 9 encoding), 8907 -> '8.9.7' (cuDNN 8)."""
    if not code:
        return None
    if code >= 90000:
        return f"{code // 10000}.{code % 10000 // 100}.{code % 100}"
    return f"{code // 1000}.{code % 1000 // 100}.{code % 100}"


def driver_version() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True)
    first = out.stdout.strip().splitlines()[:1]
    return first[0].strip() if out.returncode == 0 and first else None


def dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    if not (ROOT / ".git").exists() or not shutil.which("git"):
        return None
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty else "")


def pytest_command(args: list[str], results: Path) -> list[str]:
    """One pytest session; system plugins stay off (only pytest-timeout, which pyproject needs)."""
    return [sys.executable, "-m", "pytest", *args, "-p", "pytest_timeout", "-p", "tools.gpu_results",
            "--gpu-results", str(results), "-rfEs"]


def pytest_commands(results: Path, pages: list[str] | None = None) -> dict[Path, list[str]]:
    """gpu-check's pytest sessions, by the file each writes: the tests marked `cuda`, then every
    page's blocks, or only `pages` (two sessions: `-m` applies to a whole session)."""
    leave_out = [arg for path in SITE_BUILD_TESTS for arg in ("--ignore", path)]
    sessions = {"tests": ["tests", "-m", "cuda", *leave_out], "docs": list(pages or ["docs"])}
    return {results / f"{name}.json": pytest_command(args, results / f"{name}.json") for name, args in sessions.items()}


def pytest_env(target: Path = TARGET) -> dict[str, str]:
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", NO_MKDOCS_2_WARNING="1", PYTHONUNBUFFERED="1")
    if target.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))
    return env


def target_dists(target: Path = TARGET) -> list[str]:
    """'name version' of each distribution in the private folder (all of it is on PYTHONPATH)."""
    if not target.is_dir():
        return []
    found = (importlib.metadata.Distribution.at(p) for p in target.glob("*.dist-info"))
    return sorted(f"{d.metadata['Name']} {d.version}" for d in found)


def build_report(facts: dict, results: dict, command: str, from_wheels: list[str], commit: str | None = None) -> dict:
    now = datetime.datetime.now(datetime.timezone.utc)
    packages = {n.dist: dist_version(n.dist) for n in NEEDS if n.kind != "torch-matched"}
    tests = sorted(results["tests"], key=lambda t: t["id"])
    blocks = sum(t["id"].startswith("docs/") for t in tests)
    selection = (f"{len(tests) - blocks} tests marked `cuda` (tests/) and {blocks} code blocks shown on the site "
                 "(docs/), each run as a reader runs it")
    return {"status": "ran", "date": now.strftime("%Y-%m-%d"), "finished": now.strftime("%Y-%m-%d %H:%M UTC"),
            **facts, "packages": packages, "from_wheels": from_wheels, "commit": commit or git_commit(),
            "command": command, "selection": selection, "exitstatus": results["exitstatus"],
            "counts": reports.counts(tests), "tests": tests}


def write_report(report: dict, gen_dir: Path = reports.GENERATED) -> list[Path]:
    gen_dir.mkdir(parents=True, exist_ok=True)
    path = gen_dir / reports.REPORT_JSON
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return [path, *reports.write(gen_dir)]


def run_check(wheels: Path | None, gen_dir: Path, command: str, commit: str | None = None,
              pages: list[str] | None = None, cpu: bool = False) -> int:
    try:
        facts = gpu_facts()
    except NoGPU as exc:
        if not cpu:
            print(f"gpu-check: {exc}", file=sys.stderr)
            return 2
        facts = cpu_facts()  # tests/test_gpu_check.py: the procedure on a CPU, report to a temporary folder
    print(f"gpu-check: {len(facts['gpus'])} GPU(s): {', '.join(g['name'] for g in facts['gpus'])}; "
          f"torch {facts['torch']}, CUDA {facts['cuda']}, Python {facts['python']}", flush=True)
    if TARGET.is_dir():
        sys.path.insert(0, str(TARGET))
        importlib.invalidate_caches()
    missing = find_missing()
    if missing and wheels is not None:
        try:
            install(missing, wheels)
        except (FileNotFoundError, RuntimeError) as exc:
            print(f"gpu-check: {exc}", file=sys.stderr)
            return 3
        if str(TARGET) not in sys.path:
            sys.path.insert(0, str(TARGET))
        importlib.invalidate_caches()
        missing = find_missing()
    if missing:
        print("gpu-check: " + missing_message(missing, sys.executable, wheels), file=sys.stderr)
        return 3
    sessions, rc = [], 0
    for path, cmd in pytest_commands(RESULTS, pages).items():
        path.unlink(missing_ok=True)
        print("+", shlex.join(cmd), flush=True)
        rc = max(rc, subprocess.run(cmd, cwd=ROOT, env=pytest_env()).returncode)
        if not path.exists():
            print(f"gpu-check: pytest exited {rc} without writing {path}; no report written", file=sys.stderr)
            return rc or 1
        sessions.append(json.loads(path.read_text(encoding="utf-8")))
    results = {"exitstatus": max(s["exitstatus"] for s in sessions), "tests": [t for s in sessions for t in s["tests"]]}
    report = build_report(facts, results, command, target_dists(), commit)
    for path in write_report(report, gen_dir):
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    c = report["counts"]
    print(f"gpu-check: {c['passed']} passed, {c['failed']} failed, {c['error']} errors, "
          f"{c['skipped']} skipped, {c['xfailed']} xfailed")
    ok = rc == 0 and c["failed"] == 0 and c["error"] == 0
    return 0 if ok else 1


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python3 -m tools.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--wheels", type=Path, help="folder of wheels for the missing test/docs packages "
                   f"(default: {DEFAULT_WHEELS.name}/ when it exists)")
    p.add_argument("--out", type=Path, default=reports.GENERATED, help="where the reports go (default: generated/)")
    p.add_argument("--download-wheels", type=Path, metavar="DIR",
                   help="instead of checking: fetch the pure-Python test/docs wheels into DIR (needs network)")
    p.add_argument("--python-version", default=platform.python_version(),
                   help="with --download-wheels: the GPU machine's full Python version, e.g. 3.12.3 "
                   "(`python3 --version` there; default: this one's)")
    p.add_argument("--with", dest="extra", action="append", default=[], metavar="DIST",
                   help="with --download-wheels: fetch DIST too (e.g. scikit-learn); repeatable")
    p.add_argument("--commit", help="the commit checked, where the checkout has no .git (default: git's HEAD)")
    p.add_argument("--reset", action="store_true", help="write the 'not yet run on a GPU' report and exit")
    p.add_argument("--pages", nargs="+", metavar="PAGE", help="run only these pages (default: every page under docs/)")
    p.add_argument("--test-on-cpu", action="store_true", help=argparse.SUPPRESS)  # tests only: no GPU refusal
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.download_wheels:
        return download_wheels(args.download_wheels, args.python_version, args.extra)
    if args.reset:
        for path in write_report(dict(reports.NOT_RUN), args.out):
            print(f"wrote {path}")
        return 0
    wheels = args.wheels or (DEFAULT_WHEELS if DEFAULT_WHEELS.is_dir() else None)
    command = " ".join(["python3 -m tools.gpu_check", shlex.join(argv)]).strip()
    if args.test_on_cpu and args.out.resolve() == reports.GENERATED.resolve():
        print("gpu-check: --test-on-cpu writes its report elsewhere (--out DIR)", file=sys.stderr)
        return 2
    return run_check(wheels, args.out, command, args.commit, args.pages, args.test_on_cpu)


if __name__ == "__main__":
    raise SystemExit(main())
