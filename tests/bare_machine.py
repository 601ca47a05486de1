"""A bare GPU machine, simulated on this one for tests/test_gpu_check.py: an interpreter that has
only torch, torchvision and NumPy (and what they require), and a folder of wheels for the rest.

The interpreter is a venv without pip's packages; the distributions it has are links to this
venv's. The wheels are made from this venv's installed distributions (their RECORD lists their
files; their WHEEL file their tag), so nothing is downloaded.
"""
from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from packaging.markers import Marker

from tools.reproducible import working_tree_copy

BARE = ("torch", "torchvision", "numpy", "pip")  # what the GPU machine's python3 is said to have


def key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(names) -> dict[str, md.Distribution]:
    """The installed distributions `names` need, themselves included (no extras)."""
    found: dict[str, md.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        if key(name) in found:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        found[key(name)] = dist
        for req in dist.requires or []:
            spec, _, marker = req.partition(";")
            if marker and not Marker(marker).evaluate({"extra": ""}):
                continue
            todo.append(re.match(r"[A-Za-z0-9_.-]+", spec).group(0))
    return found


def _files(dist: md.Distribution) -> list[str]:
    """A distribution's files under site-packages, from its RECORD (no scripts, no bytecode)."""
    return [str(f) for f in dist.files or [] if not str(f).startswith("..") and "__pycache__" not in str(f)]


def interpreter(folder: Path, names=BARE) -> Path:
    """A venv at `folder` whose site-packages holds links to exactly the distributions `names` need."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    site = folder / Path(sysconfig.get_path("purelib")).relative_to(sysconfig.get_path("data"))
    here = Path(sysconfig.get_path("purelib"))
    for dist in closure(names).values():
        for top in sorted({f.split("/")[0] for f in _files(dist)}):
            if not (site / top).exists():
                (site / top).symlink_to(here / top)
    return folder / "bin" / "python"


def wheel(dist: md.Distribution, dest: Path) -> Path:
    """The installed distribution packed back into a wheel pip can install."""
    info = next(f for f in _files(dist) if f.endswith(".dist-info/WHEEL"))
    tags = [line.split(": ", 1)[1] for line in dist.read_text("WHEEL").splitlines() if line.startswith("Tag: ")]
    tag = next((t for t in tags if t.startswith(("py3", "cp3"))), tags[0])  # py2-none-any, py3-none-any
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    path = dest / f"{name}-{dist.version}-{tag}.whl"
    root = Path(sysconfig.get_path("purelib"))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for rel in _files(dist):
            if (root / rel).is_file():
                zf.write(root / rel, rel)
    assert info
    return path


def wheels(names, dest: Path, have=BARE) -> list[Path]:
    """Wheels for `names` and what they need, less what the bare interpreter has."""
    dest.mkdir(parents=True, exist_ok=True)
    present = closure(have)
    return [wheel(d, dest) for k, d in closure(names).items() if k not in present]


def checkout_copy(root: Path, dest: Path) -> Path:
    """The working tree's files that git knows or would add (no .git, .venv, .cache, site/)."""
    return working_tree_copy(dest, root)
