"""Run downloads as a reader runs them, several at a time, paying for `import torch` once.

    python tests/plain_run.py RESULTS.json FILE [FILE ...]

A FILE.py runs as `python FILE` does; a FILE.ipynb runs its code cells in order in one
namespace, as Jupyter's "Run all" does (a cell tagged `raises-exception` may fail and the
run goes on), with tools.shown_code.run_program, the runner of the pages' blocks.
Each FILE should sit alone in its own empty folder. This process imports the heavy
libraries the files import anyway (torch, torchvision, scikit-learn, matplotlib), then
forks one child per file, two at a time. A child works as a fresh `python FILE` would:
the file's folder is the working directory and sys.path[0], the file runs as __main__,
argv is [FILE], and stdout/stderr go to FILE.out / FILE.err. Nothing else is on sys.path
(run this with the project's interpreter, cwd outside the repository, and no PYTHONPATH;
the repository is on the path only while this process imports the runner), so a file that
imports the project's `snippets` package fails as it would for a reader.
Results: {file: {"returncode": int, "seconds": float}}.
"""
from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import time
import traceback
from pathlib import Path

_REPO = str(Path(__file__).resolve().parents[1])
sys.path.insert(0, _REPO)
import nbformat  # noqa: E402

from tools.chapter_export import notebook_blocks  # noqa: E402
from tools.shown_code import run_program  # noqa: E402

sys.path.remove(_REPO)
for _name in [m for m in sys.modules if m == "tools" or m.startswith("tools.")]:
    del sys.modules[_name]  # the runner stays loaded; a file cannot import the repo's tools

PARALLEL = 2
TIMEOUT_S = 240


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
    nb = nbformat.read(path, as_version=4)
    for result in run_program(notebook_blocks(nb), Path(path).parent, name=Path(path).name):
        sys.stdout.write(result.output)
        if result.block.must_fail and result.error is None:
            raise SystemExit(f"cell {result.block.lineno} is tagged raises-exception but ran without error")
        if result.error is not None and not result.failed_as_it_must:
            raise result.error


def run_all(paths: list[str]) -> dict[str, dict]:
    import matplotlib
    import numpy  # noqa: F401
    import sklearn.datasets  # noqa: F401
    import torch  # noqa: F401  (imported, not used: no thread pool or CUDA before fork)
    import torchvision  # noqa: F401

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    results, running, waiting = {}, {}, list(paths)
    while waiting or running:
        while waiting and len(running) < PARALLEL:
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
    with open(target, "w") as f:
        json.dump(run_all(files), f, indent=1)
