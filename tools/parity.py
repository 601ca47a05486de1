"""Where the two languages of a page differ, section by section (pagekit/parity.py).

    python -m tools.parity            # every page pair, one line per difference
"""
import sys

from pagekit.parity import DOCS, differences, page_pairs


def main() -> int:
    lines = [f"{name}: {line}" for name in page_pairs()
             for line in differences((DOCS / "zh" / name).read_text("utf-8"), (DOCS / "en" / name).read_text("utf-8"))]
    for line in lines:
        print(line)
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
