"""The outputs shown under a page's blocks: the output policy (exact on the pinned CPU versions; elsewhere only
what CONTRIBUTING.md, "Output shown on a page is produced by the code", lets differ) and the output fences
rewritten from a run of the English page, for both languages (`make outputs`).
"""
from __future__ import annotations

import ast
import functools
import hashlib
import re
from pathlib import Path

from pagekit.page import parse_page, python_blocks, read
from pagekit.project import DOCS, LANGS, ROOT, pins
from pagekit.run import Result, results_from, run_pages

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


def code_sha(code: str) -> str:
    """A block's code, fingerprinted: a stored run's output is shown only for the code that made it."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()[:16]


def torch_release() -> tuple[int, ...]:
    """The running torch's release as numbers, (2, 14) for 2.14.1+cu130: comparable, unlike strings
    ("2.11" < "2.9")."""
    import torch

    return tuple(int(n) for n in torch.__version__.split("+")[0].split(".")[:2])


def exact_environment() -> bool:
    """True on the versions the page outputs were made with: compare exactly."""
    import torch

    return torch.__version__.split("+")[0] == pins().get("torch") and not torch.cuda.is_available()


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
    """Does a run's output differ from what the page shows? Off the pin, only the message of the error a
    must-fail block raises (`error`) may, when it is not the project's own (`own`; None: all are own): PyTorch
    rewords its errors between releases; the type and what the block printed before must still match."""
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


def _printed_lines(text: str) -> list[str]:
    return [line for line in mask(text).split("\n") if line.strip()]


_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _numbers_free(block) -> bool:
    """A `varies(cpu=True)` block: its numbers depend on the CPU (bfloat16 kernels, threads), on the pin too."""
    varies = block.mark("varies")
    return bool(varies and varies.cpu)


def differs_beyond_numbers(shown: str, got: str) -> bool:
    """Do two outputs differ in more than their numbers: a line, a word, a sign?"""
    return [_NUMBER.sub("#", line) for line in _printed_lines(shown)] != \
        [_NUMBER.sub("#", line) for line in _printed_lines(got)]


def program_differs(blocks: list, printed: str, *, exact: bool | None = None,
                    own: list[str] | None = None) -> bool:
    """Does a runnable copy's output (`printed`, `blocks` run as one program) differ from what the page shows
    under its blocks? Blank lines aside, on the pin it is their outputs exactly (a `varies(cpu=True)` block's
    numbers aside); elsewhere it must split, in order, into one run of lines per block that `differs` passes,
    a `varies` block's lines free."""
    got = _printed_lines(printed)
    if exact if exact is not None else exact_environment():
        shown = [(line, _numbers_free(b)) for b in blocks for line in _printed_lines(b.expected or "")]
        return len(got) != len(shown) or any(differs_beyond_numbers(want, line) if free else want != line
                                             for line, (want, free) in zip(got, shown))

    @functools.cache
    def fits(i: int, start: int) -> bool:  # blocks[i:] print got[start:]
        if i == len(blocks):
            return start == len(got)
        block, shown = blocks[i], "\n".join(_printed_lines(blocks[i].expected or ""))
        ends = range(start, len(got) + 1)
        free = block.mark("varies") and not _numbers_free(block)
        if not (free or block.must_fail):
            ends = [start + len(_printed_lines(shown))] if start + len(_printed_lines(shown)) <= len(got) else []

        def passes(part: str) -> bool:
            if _numbers_free(block):
                return not differs_beyond_numbers(shown, part)
            return free or not differs(shown, part, exact=False, error=block.must_fail, own=own)
        return any(passes("\n".join(got[start:end])) and fits(i + 1, end) for end in ends)

    return not fits(0, 0)


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
    if _numbers_free(block) and block.expected is not None:
        if differs_beyond_numbers(block.expected, result.output):
            return (f"{where}: output differs from the page in more than its numbers (varies(cpu=True)); run "
                    f"`make outputs` if the code changed on purpose.\npage shows:\n{block.expected}\n"
                    f"the code printed:\n{mask(result.output)}")
        return None  # the page says its numbers depend on the CPU, and why
    if varies and not exact:
        return None  # the page says this output depends on the machine, and why
    if block.expected is not None and differs(block.expected, result.output, exact=exact,
                                              error=block.must_fail, own=own):
        warned = "".join(f"\n(warning, not output: {w})" for w in result.warnings)
        return (f"{where}: output differs from the page; run `make outputs` if the code changed on purpose."
                f"\npage shows:\n{block.expected}\nthe code printed:\n{mask(result.output)}{warned}")
    return None


# --- make outputs --------------------------------------------------------------------------------
def fence_for(output: str, indent: str = "") -> list[str]:
    """An output fence; `indent`: its block's, so that the fence stays inside the same
    admonition (an exercise's collapsed solution) as the block it belongs to."""
    lines = ["<!--pytest-codeblocks:expected-output-->", "```text", *output.rstrip("\n").split("\n"), "```"]
    return [indent + line if line else line for line in lines]


def rewrite(text: str, outputs: list[str | None]) -> str:
    """The page with each Python block's output fence set from `outputs` (None: leave it)."""
    lines = text.split("\n")
    blocks = python_blocks(parse_page(text))
    if len(blocks) != len(outputs):
        raise ValueError(f"{len(outputs)} outputs for {len(blocks)} Python blocks")
    for block, output in reversed(list(zip(blocks, outputs))):
        if output is None:
            continue
        opening = lines[block.lineno - 1]  # lineno: the body's first line, 0-based
        indent = opening[:len(opening) - len(opening.lstrip())]
        new = fence_for(output, indent) if output.strip() else []
        if block.expected_span:
            first, last = block.expected_span
            lines[first - 1:last] = new
        elif new:
            lines[block.end:block.end] = ["", *new]
    out = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", out)


def page_outputs(pages: list[Path]) -> dict[Path, list[str | None]]:
    """Each Python block's masked output (None for a block that was skipped), per page, from a
    run of its program."""
    found = {}
    for page, run in run_pages(pages).items():
        blocks = read(page)
        results = results_from(run.records, blocks)
        for r in results:
            if r.error is not None and not r.failed_as_it_must:
                raise RuntimeError(f"{page}:{r.block.lineno} failed: {r.output}\n{r.error}")
            if r.block.must_fail and r.error is None and not r.skipped:
                raise RuntimeError(f"{page}:{r.block.lineno} must fail with {r.block.must_fail}")
        if len(results) != len(python_blocks(blocks)):
            raise RuntimeError(f"{page}: the run stopped after {len(results)} blocks:\n{run.stderr}")
        found[page] = [None if r.skipped or _same_but_numbers(r) else mask(r.output) for r in results]
    return found


def _same_but_numbers(result: Result) -> bool:
    """A `varies(cpu=True)` block that printed other digits only: this CPU's, not a change to the page."""
    block = result.block
    return (_numbers_free(block) and block.expected is not None
            and not differs_beyond_numbers(block.expected, result.output))


def write_outputs(names: list[str], check: bool = False) -> list[str]:
    """Rewrite both languages' output fences of the chapters named (all where none) from a run of the English
    page; the pages that were stale (with `check`, only report them)."""
    names = sorted({Path(a).name for a in names or []}) or sorted(p.name for p in (DOCS / "en").glob("*.md"))
    chapters = [DOCS / "en" / n for n in names if any(b.is_python for b in read(DOCS / "en" / n))]
    stale = []
    for en, outputs in page_outputs(chapters).items():
        for lang in LANGS:
            page = DOCS / lang / en.name
            old = page.read_text(encoding="utf-8")
            new = rewrite(old, outputs)
            if new != old:
                stale.append(str(page.relative_to(ROOT)))
                if not check:
                    page.write_text(new, encoding="utf-8")
    return stale
