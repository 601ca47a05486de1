"""`make outputs`: rewrite the pages' expected-output fences from a run (pagekit.compare).

    python -m tools.outputs                    # every chapter, both languages
    python -m tools.outputs docs/en/layers.md  # one chapter (its other language too)
    python -m tools.outputs --check            # only report stale pages (exit 1)
"""
import argparse
import sys

from pagekit.compare import exact_environment, write_outputs
from pagekit.project import pins

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("pages", nargs="*")
parser.add_argument("--check", action="store_true", help="report stale pages, change nothing")
args = parser.parse_args()
if not exact_environment():
    print(f"outputs are written on the pinned CPU versions only (torch=={pins()['torch']}, no CUDA)")
    sys.exit(2)
stale = write_outputs(args.pages, check=args.check)
print(f"{'stale' if args.check else 'rewritten'}: {', '.join(stale) or 'none'}")
sys.exit(1 if args.check and stale else 0)
