"""The outputs shown under the blocks of a page: what may differ between machines, how a run is
compared with the page, and `make outputs`, which rewrites every expected-output fence from a run.

    python -m tools.outputs                  # every chapter, both languages
    python -m tools.outputs docs/en/layers.md  # one chapter (its other language too)
    python -m tools.outputs --check          # only report stale pages (exit 1)

A page's output fences are written from a run of its English page and copied into the Chinese
page (both include the same blocks in the same order: tests/test_site.py checks that). Whatever
matches a VOLATILE pattern is written as `...`; nothing else may be.

The policy where readers run it: on the pinned CPU versions (requirements.txt) a run matches the
page exactly. Elsewhere (a GPU, another torch release) three things may differ, and nothing
else: the message of an error PyTorch raises in a must-fail block (its type must match; the
project's own messages must match word for word), warnings (never part of the output: the runner
records them apart), and the output of a block marked `varies(reason=..., holds=...)`, which
says on the page why it depends on the machine; its `holds` expression must be true everywhere.
"""
from __future__ import annotations

import argparse
import ast
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


def _normal(text: str) -> str:
    text = "\n".join(line.rstrip() for line in text.strip("\n").split("\n"))
    return text + "\n" if text.strip() else ""


def split_error(text: str, error: str) -> tuple[str, str | None]:
    """A must-fail block's output as (what it printed, its `Type: message`), or (text, None)."""
    lines = text.split("\n")
    short = error.rsplit(".", 1)[-1]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(f"{short}: "):
            return _normal("\n".join(lines[:i])), _normal("\n".join(lines[i:]))
    return _normal(text), None


def _chunks(node: ast.expr) -> list[str] | None:
    """The literal parts of a message expression (str, f-string, str + str), or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.Constant)] + [""]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _chunks(node.left), _chunks(node.right)
        return None if left is None or right is None else left + right
    return None


def own_messages(code: str) -> list[str]:
    """The longest literal part of each message the page's own code raises: an error whose
    message holds one is the project's, compared word for word everywhere."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            chunks = _chunks(node.exc.args[0])
            if chunks and max(chunks, key=len).strip():
                found.append(max(chunks, key=len).strip())
    return found


def differs(shown: str, got: str, *, exact: bool | None = None, error: str | None = None,
            own: list[str] | None = None) -> bool:
    """Does a run's output differ from what the page shows?

    On the pinned CPU versions: any difference. Elsewhere only one thing may differ: the
    message of the error a must-fail block (`error`) raises, when it is not the project's own
    (`own`, from own_messages; None: every message counts as own). PyTorch words its errors
    differently between releases; the type must still match, and what the block printed before.
    """
    got, shown = _normal(mask(got)), _normal(shown)
    if got == shown:
        return False
    if (exact if exact is not None else exact_environment()) or error is None:
        return True
    shown_printed, shown_error = split_error(shown, error)
    got_printed, got_error = split_error(got, error)
    if shown_error is None or got_error is None or shown_printed != got_printed:
        return True
    message = shown_error.split(": ", 1)[1]
    return own is None or any(part in message for part in own)


def problem(result: Result, *, exact: bool | None = None, own: list[str] | None = None) -> str | None:
    """What is wrong with one block's run, compared with its page (None: nothing)."""
    block, where = result.block, f"line {result.block.lineno} ({result.block.section or 'top'})"
    exact = exact if exact is not None else exact_environment()
    if result.skipped:
        return None
    if block.must_fail and result.error is None:
        return f"{where}: must fail with {block.must_fail} but ran without error"
    if result.error is not None and not result.failed_as_it_must:
        return None  # the caller re-raises the real error
    varies = block.mark("varies")
    if varies and varies.holds and result.holds is not True:
        return f"{where}: what must hold on every machine does not: {varies.holds}"
    if result.output.strip() and block.expected is None:
        return f"{where}: prints output but the page shows none; run `make outputs`"
    if varies and not exact:
        return None  # the page says this output depends on the machine, and why
    if block.expected is not None and differs(block.expected, result.output, exact=exact,
                                              error=block.must_fail, own=own):
        warned = "".join(f"\n(warning, not output: {w})" for w in result.warnings)
        return (f"{where}: output differs from the page; run `make outputs` if the code changed on purpose."
                f"\npage shows:\n{block.expected}\nthe code printed:\n{mask(result.output)}{warned}")
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
