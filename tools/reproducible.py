"""Two cold builds of the site are byte-identical, and so is a warm one: `make reproducible`.

    python -m tools.reproducible                 # about a minute
    python -m tools.reproducible --keep DIR      # and keep the sites in DIR/a, DIR/b, DIR/warm (replaced)

Each build runs in its own copy of the working tree (tracked and untracked files, not what git
ignores: no .cache/, so the labs execute and nothing is highlighted from a cache; uncommitted
changes included), with the same SITE_URL, the checkout's .venv and its git history (the pages'
commit dates). Every file that differs between the two sites, or is in one only, is listed with
the offset of its first differing byte and the bytes around it. Then the checkout builds with its
own caches (.cache/), and that site is compared with the first: a cache that serves a result older
than the code shows here. Exit status 1 if any file differs.

tests/test_site.py checks the same of two warm builds (the test session's and one more), with
`differences` from here.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE_URL = "http://127.0.0.1:8000/"
CONTEXT = 40  # bytes shown on each side of the first difference


def differences(a: Path, b: Path) -> list[str]:
    """One line per file that differs between the trees a and b, or is in one only."""
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    found = [f"{rel}: only in {a}" for rel in sorted(files_a - files_b)]
    found += [f"{rel}: only in {b}" for rel in sorted(files_b - files_a)]
    for rel in sorted(files_a & files_b):
        one, two = (a / rel).read_bytes(), (b / rel).read_bytes()
        if one != two:
            at = next((i for i, (x, y) in enumerate(zip(one, two)) if x != y), min(len(one), len(two)))
            start = max(0, at - CONTEXT)
            found.append(f"{rel}: {len(one)} vs {len(two)} bytes, first difference at byte {at}: "
                         f"{one[start:at + CONTEXT]!r} vs {two[start:at + CONTEXT]!r}")
    return found


def working_tree_copy(dest: Path, root: Path = ROOT) -> Path:
    """The files git would see (tracked and untracked, not ignored) copied into dest."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=root, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = root / rel
        if src.is_file():  # a tracked file deleted in the working tree is listed too
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def build(tree: Path, site: Path, site_url: str) -> float:
    env = {**os.environ, "SITE_URL": site_url, "NO_MKDOCS_2_WARNING": "1",
           "GIT_DIR": str(ROOT / ".git"), "GIT_WORK_TREE": str(tree),  # history for the commit dates
           "PYTHONPATH": str(tree)}  # the copy's pagekit, not the one installed editable from ROOT
    start = time.perf_counter()
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "mkdocs"), "build", "--strict", "--quiet",
                           "--site-dir", str(site)], cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"mkdocs build failed in {tree}:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site-url", default=SITE_URL, help=f"SITE_URL of both builds (default {SITE_URL})")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the sites in DIR/a, DIR/b, DIR/warm")
    args = parser.parse_args(argv)
    found = []
    with tempfile.TemporaryDirectory(prefix="reproducible-") as tmp:
        sites = {}
        for name in ("a", "b", "warm"):
            tree = ROOT if name == "warm" else working_tree_copy(Path(tmp) / f"tree-{name}")
            sites[name] = site = (args.keep or Path(tmp)) / name
            shutil.rmtree(site, ignore_errors=True)
            kind = "this checkout, caches warm" if name == "warm" else "a copy, caches cold"
            print(f"build {name} ({kind}): {build(tree, site, args.site_url):.1f} s", flush=True)
        count = sum(1 for p in sites["a"].rglob("*") if p.is_file())
        for other in ("b", "warm"):
            lines = differences(sites["a"], sites[other])
            print(f"a vs {other}: " + (f"{len(lines)} of {count} files differ" if lines
                                       else f"byte-identical ({count} files)"))
            for line in lines:
                print("  " + line)
            found += lines
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
