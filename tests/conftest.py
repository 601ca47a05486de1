"""Fixtures shared by the tests in tests/: one strict build of the site per session, served on a loopback
address the way a static host serves it (SITE_URL set to it), read by the page, lab and browser tests; when
it is built, the lab notebooks a reader downloads start running in the background (pagekit.run)."""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from pagekit.pytest_plugin import in_background
from pagekit.run import FreshRun

ROOT = Path(__file__).resolve().parents[1]


class _StaticHost(SimpleHTTPRequestHandler):
    """http.server as a static host: quiet, cacheable for 10 minutes (as GitHub Pages), and
    answering a missing path with the nearest 404.html (status 404)."""

    def log_message(self, *args):
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "max-age=600")
        super().end_headers()

    def send_error(self, code, message=None, explain=None):
        if code != 404:
            return super().send_error(code, message, explain)
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        root = Path(self.directory)
        for depth in range(len(parts), -1, -1):
            candidate = root.joinpath(*parts[:depth], "404.html")
            if candidate.is_file():
                body = candidate.read_bytes()
                self.send_response(404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                return None
        return super().send_error(code, message, explain)


@dataclass
class Site:
    root: Path  # the built site
    base: str  # its address, e.g. http://127.0.0.1:40123/

    def url(self, path: str) -> str:
        return urljoin(self.base, path.lstrip("/"))


@dataclass
class Downloads:
    """Files copied from the built site, each alone in an empty folder, run as a reader runs them."""

    files: dict[str, Path]  # e.g. "task1.ipynb" -> its copy
    run: FreshRun
    LABS = {"task1": "zh", "task3": "en"}  # the other language of each holds the same code (tested)

    @classmethod
    def start(cls, site: Path, base: Path) -> Downloads:
        found = [site / (f"{lang}/" if lang != "zh" else "") / f"labs/{lab}/{lab}.ipynb"
                 for lab, lang in cls.LABS.items()]
        files = {}
        for path in sorted(found, key=lambda f: -f.stat().st_size):  # the longest first
            folder = base / path.name.replace(".", "-")
            folder.mkdir()
            files[path.name] = Path(shutil.copy(path, folder))
        return cls(files, FreshRun(list(files.values()), base, parallel=1))

    def result(self, name: str) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of one download's run."""
        path = self.files[name]
        status = self.run.results()[str(path)]["returncode"]
        return status, Path(f"{path}.out").read_text(errors="replace"), Path(f"{path}.err").read_text(errors="replace")


class SiteBuild:
    """`mkdocs build --strict` into a temporary folder, started in the background at the end of collection;
    when it is done, the downloads start running (`downloads`) and a second build at the same address
    starts (`again`: tests/test_site.py compares the two)."""

    def __init__(self, downloads: bool, again: bool):
        self.folder = Path(tempfile.mkdtemp(prefix="tpn-site-"))
        self.root = self.folder / "site"
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_StaticHost, directory=str(self.root)))
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.process = self._build(self.root)
        self.downloads: Downloads | None = None
        self.second: subprocess.Popen | None = None
        self.then = threading.Thread(target=self._then, args=(downloads, again), daemon=True)
        self.then.start()

    def _build(self, root: Path) -> subprocess.Popen:
        env = {**os.environ, "SITE_URL": self.base, "NO_MKDOCS_2_WARNING": "1"}
        with open(root.with_suffix(".log"), "w") as log:
            return subprocess.Popen([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(root)],
                                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def _then(self, downloads: bool, again: bool):
        if self.process.wait() != 0:
            return
        if again:
            self.second = self._build(self.folder / "again")
        if downloads:
            (self.folder / "downloads").mkdir()
            self.downloads = Downloads.start(self.root, self.folder / "downloads")

    def log(self, timeout: float = 600) -> tuple[int, str]:
        """Wait for the build: (exit status, what it printed)."""
        status = self.process.wait(timeout)
        self.then.join()
        return status, self.root.with_suffix(".log").read_text(errors="replace")

    def again(self, timeout: float = 600) -> tuple[int, str, Path]:
        """Wait for the second build: (exit status, what it printed, the site it wrote)."""
        self.log(timeout)
        assert self.second is not None, "no second build was started (collected tests asked for none?)"
        root = self.folder / "again"
        return self.second.wait(timeout), root.with_suffix(".log").read_text(errors="replace"), root

    def close(self):
        for process in (self.process, self.second, self.downloads and self.downloads.run.process):
            if process and process.poll() is None:
                process.kill()
                process.wait()
        self.server.server_close()
        shutil.rmtree(self.folder, ignore_errors=True)


BUILD = pytest.StashKey[SiteBuild]()


def _uses(item, *fixtures: str) -> bool:
    return bool(set(fixtures) & set(getattr(item, "fixturenames", ())))


class Early:
    """Subprocess work a test module's fixtures need, started at the end of collection, in the
    background: the module lists `EARLY = {fixture name: start(folder, pages)}` (start returns a
    handle whose `result()` waits); each one a collected test uses starts then, for the pages those
    tests are parametrized with (`pages=None`: every page, when one of them is not), and the fixture
    returns `early.result(name, start)` (which starts it there, for every page, if nothing did)."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="tpn-early-"))
        self.handles: dict = {}

    def start(self, name: str, start, pages: set[str] | None = None) -> None:
        if name not in self.handles:
            (self.folder / name).mkdir()
            self.handles[name] = start(self.folder / name, pages)

    def result(self, name: str, start):
        self.start(name, start)
        return self.handles[name].result()

    def close(self):
        for handle in self.handles.values():
            handle.close()
        shutil.rmtree(self.folder, ignore_errors=True)


EARLY = pytest.StashKey[Early]()


@pytest.fixture(scope="session")
def early(request) -> Early:
    return request.config.stash.setdefault(EARLY, Early())


def _page(item) -> str | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return params.get("chapter", params.get("page"))


def pytest_collection_finish(session):
    wanted: dict[str, tuple] = {}  # fixture name -> (start, the pages its tests take, or None: all)
    for item in session.items:
        for name, start in getattr(getattr(item, "module", None), "EARLY", {}).items():
            if _uses(item, name):
                pages = wanted.get(name, (start, set()))[1]
                wanted[name] = (start, None if pages is None or _page(item) is None else pages | {_page(item)})
    build = any(_uses(item, "served_site", "built_site") for item in session.items)
    downloads, again = (any(_uses(item, name) for item in session.items) for name in ("downloads", "second_build"))

    def start():
        stash = session.config.stash
        if build:  # first: a process of its own, while this one prepares the rest
            stash[BUILD] = SiteBuild(downloads=downloads, again=again)
        for name, (begin, pages) in wanted.items():  # -k multi-gpu starts multi-gpu's work only
            stash.setdefault(EARLY, Early()).start(name, begin, pages)
    in_background(session.config, start)


def pytest_sessionfinish(session):
    for key in (BUILD, EARLY):
        if key in session.config.stash:
            session.config.stash[key].close()


@pytest.fixture(scope="session")
def served_site(request) -> Site:
    """One strict build of the whole site (both languages, labs executed or cached), served."""
    if BUILD not in request.config.stash:
        request.config.stash[BUILD] = SiteBuild(downloads=False, again=False)
    build = request.config.stash[BUILD]
    status, log = build.log()
    if status != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{log[-4000:]}", pytrace=False)
    assert [line for line in log.splitlines() if line.startswith("WARNING")] == []
    thread = threading.Thread(target=build.server.serve_forever, daemon=True)
    thread.start()
    yield Site(build.root, build.base)
    build.server.shutdown()


@pytest.fixture(scope="session")
def downloads(served_site, request) -> Downloads:
    found = request.config.stash[BUILD].downloads
    assert found is not None, "the downloads did not start (collected tests asked for none?)"
    return found


@pytest.fixture(scope="session")
def second_build(served_site, request) -> tuple[int, str, Path]:
    """A second build of the same sources at the same address, started when the first was done."""
    return request.config.stash[BUILD].again()


@pytest.fixture(scope="session")
def built_site(served_site) -> Path:
    return served_site.root
