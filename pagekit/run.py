"""Run a page's program as a reader runs it: a fresh interpreter, an empty folder, the repository off the
path; the one way every page runs (CONTRIBUTING.md, "The page engine").

    python -m pagekit.run RESULTS.json [--parallel N] [--virtual-cuda] FILE [FILE ...]

FILE.json is a page's program (`program_file`), run block by block as `__main__` in FILE.run/, each block's
result to FILE.results.json; FILE.ipynb runs its code cells as Jupyter's "Run all" does; FILE.py as
`python FILE`. This process imports the heavy libraries the files import, then forks one child per file,
N at a time; a child works as a fresh `python FILE` would (its folder the working directory and sys.path[0],
stdout/stderr to FILE.out / FILE.err), and a page's worker processes import its script again, as spawn does.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import multiprocessing
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from pagekit.page import Block, Mark, exception_type, expand, python_blocks
from pagekit.project import ROOT, engine_sources

TIMEOUT_S = 600  # a page whose workers start by spawn takes minutes on a loaded 2-core machine
PRELOAD = ("numpy", "torch", "torchvision", "sklearn.datasets", "matplotlib.pyplot")


@dataclass
class Result:
    block: Block
    output: str = ""                      # what the block printed (and, if it failed, `Type: message`)
    error: BaseException | None = None    # the exception it raised, if any
    skipped: str | None = None            # why it did not run
    failed_as_it_must: bool = False       # it raised the error it is marked to raise
    warnings: list[str] = field(default_factory=list)  # `Category: message`, kept apart from output
    holds: bool | None = None             # a varies mark's `holds=`, evaluated after the block
    violations: list[dict] = field(default_factory=list)  # under the virtual GPU: what a GPU refuses
    made_on_cuda: int = 0                 # ... and how many tensors the block put on the GPU


class ProgramError(Exception):
    """An error a page raised in the process that ran it: its `Type: message` and traceback."""


def skip_reason(block: Block, *, cuda: bool) -> str | None:
    """Why a block is not run here (None: run it)."""
    if block.mark("skip"):
        return block.mark("skip").reason
    if block.mark("cuda") and not cuda:
        return "needs a CUDA GPU (torch.cuda.is_available() is False)"
    return None


def error_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def fresh_main(workdir: Path, filename: str) -> Iterator[types.ModuleType]:
    """A new `__main__` module, with `workdir` as the current folder, restored afterwards."""
    main = types.ModuleType("__main__")  # a fresh script module: pickling and guards work
    main.__file__ = str(Path(workdir) / filename)
    main.__builtins__ = __builtins__
    saved_main, saved_cwd = sys.modules["__main__"], os.getcwd()
    sys.modules["__main__"] = main
    os.chdir(workdir)
    try:
        yield main
    finally:
        sys.modules["__main__"] = saved_main
        os.chdir(saved_cwd)


def run_program(blocks: list[Block], workdir: Path, *, name: str = "page.py",
                cuda: bool | None = None) -> Iterator[Result]:
    """Run Python blocks in order in one namespace; yield each block's result as it finishes.

    A block marked to fail must raise its error (else the result has error=None and the
    caller reports it); any other error stops the program after yielding its result.
    """
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    with fresh_main(workdir, name) as main:
        for block in python_blocks(blocks):
            reason = skip_reason(block, cuda=cuda)
            if reason:
                yield Result(block, skipped=reason)
                continue
            out = io.StringIO()
            result = Result(block)
            try:
                with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    code = block.source if block.expanded else expand(block.source)
                    exec(compile(code, f"{name}:{block.lineno}", "exec"), main.__dict__)
                    varies = block.mark("varies")
                    if varies and varies.holds:
                        result.holds = bool(eval(varies.holds, main.__dict__))
            except Exception as exc:  # noqa: BLE001  (reported to the caller with its real type)
                result.error = exc
                result.failed_as_it_must = bool(block.must_fail
                                                and isinstance(exc, exception_type(block.must_fail)))
                out.write(("" if out.getvalue().endswith("\n") or not out.getvalue() else "\n")
                          + error_line(exc) + "\n")
            result.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
            result.output = out.getvalue()
            yield result
            if result.error is not None and not result.failed_as_it_must:
                return


# --- a page's program, written for the runner and read back ------------------------------------
def program_file(blocks: list[Block], path: Path) -> Path:
    """Write a page's Python blocks as its script runs them (pagekit.export.script_code), one
    entry per block: the page's run is its script's run, block by block."""
    from pagekit.export import block_code, script_code, starts_processes

    spawn = starts_processes(blocks)
    spec = []
    for b in python_blocks(blocks):
        code = script_code(b, spawn)
        spec.append({"source": block_code(b) if code is None else code, "lineno": b.lineno, "section": b.section,
                     "marks": [vars(m) for m in b.marks if m.name != "xfail"]})
    path.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    return path


def program_blocks(path: Path) -> list[Block]:
    return [Block("python", "python", b["source"], b["lineno"], b["lineno"],
                  [Mark(**m) for m in b["marks"]], section=b["section"], expanded=True)
            for b in json.loads(path.read_text(encoding="utf-8"))]


def record(result: Result) -> dict:
    error = result.error
    return {"lineno": result.block.lineno, "section": result.block.section, "output": result.output,
            "skipped": result.skipped, "failed_as_it_must": result.failed_as_it_must,
            "warnings": result.warnings, "holds": result.holds,
            "violations": result.violations, "made_on_cuda": result.made_on_cuda,
            "error": None if error is None else error_line(error),
            "traceback": None if error is None else "".join(traceback.format_exception(error))}


def results_from(records: list[dict], blocks: list[Block]) -> list[Result]:
    """A page's results as run elsewhere, for its own blocks (same code, its own output fences)."""
    blocks = python_blocks(blocks)
    if len(records) > len(blocks):
        raise ValueError(f"{len(records)} results for {len(blocks)} blocks")
    found = []
    for r, block in zip(records, blocks):
        error = None if r["error"] is None else ProgramError(f"{r['error']}\n{r['traceback']}")
        skipped = r["skipped"] and (block.mark("skip").reason if block.mark("skip") else r["skipped"])
        result = Result(block, r["output"], error, skipped or None, r["failed_as_it_must"],
                        r.get("warnings", []), r.get("holds"), r.get("violations", []), r.get("made_on_cuda", 0))
        caught = block.must_fail and error is None and next(
            (line for line in r["output"].split("\n") if line.startswith(f"{block.must_fail.rsplit('.', 1)[-1]}: ")), None)
        if caught:  # the script's try/except caught the error this block must raise, and printed it
            result.error, result.failed_as_it_must = ProgramError(caught), True
        found.append(result)
    return found


# --- the runner process ---------------------------------------------------------------------------
def without_repository(pythonpath: str) -> str:
    """PYTHONPATH less the repository (a reader's program cannot import `snippets` or `tools`);
    other folders stay: packages installed outside the interpreter (make gpu-check's private
    folder, a --target install) are what a reader's machine has."""
    keep = [p for p in pythonpath.split(os.pathsep) if p and Path(p).resolve() != ROOT]
    return os.pathsep.join(keep)


RUN_CACHE = ROOT / ".cache" / "runs"


def run_key(path: Path, virtual_cuda: bool) -> str:
    """What a file's run depends on: the file (a notebook's code cells: its text, with the site's links, does
    not run), the engine that runs it, the interpreter and the installed packages (a file's program makes
    whatever else it reads) and the CPU (`cpu`). Same key, same run."""
    code = path.read_bytes()
    if path.suffix == ".ipynb":
        code = json.dumps([c["source"] for c in json.loads(code)["cells"] if c["cell_type"] == "code"]).encode()
    digest = hashlib.sha256(code)
    digest.update(environment().encode() + repr(virtual_cuda).encode())
    return digest.hexdigest()[:24]


def cpu() -> str:
    """The CPU as torch's kernels see it: its model, its instruction flags (PyTorch picks AVX-512, AVX2 or plain
    kernels by them, and they round differently) and its number of cores (torch's threads)."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0].split("\n")
    except OSError:  # not Linux
        import platform
        first = [platform.machine(), platform.processor()]
    kept = [line for line in first if line.split(":")[0].strip() in ("model name", "flags", "Features")]
    return repr((kept or first, os.cpu_count()))


def reads_back() -> bool:
    """Whether what .cache/runs/ remembers is read back: yes, unless TPN_RUN_CACHE=0 (run everything again)."""
    return os.environ.get("TPN_RUN_CACHE", "1") != "0"


@functools.lru_cache(maxsize=1)
def environment() -> str:
    """What every run here depends on besides its own code: the engine, the interpreter, the installed packages,
    whether a GPU is there and which are visible, and the CPU. Part of every remembered result's key."""
    from importlib.metadata import distributions

    engine = [source.read_bytes() for source in engine_sources()]
    packages = sorted(f"{d.metadata['Name']}=={d.version}" for d in distributions())
    return hashlib.sha256(repr((engine, sys.version, sys.executable, packages, os.path.exists("/dev/nvidiactl"),
                                os.environ.get("CUDA_VISIBLE_DEVICES"), cpu())).encode()).hexdigest()


def _artifacts(path: Path) -> dict[str, Path]:
    """What a run of `path` leaves beside it, by the name the cache keeps it under."""
    found = {"out": Path(f"{path}.out"), "err": Path(f"{path}.err")}
    return found | ({"results": path.with_name(path.stem + ".results.json")} if path.suffix == ".json" else {})


def _left(path: Path, stored: Path, back: bool = False) -> None:
    """A notebook's run (a download, alone in its folder): what it left there, kept (or, `back`, put back)."""
    if path.suffix != ".ipynb":
        return
    if back:
        shutil.copytree(stored / "left", path.parent, dirs_exist_ok=True)
        return
    mine = {path.name, *(a.name for a in _artifacts(path).values())}  # kept apart, as for every run
    shutil.copytree(path.parent, stored / "left", dirs_exist_ok=True,
                    ignore=lambda folder, names: mine & set(names) if folder == str(path.parent) else ())


def _passed(path: Path) -> bool:
    """A page program's run passed when no block raised what it was not marked to raise."""
    results = path.with_name(path.stem + ".results.json")
    if path.suffix != ".json":
        return True
    return results.is_file() and not any(r["error"] and not r["failed_as_it_must"]
                                         for r in json.loads(results.read_text()))


NICE = 5  # background work's CPU priority, below the tests that wait for it


def niced() -> None:
    """Niceness NICE, not NICE more than the caller's (a `preexec_fn` for background work). The device
    check, started niced by its test, ran its pages at 10: in a fresh clone's `make test` beside a build,
    a page it ran in 12 s when idle came back with no block run."""
    os.nice(max(0, NICE - os.nice(0)))


def nice_prefix() -> list[str]:
    """`niced` for a command run through `remembered` (which takes no preexec_fn): `nice -n N` before it."""
    return ["nice", "-n", str(max(0, NICE - os.nice(0)))]


class FreshRun:
    """`python -m pagekit.run` over `files`, started now in the background (cwd `folder`, the repository off
    PYTHONPATH, niced; the engine comes through a folder holding only a link to pagekit, dropped from the path
    before any file runs). `results()` waits: {file: {"returncode", "seconds"}}. A file with a recorded
    `run_key` is read from .cache/runs/ instead (CONTRIBUTING.md; TPN_RUN_CACHE=0 runs everything)."""

    def __init__(self, files: list[Path], folder: Path, parallel: int = 1, virtual_cuda: bool = False):
        self.folder = Path(folder)
        self.cached: dict[str, dict] = {}
        self.keys: dict[str, str] = {}
        use_cache = reads_back()
        for path in map(Path, files):
            self.keys[str(path)] = key = run_key(path, virtual_cuda)
            stored = RUN_CACHE / key
            if use_cache and (stored / "status.json").is_file():
                for name, artifact in _artifacts(path).items():
                    if (stored / name).is_file():
                        shutil.copyfile(stored / name, artifact)
                _left(path, stored, back=True)
                self.cached[str(path)] = json.loads((stored / "status.json").read_text())
        todo = [str(p) for p in files if str(p) not in self.cached]
        engine = self.folder / "engine"
        engine.mkdir(exist_ok=True)
        (engine / "pagekit").symlink_to(Path(__file__).resolve().parent)
        path = os.pathsep.join(filter(None, [str(engine), without_repository(os.environ.get("PYTHONPATH", ""))]))
        flags = ["--parallel", str(parallel)] + (["--virtual-cuda"] if virtual_cuda else [])
        with open(self.folder / "run.log", "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pagekit.run", "results.json", *flags, *todo],
                cwd=self.folder, env=dict(os.environ, PYTHONPATH=path), stdout=log,
                stderr=subprocess.STDOUT, preexec_fn=niced) if todo else None

    def results(self, timeout: float = 900) -> dict[str, dict]:
        if self.process is None:
            return dict(self.cached)
        if self.process.wait(timeout) != 0:
            log = (self.folder / "run.log").read_text(errors="replace")
            raise RuntimeError(f"python -m pagekit.run exited {self.process.returncode}:\n{log[-3000:]}")
        ran = json.loads((self.folder / "results.json").read_text())
        for file, status in ran.items():  # remember each run that passed (a failure may be transient)
            if status["returncode"] == 0 and _passed(Path(file)):
                stored = RUN_CACHE / self.keys[file]
                stored.mkdir(parents=True, exist_ok=True)
                for name, artifact in _artifacts(Path(file)).items():
                    if artifact.is_file():
                        shutil.copyfile(artifact, stored / name)
                _left(Path(file), stored)
                (stored / "status.json").write_text(json.dumps(status))
        return {**self.cached, **ran}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def remembered(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None, depends=(), files=(),
               keep=lambda done: done.returncode == 0, timeout: float = 300) -> subprocess.CompletedProcess:
    """`subprocess.run(cmd)`, its output captured as text, remembered in .cache/runs/ as a page's run is: the
    same command, changes to os.environ, bytes of the `depends` files (a folder: every file in it) and
    `run_key`'s environment give the same result, read back, with the `files` it left in cwd (names in cwd;
    "." for all). Kept only when keep(done) (a failure may be transient); TPN_RUN_CACHE=0 runs it. It runs
    in a session of its own, killed whole on a timeout."""
    env = os.environ if env is None else env
    changed = sorted((k, env.get(k)) for k in {*env, *os.environ} if env.get(k) != os.environ.get(k))
    digest = hashlib.sha256(repr((cmd, changed, list(files), environment())).encode())
    for path in map(Path, depends):  # by name (a file in a temporary folder is the same file each time)
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(f"{file.relative_to(path.parent)}\0".encode() + file.read_bytes())
    stored = RUN_CACHE / f"cmd-{digest.hexdigest()[:24]}"
    if reads_back() and (stored / "status.json").is_file():
        _copy(stored / "files", Path(cwd or "."), files)
        return subprocess.CompletedProcess(cmd, **json.loads((stored / "status.json").read_text()))
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except BaseException:  # a timeout, ^C: the processes it started (torchrun's, spawn's) go too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            raise
    done = subprocess.CompletedProcess(cmd, process.returncode, out, err)
    if keep(done):
        _copy(Path(cwd or "."), stored / "files", files)
        stored.mkdir(parents=True, exist_ok=True)
        (stored / "status.json").write_text(json.dumps({"returncode": done.returncode, "stdout": done.stdout,
                                                        "stderr": done.stderr}))
    return done


def _copy(source: Path, dest: Path, names) -> None:
    for name in names:
        if (source / name).is_dir():
            shutil.copytree(source / name, dest / name, dirs_exist_ok=True)
        elif (source / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, dest / name)


@dataclass
class PageRun:
    records: list[dict]   # one per block that ran (`record`), in order
    returncode: int       # -9: killed (after TIMEOUT_S, or by the system)
    seconds: float
    stderr: str           # its last 3000 characters


def run_pages(pages: list[Path], *, parallel: int = 2, virtual_cuda: bool = False) -> dict[Path, PageRun]:
    """Run each page's program now, as the tests run it, and wait for all of them."""
    from pagekit.page import read

    with tempfile.TemporaryDirectory(prefix="pagekit-") as tmp:
        files = {}
        for n, page in enumerate(pages):
            folder = Path(tmp) / f"{n}-{page.stem}"
            folder.mkdir()
            files[page] = program_file(read(page), folder / f"{page.stem}.json")
        status = FreshRun(list(files.values()), Path(tmp), parallel, virtual_cuda).results()
        found = {}
        for page, path in files.items():
            results = path.with_name(path.stem + ".results.json")
            found[page] = PageRun(json.loads(results.read_text()) if results.is_file() else [],
                                  status[str(path)]["returncode"], status[str(path)]["seconds"],
                                  path.with_name(path.name + ".err").read_text(errors="replace")[-3000:])
        return found


def _child(path: str, virtual_cuda: bool) -> None:
    path = os.path.abspath(path)  # a FILE given relative to the folder pagekit.run started in
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
            _run_page(path, virtual_cuda)
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

    from pagekit.export import notebook_blocks

    nb = nbformat.read(path, as_version=4)
    for result in run_program(notebook_blocks(nb), Path(path).parent, name=Path(path).name):
        sys.stdout.write(result.output)
        if result.block.must_fail and result.error is None:
            raise SystemExit(f"cell {result.block.lineno} is tagged raises-exception but ran without error")
        if result.error is not None and not result.failed_as_it_must:
            raise result.error


def _run_page(path: str, virtual_cuda: bool) -> None:
    """A page's blocks in the empty folder FILE.run/; each block's result to FILE.results.json."""
    folder = Path(path[: -len(".json")] + ".run")
    folder.mkdir()
    os.chdir(folder)
    sys.path[0] = str(folder)
    blocks = program_blocks(Path(path))
    # Each worker process imports the page's script again, as on Windows and macOS (spawn), so
    # the script is on disk, as the download holds it. They start by forkserver, which imports the
    # script as spawn does, from a server that has torch imported: a worker starts in a tenth of
    # a second, not in seconds. (Not under the virtual GPU: workers run outside it anyway.)
    if not virtual_cuda:
        multiprocessing.set_start_method("forkserver", force=True)
        multiprocessing.set_forkserver_preload([name for name in PRELOAD if name in sys.modules])
    import torch

    cuda = torch.cuda.is_available()
    script = folder / f"{folder.stem}.py"
    script.write_text("\n\n".join(b.source for b in blocks if not skip_reason(b, cuda=cuda)), encoding="utf-8")
    gpu = contextlib.nullcontext()
    if virtual_cuda:
        from pagekit.virtual_cuda import VirtualCuda

        gpu = VirtualCuda(record=True, program_files={f"{script.name}:{b.lineno}": b.source for b in blocks})
        cuda = False
    records = []
    try:
        with gpu:
            for result in run_program(blocks, folder, name=script.name, cuda=cuda):
                if virtual_cuda:
                    result.violations, result.made_on_cuda = [asdict(v) for v in gpu.violations], gpu.made_on_cuda
                    gpu.violations.clear()
                    gpu.made_on_cuda = 0
                records.append(record(result))
                sys.stdout.write(result.output)
    finally:
        Path(path[: -len(".json")] + ".results.json").write_text(json.dumps(records, ensure_ascii=False))


def _preload(paths: list[str], virtual_cuda: bool) -> None:
    """Import, before forking, the heavy libraries the files import (not used: no thread pool
    or CUDA before fork), so each child starts with them loaded."""
    text = "\n".join(Path(p).read_text(encoding="utf-8", errors="replace") for p in paths)
    if any(p.endswith(".ipynb") for p in paths):
        import nbformat  # noqa: F401
    if virtual_cuda:
        import torch._dynamo.trace_rules  # noqa: F401

        import pagekit.virtual_cuda  # noqa: F401
    for name in PRELOAD:
        top = name.split(".")[0]
        if re.search(rf"\b(import|from) {top}\b", text):
            __import__(name)
            if top == "matplotlib":
                import matplotlib
                matplotlib.use("Agg")


def run_all(paths: list[str], parallel: int = 2, virtual_cuda: bool = False) -> dict[str, dict]:
    _preload(paths, virtual_cuda)
    results, running, waiting = {}, {}, list(paths)
    parent = os.getppid()
    while waiting or running:
        while waiting and len(running) < parallel:
            path = waiting.pop(0)
            pid = os.fork()
            if pid == 0:
                _child(path, virtual_cuda)
            running[pid] = (path, time.perf_counter())
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:  # none finished yet: stop any that ran too long, then look again
            if os.getppid() != parent:  # whoever asked is gone (a killed pytest): stop, leave nothing
                for other in running:
                    os.kill(other, signal.SIGKILL)
                sys.exit(f"pagekit.run: the parent process {parent} exited; runs stopped")
            for other, (_, other_start) in running.items():
                if time.perf_counter() - other_start > TIMEOUT_S:
                    os.kill(other, signal.SIGKILL)
            time.sleep(0.05)
            continue
        path, start = running.pop(pid)
        results[path] = {"returncode": os.waitstatus_to_exitcode(status),
                         "seconds": round(time.perf_counter() - start, 2)}
    return results


def main(argv: list[str]) -> None:
    target, *files = argv
    parallel, virtual_cuda = 2, False
    if files[:1] == ["--parallel"]:
        parallel, files = int(files[1]), files[2:]
    if files[:1] == ["--virtual-cuda"]:
        virtual_cuda, files = True, files[1:]
    # the engine came on PYTHONPATH (FreshRun's link folder); the files' programs do not see it
    sys.path[:] = [p for p in sys.path if not (Path(p) / "pagekit").is_symlink()]
    results = run_all(files, parallel, virtual_cuda)
    with open(target, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
