"""`make colab`: each chapter's notebook as Colab opens it from the repository ->
notebooks/<lang>/<slug>.ipynb (pagekit/colab.py). `--check`: list those that differ, write nothing."""
from __future__ import annotations

import sys

from pagekit import colab
from pagekit.project import ROOT


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    changed = colab.write_all(check=check)
    for path in changed:
        print(("differs: " if check else "wrote ") + str(path.relative_to(ROOT)))
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
