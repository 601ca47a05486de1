"""The outputs shown under the blocks of a page: what may differ between machines, how a run is
compared with the page, and `make outputs`, which rewrites every expected-output fence from a run.

    python -m tools.outputs                  # every chapter, both languages
    python -m tools.outputs docs/en/layers.md  # one chapter (its other language too)
    python -m tools.outputs --check          # only report stale pages (exit 1)

A page's output fences are written from a run of its English page and copied into the Chinese
page (both include the same blocks in the same order: tests/test_site.py checks that). Whatever
matches a VOLATILE pattern is written as `...`; nothing else may be. On the pinned CPU versions
(requirements.txt) a run must match the page exactly; elsewhere (a GPU, another torch) the same
text with numbers within TOLERANCE, and lines naming the machine (ENVIRONMENT_LINES) are free.
"""
from __future__ import annotations

import argparse
import math
import re
import sys
import tempfile
from pathlib import Path

from tools.shown_code import ROOT, Result, parse_page, python_blocks, run_program

DOCS = ROOT / "docs"
LANGS = ("zh", "en")

# What differs between two runs or two machines, and only that, is shown as `...`.
VOLATILE = {
    "a duration": r"(?<![\w=.])\d+(?:\.\d+)? ?(?:ms|µs|us|s)(?![\w=])",
    "a speed-up factor": r"(?<![\w.])\d+(?:\.\d+)?×(?!\d)",
    "a memory address": r"\b0x[0-9a-f]{6,}\b",
    "a temporary path": r"/tmp/[\w./-]+",
    "a process id": r"(?<=\bpid )\d+",
}
_VOLATILE = re.compile("|".join(f"(?:{p})" for p in VOLATILE.values()))

# Lines that describe the machine that ran the page (free outside the pinned CPU run).
ENVIRONMENT_LINES = re.compile(
    r"""^['"]?(torch|torchvision|python|device|cuda|cudnn|gpu|built|platform)\b""", re.IGNORECASE)
TOLERANCE = {"rel": 0.05, "abs": 0.02}  # numbers on other machines (GPU kernels, other torch versions)
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def mask(text: str) -> str:
    """The output as a page shows it: volatile parts as `...`, no trailing spaces or blank edges."""
    lines = [_VOLATILE.sub("...", line).rstrip() for line in text.strip("\n").split("\n")]
    return "\n".join(lines) + "\n" if any(lines) else ""


def pinned(name: str) -> str:
    found = re.search(rf"^{re.escape(name)}==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
    return found.group(1) if found else ""


def exact_environment() -> bool:
    """True on the versions the page outputs were made with: compare exactly."""
    import torch

    return torch.__version__.split("+")[0] == pinned("torch") and not torch.cuda.is_available()


def _ellipsis_regex(shown: str) -> re.Pattern:
    return re.compile(".*?".join(re.escape(part) for part in shown.split("...")), re.S)


def _close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    return math.isclose(x, y, rel_tol=TOLERANCE["rel"], abs_tol=TOLERANCE["abs"])


def _line_matches(shown: str, got: str) -> bool:
    if _ellipsis_regex(shown).fullmatch(got):
        return True
    if ENVIRONMENT_LINES.match(shown.strip()) and ENVIRONMENT_LINES.match(got.strip()):
        return True
    a, b = NUMBER.split(shown), NUMBER.split(got)
    return (a == b and all(_close(x, y) for x, y in zip(NUMBER.findall(shown), NUMBER.findall(got))))


def differs(shown: str, got: str, *, exact: bool | None = None) -> bool:
    """Does a run's output differ from what the page shows?"""
    got = mask(got)
    shown = shown.strip("\n") + "\n" if shown.strip() else ""
    shown = "\n".join(line.rstrip() for line in shown.split("\n"))
    if got == shown:
        return False
    if exact if exact is not None else exact_environment():
        return True
    a, b = shown.strip("\n").split("\n"), got.strip("\n").split("\n")
    return len(a) != len(b) or not all(_line_matches(x, y) for x, y in zip(a, b))


def problem(result: Result) -> str | None:
    """What is wrong with one block's run, compared with its page (None: nothing)."""
    block, where = result.block, f"line {result.block.lineno} ({result.block.section or 'top'})"
    if result.skipped:
        return None
    if block.must_fail and result.error is None:
        return f"{where}: must fail with {block.must_fail} but ran without error"
    if result.error is not None and not result.failed_as_it_must:
        return None  # the caller re-raises the real error
    if result.output.strip() and block.expected is None:
        return f"{where}: prints output but the page shows none; run `make outputs`"
    if block.expected is not None and differs(block.expected, result.output):
        return (f"{where}: output differs from the page; run `make outputs` if the code changed on purpose."
                f"\npage shows:\n{block.expected}\nthe code printed:\n{mask(result.output)}")
    return None


# --- make outputs --------------------------------------------------------------------------------
def fence_for(output: str) -> list[str]:
    return ["<!--pytest-codeblocks:expected-output-->", "```text", *output.rstrip("\n").split("\n"), "```"]


def rewrite(text: str, outputs: list[str | None]) -> str:
    """The page with each Python block's output fence set from `outputs` (None: leave it)."""
    lines = text.split("\n")
    blocks = python_blocks(parse_page(text))
    if len(blocks) != len(outputs):
        raise ValueError(f"{len(outputs)} outputs for {len(blocks)} Python blocks")
    for block, output in reversed(list(zip(blocks, outputs))):
        if output is None:
            continue
        new = fence_for(output) if output.strip() else []
        if block.expected_span:
            first, last = block.expected_span
            lines[first - 1:last] = new
        elif new:
            lines[block.end:block.end] = ["", *new]
    out = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", out)


def run_page(page: Path) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="page-") as tmp:
        return list(run_program(parse_page(page.read_text(encoding="utf-8"), str(page)), Path(tmp),
                                name=page.with_suffix(".py").name))


def page_outputs(page: Path) -> list[str | None]:
    """Each Python block's masked output (None for a block that was skipped)."""
    results = run_page(page)
    blocks = python_blocks(parse_page(page.read_text(encoding="utf-8"), str(page)))
    for r in results:
        if r.error is not None and not r.failed_as_it_must:
            raise RuntimeError(f"{page}:{r.block.lineno} failed: {r.output}") from r.error
        if r.block.must_fail and r.error is None and not r.skipped:
            raise RuntimeError(f"{page}:{r.block.lineno} must fail with {r.block.must_fail}")
    by_line = {r.block.lineno: r for r in results}
    return [None if by_line[b.lineno].skipped else mask(by_line[b.lineno].output) for b in blocks]


def chapter_pages(args: list[str]) -> list[str]:
    names = sorted({Path(a).name for a in args}) or sorted(p.name for p in (DOCS / "en").glob("*.md"))
    return [n for n in names if any(b.is_python for b in parse_page((DOCS / "en" / n).read_text("utf-8"), n))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*")
    parser.add_argument("--check", action="store_true", help="report stale pages, change nothing")
    args = parser.parse_args(argv)
    if not exact_environment():
        print(f"outputs are written on the pinned CPU versions only (torch=={pinned('torch')}, no CUDA)")
        return 2
    stale = []
    for name in chapter_pages(args.pages):
        outputs = page_outputs(DOCS / "en" / name)
        for lang in LANGS:
            page = DOCS / lang / name
            old = page.read_text(encoding="utf-8")
            new = rewrite(old, outputs)
            if new != old:
                stale.append(str(page.relative_to(ROOT)))
                if not args.check:
                    page.write_text(new, encoding="utf-8")
        print(f"{name}: {sum(o is not None and bool(o) for o in outputs)} outputs", file=sys.stderr)
    verb = "stale" if args.check else "rewritten"
    print(f"{verb}: {', '.join(stale) or 'none'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
