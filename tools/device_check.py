"""Each chapter's program on the CPU as if the machine had one CUDA GPU (pagekit.virtual_cuda):
every line a real GPU would refuse (tensors on two devices in one operation, `.numpy()` of a GPU
tensor), named with its page, block and line. Exit 1 on a finding.

    python -m tools.device_check [docs/en/<slug>.md ...] [--json OUT.json] [--parallel N]
"""
import argparse
import json
import sys
from pathlib import Path

from pagekit.project import CHAPTERS
from pagekit.run import run_pages


def findings(results: dict[str, dict]):
    """One line per block that would fail on a GPU, or did not run to its end here."""
    for page, result in results.items():
        if not result["blocks"] and result["returncode"]:
            yield f"{page}: the run exited {result['returncode']} after {result['seconds']} s:\n{result['stderr']}"
        for b in result["blocks"]:
            for v in b["violations"]:
                yield (f"{page} line {b['lineno']} ({b['section']}): {v['where']}: {v['line']}\n"
                       f"    {v['kind']}: {v['message']}\n    at {v['inside']}")
            if b["error"] and not b["failed_as_it_must"]:
                yield f"{page} line {b['lineno']} ({b['section']}) raised {b['error']}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="default: every chapter's English page")
    parser.add_argument("--json", type=Path, help="write the per-block report here")
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    pages = [p.resolve() for p in args.pages] or [c.path("en") for c in CHAPTERS]
    runs = run_pages(pages, parallel=args.parallel, virtual_cuda=True)
    results = {str(page): {"blocks": run.records, "returncode": run.returncode, "seconds": run.seconds,
                           "stderr": run.stderr}
               for page, run in runs.items()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    found = list(findings(results))
    print("\n".join(found + [f"{len(pages)} page(s), {len(found)} finding(s)"]))
    sys.exit(1 if found else 0)
