"""Fixtures shared by the tests in tests/: one build of the site per test session, served.

The site is built once, with SITE_URL set to a loopback address where a static server serves
it the way a static host does (404.html for a missing path). The page tests, the lab tests and
the browser tests all read this one build.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

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


@pytest.fixture(scope="session")
def served_site(tmp_path_factory) -> Site:
    """One strict build of the whole site (both languages, labs executed or cached), served."""
    root = tmp_path_factory.mktemp("site")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_StaticHost, directory=str(root)))
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    env = {**os.environ, "SITE_URL": base, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(root)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        server.server_close()
        pytest.fail(f"mkdocs build --strict failed:\n{result.stderr[-4000:]}", pytrace=False)
    assert [line for line in result.stderr.splitlines() if line.startswith("WARNING")] == []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Site(root, base)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def built_site(served_site) -> Path:
    return served_site.root
