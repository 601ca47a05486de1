"""Run files as a reader runs them, in a fresh interpreter, paying for `import torch` once.

    python tests/plain_run.py RESULTS.json [--parallel N] FILE [FILE ...]

A FILE.py runs as `python FILE` does; a FILE.ipynb runs its code cells in order in one
namespace, as Jupyter's "Run all" does (a cell tagged `raises-exception` may fail and the
run goes on); a FILE.json is a page's program (tools.chapter_export.script_program: its
blocks as its script holds them) and runs the same way in the empty folder FILE.run/, each block's result
going to FILE.results.json. Notebooks and pages run with tools.shown_code.run_program, the
runner of the pages' blocks.

Each FILE should sit alone in its own empty folder. This process imports the heavy
libraries the files import (torch, torchvision, scikit-learn, matplotlib: those a file
names), then forks one child per file, N at a time (default 2). A child works as a fresh
`python FILE` would: the file's folder is the working directory and sys.path[0], the file
runs as __main__, argv is [FILE], and stdout/stderr go to FILE.out / FILE.err. Nothing else
is on sys.path (run this with the project's interpreter, cwd outside the repository, and no
PYTHONPATH; the repository is on the path only while this process imports the runner), so
a file that imports the project's `snippets` package fails as it would for a reader.
Results: {file: {"returncode": int, "seconds": float}}.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import re
import runpy
import signal
import sys
import time
import traceback
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[1])
TIMEOUT_S = 240
PRELOAD = ("numpy", "torch", "torchvision", "sklearn.datasets", "matplotlib.pyplot")


def _child(path: str) -> None:
    folder = os.path.dirname(path)
    with open(path + ".out", "wb") as out, open(path + ".err", "wb") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
    code = 0
    try:
        os.chdir(folder)
        sys.argv = [path]
        sys.path[0] = folder
        if path.endswith(".ipynb"):
            _run_notebook(path)
        elif path.endswith(".json"):
            _run_program(path)
        else:
            runpy.run_path(path, run_name="__main__")
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if not isinstance(done.code, (int, type(None))):
            print(done.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run_notebook(path: str) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for result in run_program(notebook_blocks(nb), Path(path).parent, name=Path(path).name):
        sys.stdout.write(result.output)
        if result.block.must_fail and result.error is None:
            raise SystemExit(f"cell {result.block.lineno} is tagged raises-exception but ran without error")
        if result.error is not None and not result.failed_as_it_must:
            raise result.error


def _run_program(path: str) -> None:
    """A page's blocks in the empty folder FILE.run/; each block's result to FILE.results.json."""
    folder = Path(path[: -len(".json")] + ".run")
    folder.mkdir()
    os.chdir(folder)
    sys.path[0] = str(folder)
    blocks = program_blocks(Path(path))
    # Worker processes start by spawn, as on Windows and macOS: each imports the script it was
    # started from, so the script is on disk, as the page's download holds it.
    multiprocessing.set_start_method("spawn", force=True)
    import torch

    cuda = torch.cuda.is_available()
    script = folder / f"{folder.stem}.py"
    script.write_text("\n\n".join(b.source for b in blocks if not skip_reason(b, cuda=cuda)), encoding="utf-8")
    records = []
    try:
        for result in run_program(blocks, folder, name=script.name, cuda=cuda):
            records.append(record(result))
            sys.stdout.write(result.output)
    finally:
        Path(path[: -len(".json")] + ".results.json").write_text(json.dumps(records, ensure_ascii=False))


def _preload(paths: list[str]) -> None:
    """Import, before forking, the heavy libraries the files import (not used: no thread pool
    or CUDA before fork), so each child starts with them loaded."""
    text = "\n".join(Path(p).read_text(encoding="utf-8", errors="replace") for p in paths)
    if any(p.endswith(".ipynb") for p in paths):
        import nbformat  # noqa: F401
    for name in PRELOAD:
        top = name.split(".")[0]
        if re.search(rf"\b(import|from) {top}\b", text):
            __import__(name)
            if top == "matplotlib":
                import matplotlib
                matplotlib.use("Agg")


def run_all(paths: list[str], parallel: int = 2) -> dict[str, dict]:
    _preload(paths)
    results, running, waiting = {}, {}, list(paths)
    while waiting or running:
        while waiting and len(running) < parallel:
            path = waiting.pop(0)
            pid = os.fork()
            if pid == 0:
                _child(path)
            running[pid] = (path, time.perf_counter())
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:  # none finished yet: stop any that ran too long, then look again
            for other, (_, other_start) in running.items():
                if time.perf_counter() - other_start > TIMEOUT_S:
                    os.kill(other, signal.SIGKILL)
            time.sleep(0.05)
            continue
        path, start = running.pop(pid)
        results[path] = {"returncode": os.waitstatus_to_exitcode(status),
                         "seconds": round(time.perf_counter() - start, 2)}
    return results


if __name__ == "__main__":
    target, *files = sys.argv[1:]
    parallel = 2
    if files[:1] == ["--parallel"]:
        parallel, files = int(files[1]), files[2:]
    sys.path.insert(0, _REPO)  # the runner is loaded while the repository is on the path, then it goes
    from tools.chapter_export import notebook_blocks
    from tools.shown_code import program_blocks, record, run_program, skip_reason

    sys.path.remove(_REPO)
    for _name in [m for m in sys.modules if m == "tools" or m.startswith("tools.")]:
        del sys.modules[_name]  # the runner stays loaded; a file cannot import the repo's tools
    results = run_all(files, parallel)
    with open(target, "w") as f:
        json.dump(results, f, indent=1)
