"""`python -m snippets.<module>` writes its files into a temporary folder of its own, never into
the current folder (the repository root, where `python -m` runs it) nor anywhere else in the
repository: a stray digits.pt once appeared at the root after `python -m snippets.training`.

Running the mains for real takes minutes (training, compiling, spawning workers), so each main
block runs here with the functions that write files replaced by a probe that writes into the
current folder and notes where that was."""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# module -> the functions its main block runs that write files into the current folder
WRITERS = {
    "data": ["run_demos"],
    "environment": ["tour"],
    "labs": ["run_task1", "run_task3"],
    "multi_gpu": ["tour"],
    "saving": ["tour"],
    "training": ["tour"],
}


def main_block(path: Path):
    """The body of the module's `if __name__ == "__main__":`, compiled."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    blocks = [node for node in tree.body if isinstance(node, ast.If)
              and ast.unparse(node.test) in ("__name__ == '__main__'", '__name__ == "__main__"')]
    assert len(blocks) == 1, f"{path.name}: one `if __name__ == '__main__':` block expected"
    return compile(ast.Module(body=blocks[0].body, type_ignores=[]), str(path), "exec")


def git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_main_writes_only_into_a_temporary_folder(name, tmp_path, monkeypatch):
    module = importlib.import_module(f"snippets.{name}")
    ran_in: list[Path] = []

    def probe(*args, **kwargs):
        ran_in.append(Path.cwd())
        Path(f"written-by-{name}.txt").write_text("a file the main wrote")

    for function in WRITERS[name]:
        monkeypatch.setattr(module, function, probe)
    monkeypatch.setattr(sys, "argv", [str(module.__file__)])  # no options: the demos
    monkeypatch.chdir(tmp_path)
    before = git_status()
    exec(main_block(Path(module.__file__)), dict(vars(module)))
    assert len(ran_in) == len(WRITERS[name]), f"the main block ran {len(ran_in)} of {WRITERS[name]}"
    assert list(tmp_path.iterdir()) == [], "the main wrote into the folder it was started in"
    for folder in ran_in:
        assert folder != tmp_path and ROOT not in (folder, *folder.parents), folder
        assert not folder.exists(), f"{folder} was left behind"
    assert Path.cwd() == tmp_path
    assert git_status() == before
