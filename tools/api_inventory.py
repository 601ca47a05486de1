"""`make api-inventory`: the public classes and functions of the installed torch and torchvision,
each with the address of its documentation -> generated/api-inventory.json (pagekit/apilinks.py).
The build links API names in the pages' prose from this file; nothing is fetched.
`--check` only reports whether the committed file is what the installed packages give."""
from __future__ import annotations

import argparse
import sys

from pagekit import apilinks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    text = apilinks.dumps(apilinks.build())
    path = apilinks.INVENTORY
    if args.check:
        same = path.is_file() and path.read_text(encoding="utf-8") == text
        print(f"{path.name}: {'up to date' if same else 'differs from the installed packages'}")
        return 0 if same else 1
    path.write_text(text, encoding="utf-8")
    print(f"{path.relative_to(apilinks.ROOT)}: {text.count(chr(10)) - 6} names")
    return 0


if __name__ == "__main__":
    sys.exit(main())
