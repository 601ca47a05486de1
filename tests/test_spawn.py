"""Pages and their downloads run where worker processes start by spawn (Windows, macOS; Linux's
default from Python 3.14 is forkserver, which imports the script the same way).

A page whose program starts workers is laid out for it in its script (pagekit/export.py
`spawn_safe`): definitions at the top level, every other statement under the guard. Every
page's run (pagekit.run) is its script's run with the forkserver start method in force, the
script on disk: each worker imports it again, as under spawn (forkserver's server has torch
imported already, so a worker starts in a tenth of a second instead of seconds).
"""
from __future__ import annotations

import json

import pytest

from pagekit.export import spawn_safe, starts_processes
from pagekit.page import parse_page
from pagekit.run import FreshRun, program_file, remembered

GUARD = 'if __name__ == "__main__":'


def test_definitions_stay_at_the_top_level_and_the_work_goes_under_the_guard():
    code = ("import torch\n\nSIZE = 4\n\n\nclass Twice:\n    pass\n\n"
            "# the work\nx = torch.ones(SIZE)\nprint(x.sum())\n\ndef f():\n    return 1\n")
    assert spawn_safe(code) == (
        "import torch\n\nSIZE = 4\n\n\nclass Twice:\n    pass\n\n"
        f"{GUARD}\n    # the work\n    x = torch.ones(SIZE)\n    print(x.sum())\n\ndef f():\n    return 1")
    compile(spawn_safe(code), "script.py", "exec")


def test_the_scripts_own_guard_is_not_guarded_twice():
    code = f"def main():\n    print(1)\n\n{GUARD}\n    main()\n"
    assert spawn_safe(code) == code.rstrip("\n")
    assert spawn_safe("if __name__ == '__main__':\n    main()") == "if __name__ == '__main__':\n    main()"


def test_a_string_that_spans_lines_is_refused_rather_than_changed():
    with pytest.raises(ValueError, match="line 1: a string literal spanning lines"):
        spawn_safe('text = f"""a\nb"""\nprint(text)')
    assert spawn_safe('print("a"\n      "b")') == f'{GUARD}\n    print("a"\n          "b")'


PAGE = """\
<!--pytest.mark.multiprocess-->
```python
import multiprocessing
from torch.utils.data import DataLoader, Dataset


class Squares(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return i * i


loader = DataLoader(Squares(), batch_size=4, num_workers=1)
print(multiprocessing.get_start_method(), next(iter(loader)).tolist())
```
"""


def run_page(blocks, folder) -> list[dict]:
    path = program_file(blocks, folder / "page.json")
    status = FreshRun([path], folder).results()[str(path)]
    results = path.with_name("page.results.json")
    assert results.is_file(), (status, path.with_name("page.json.err").read_text())
    return json.loads(results.read_text())


@pytest.mark.multiprocess
def test_a_page_run_starts_its_workers_from_its_script_as_spawn_does(tmp_path):
    blocks = parse_page(PAGE)
    assert starts_processes(blocks)
    (record,) = run_page(blocks, tmp_path)
    assert record["error"] is None, record["traceback"]
    assert record["output"] == "forkserver [0, 1, 4, 9]\n"


@pytest.mark.multiprocess
def test_without_the_spawn_layout_the_same_page_fails_in_its_workers(tmp_path):
    """The mutant: the page's code run as written, unguarded, the way the data chapter's script
    crashed on Windows and macOS."""
    import os
    import sys

    blocks = parse_page(PAGE.replace("<!--pytest.mark.multiprocess-->\n", ""))
    assert not starts_processes(blocks)
    err = tmp_path / "page.json.err"
    # the page's run as run_page's, remembered (a failing run is not, in FreshRun): kept when it fails as it must
    done = remembered([sys.executable, "-m", "pagekit.run", "results.json", "page.json"], cwd=tmp_path,
                      env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                      depends=[program_file(blocks, tmp_path / "page.json")], files=["."],
                      keep=lambda done: err.is_file() and "bootstrapping phase" in err.read_text())
    assert done.returncode == 0, done.stderr
    (record,) = json.loads((tmp_path / "page.results.json").read_text())
    assert record["error"] is not None and "exited unexpectedly" in record["error"]
    assert "bootstrapping phase" in err.read_text()


NOTEBOOK_CELL = """\
import multiprocessing
from torch.utils.data import DataLoader, Dataset
multiprocessing.set_start_method("spawn", force=True)


class Squares(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return i * i


print(next(iter(DataLoader(Squares(), batch_size=4, num_workers=1))).tolist())
"""


@pytest.mark.multiprocess
def test_in_a_notebook_spawned_workers_cannot_load_a_class_the_notebook_defined(tmp_path):
    """What the data chapter's box tells a Windows or macOS notebook reader: a notebook's
    __main__ has no file for a spawned worker to import (as `python -c` here), so the worker
    cannot find the Dataset class."""
    import sys

    done = remembered([sys.executable, "-c", NOTEBOOK_CELL], cwd=tmp_path, keep=lambda done: done.returncode != 0,
                      timeout=120)
    assert done.returncode != 0
    assert "Can't get attribute 'Squares' on <module '__main__'" in done.stderr
