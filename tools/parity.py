"""Do the two languages of a page say the same things? Compared `##` section by section.

Per section: the same code blocks (language, marks, with or without an output under them), the
same count of paragraphs, list items and table rows, and the same numbers. Numbers are what a
reader would notice changing: every number of two or more digits or with a decimal point, every
percentage, every size such as 8×8, anything inside `code`; written 1,437 or 1437 alike, and
never inside a link target. Single-digit words differ by language ("2-D" / 二维) and are left out.

    python -m tools.parity            # every page pair, one line per difference
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field

from pagekit.page import MARKER, parse_mark
from pagekit.project import ROOT

DOCS = ROOT / "docs"
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_HTML_ATTR = re.compile(r'\b(?:href|src|id|class)="[^"]*"')
_CODE = re.compile(r"`([^`]+)`")
_SIZE = re.compile(r"\d+(?:\s*[×x]\s*\d+)+")
_NUMBER = re.compile(r"(?<![\w.])[-−]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])[-−]?\d+(?:\.\d+)?")


@dataclass
class Section:
    title: str
    blocks: list[tuple] = field(default_factory=list)
    paragraphs: int = 0
    list_items: int = 0
    table_rows: int = 0
    numbers: Counter = field(default_factory=Counter)
    anchor: str = ""                                   # the heading's anchor (its slug)
    fences: list[str] = field(default_factory=list)    # the raw text of its fences
    lines: list[str] = field(default_factory=list)     # its prose lines



def _mark_key(word: str) -> str:
    """A marker as both languages must share it: a `varies` reason is written in the page's
    language, so only its name and `holds` must match."""
    if word.startswith("pytest.mark.varies"):
        mark = parse_mark(word)
        return f"varies(holds={mark.holds!r})"
    return word

def _numbers(text: str) -> list[str]:
    text = _HTML_ATTR.sub("", _LINK_TARGET.sub("]", text))
    found = []
    for code in _CODE.findall(text):
        found += [n.replace(",", "").replace("−", "-") for n in _NUMBER.findall(code)]
    prose = _CODE.sub(" ", text)
    for size in _SIZE.findall(prose):
        found.append(re.sub(r"\s*[×x]\s*", "×", size))
    prose = _SIZE.sub(" ", prose)
    for m in re.finditer(_NUMBER, prose):
        n = m.group(0).replace(",", "").replace("−", "-")
        percent = re.match(r"\s*%", prose[m.end():])
        if percent or len(n.lstrip("-")) > 1:
            found.append(n + ("%" if percent else ""))
    return found


def sections(text: str) -> list[Section]:
    """A page cut at its `##` headings (the part before the first is called 'top')."""
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    out = [Section("top")]
    lines, i, paragraph = text.split("\n"), 0, False
    marks: list[str] = []
    expect = False
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        here = out[-1]
        if line.startswith("## "):
            out.append(Section(line[3:].strip()))
            here = out[-1]
            here.numbers.update(_numbers(line[3:]))
            paragraph = False
        elif MARKER.match(stripped):
            word = MARKER.match(stripped).group(1)
            if word == "pytest-codeblocks:expected-output":
                expect = True
            else:
                marks.append(_mark_key(word))
            paragraph = False
        elif _FENCE.match(line):
            ticks, info = _FENCE.match(line).group(2), _FENCE.match(line).group(3).strip()
            i += 1
            start = i
            while i < len(lines) and not lines[i].strip().startswith(ticks):
                i += 1
            here.fences.append("\n".join(lines[start:i]))
            if expect and here.blocks:
                here.blocks[-1] = (*here.blocks[-1][:2], "with output")
            else:
                here.blocks.append((info.split()[0] if info else "", tuple(marks), "no output"))
            marks, expect, paragraph = [], False, False
        elif not stripped:
            paragraph = False
        elif stripped.startswith("|"):
            if not re.match(r"^\|[\s:|-]+\|$", stripped):
                here.table_rows += 1
                here.numbers.update(_numbers(stripped))
            paragraph = False
        elif re.match(r"^([-*+]|\d+\.)\s", stripped):
            here.list_items += 1
            here.numbers.update(_numbers(re.sub(r"^\d+\.", "", stripped)))
            paragraph = True
        elif stripped.startswith(("#", "!!!", "???", "--8<--", "<")):
            here.numbers.update(_numbers(re.sub(r"^#+|^[!?]{3}\+?\s*\w+", "", stripped)))
            paragraph = False
        else:
            if not paragraph:
                here.paragraphs += 1
            here.numbers.update(_numbers(stripped))
            paragraph = True
        if not line.startswith("## ") and stripped:
            here.lines.append(stripped)
        i += 1
    for section in out[1:]:
        section.anchor = _slug(section.title)
    return out


def _slug(title: str) -> str:
    from pymdownx.slugs import slugify

    return slugify(case="lower")(title, "-")


def differences(zh_text: str, en_text: str) -> list[str]:
    """What the two languages of one page do not share, as 'section (zh / en): what' lines."""
    zh, en = sections(zh_text), sections(en_text)
    if len(zh) != len(en):
        return [f"{len(zh) - 1} `##` sections in zh, {len(en) - 1} in en"]
    found = []
    for a, b in zip(zh, en):
        where = f"section {a.title!r} / {b.title!r}"
        for name in ("blocks", "paragraphs", "list_items", "table_rows"):
            if getattr(a, name) != getattr(b, name):
                found.append(f"{where}: {name.replace('_', ' ')} differ: zh {getattr(a, name)}, en {getattr(b, name)}")
        if a.numbers != b.numbers:
            only_zh, only_en = a.numbers - b.numbers, b.numbers - a.numbers
            found.append(f"{where}: numbers differ: only in zh {sorted(only_zh.elements())}, "
                         f"only in en {sorted(only_en.elements())}")
    return found


def page_pairs() -> list[str]:
    return sorted(p.name for p in (DOCS / "en").glob("*.md") if (DOCS / "zh" / p.name).exists())


def main() -> int:
    bad = 0
    for name in page_pairs():
        for line in differences((DOCS / "zh" / name).read_text("utf-8"), (DOCS / "en" / name).read_text("utf-8")):
            print(f"{name}: {line}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())


# --- numbers the prose states: each must be one the page computes, or a stated fact -----------
_TUPLE = re.compile(r"[(\[](\d+(?:, \d+)+)[)\]]")

# Numbers a page states that are facts, not results of its code (versions, years, figures from
# elsewhere). Keyed by page; each with why it is not computed. tests/test_parity.py checks that
# every other number of a chapter's prose occurs in what the page computes (its code, its
# outputs, the generated files it includes), rounded as the prose rounds it.
STATED_FACTS: dict[str, dict[str, str]] = {
    "containers.md": {"8×8": "the digits' image size, from scikit-learn's documentation",
                      "64×32": "a layer's weight shape, arithmetic in the prose (= 2410)",
                      "32×10": "a layer's weight shape, arithmetic in the prose (= 2410)",
                      "512×10": "the new head's weight shape, arithmetic in the prose",
                      "5130": "512 × 10 + 10, arithmetic in the prose",
                      "513000": "ResNet-18's own head, 512 × 1000 + 1000, arithmetic in the prose",
                      "507870": "513,000 − 5,130, arithmetic in the prose"},
    "data.md": {"3.13": "a Python version", "3.14": "a Python version", "3.11": "a Python version",
                "18": "seconds to an epoch's first batch without persistent workers, measured by this "
                      "page's run on the 2-core build machine (durations show as ... in the output)",
                "0.02": "seconds to a later epoch's first batch with persistent workers, the same run",
                "4×4": "32 / 8: the block each pixel becomes when upscaled",
                "2×4": "prefetch_factor × num_workers, arithmetic in the prose",
                "2.6": "a torch version: the oldest the pages support (tools/matrix.py RELEASES), which prints this otherwise"},
    "environment.md": {"3.13": "a Python version", "3.14": "a Python version", "3.11": "a Python version",
                       "3.12": "a Python version (torch 2.6's setuptools marker, tests/test_environment.py)",
                       "10.2": "a CUDA version in the notes", "2022": "a year", "2.5": "a torch version",
                       "138506": "an issue number", "11.0": "the notes' CUDA toolkit folder (cuda-11.0)",
                       "440": "a pip download size in MB, from PyTorch's wheel index",
                       "2.11": "the torch of the H200 run in generated/gpu-report.json (tests/test_gpu_check.py)",
                       "0.21": "torchvision for torch 2.6, whose requirement tests/test_environment.py reads under make matrix",
                       "0.26": "torchvision for torch 2.11, the same",
                       "2.15": "the newest torch the pages support (tools/matrix.py RELEASES)",
                       "0.30": "the torchvision release that does not exist yet (PyPI's newest is 0.29.2)",
                       "2.7": "the torch release from which current_accelerator() answers without a device (PyTorch's docs)"},
    "init.md": {"23": "√512 ≈ 22.6, arithmetic in the prose", "73728": "the weights of the 128×64×3×3 layer, arithmetic in the prose"},
    "layers.md": {"20": "a value of the 5×5 input shown (0 to 24)", "2×2": "the example kernel's size", "1×2": "the edge kernel's size",
                  "3×3": "a kernel size", "1×1": "a kernel size (the speed table's 1×1 layer)",
                  "2.6": "a torch version: the oldest the pages support (tools/matrix.py RELEASES), which prints this otherwise"},
    "losses.md": {"-89": "float32 sigmoid underflow, a property of the format",
                  "17": "float32 sigmoid saturation", "255": "the usual 'void' label of segmentation data sets",
                  "10": "sigmoid(10), a value in the prose's own example"},
    "multi-gpu.md": {"3.9": "a Python version", "2.11": "the torch version of the GPU fixtures",
                     "297": "1,797 − 1,500, arithmetic in the prose", "85%": "the accuracy the test requires",
                     "2017": "the year of the linear scaling rule's paper",
                     "2.14": "the torch version the page was checked with"},
    "saving.md": {"16": "seconds the AOTInductor compile took on the 2-core build machine (the block is run "
                        "by the slow test test_aoti_package_runs_the_exported_program, not by the page)",
                  "34": "the same compile's slowest time, measured while other work shared the cores",
                  "2.14": "the torch version the compile was measured with",
                  "32×64": "hidden.weight's shape, printed in the first section's output",
                  "2.9": "the torch release that made dynamo=True torch.onnx.export's default (tests/test_saving.py)"},
    "training.md": {"2.11": "a torch version whose profiler warns on one cycle (tests/test_training.py)",
                    "80%": "test_size=0.2 in the code", "2×2": "the pooling window", "3×3": "the kernel size",
                    "4×4": "8×8 after 2×2 pooling", "512×64": "the first linear layer, arithmetic in the prose",
                    "32832": "512 × 64 + 64, arithmetic in the prose", "1×2": "the 1×2 stripe example",
                    "9×0": "the 9×0 example of a wrong shape", "12": "epochs of `make figures` (tools/figures.py)",
                    "8×8": "the digits' image size", "75": "about 75: the output's 74.9828, rounded",
                    "25": "DDP's default bucket_cap_mb (MiB), tests/test_training.py checks it",
                    "2.9": "a torch release that has torch.accelerator's memory queries and fp32_precision",
                    "72": "8 blocks x 9 activations, arithmetic in the prose",
                    "4×128": "DeepMLP's hidden width: 4 times its width of 128"},
}


def _numbers_in(bodies: list[str]) -> set[str]:
    found: set[str] = set()
    for body in bodies:
        found |= {n.replace(",", "").replace("−", "-") for n in _NUMBER.findall(body)}
        found |= {re.sub(r",\s*", "×", t) for t in _TUPLE.findall(body)}
        found |= {re.sub(r"\s*[×x]\s*", "×", s) for s in _SIZE.findall(body)}
    return found


def _expanded(fence: str) -> str:
    from pagekit.page import expand

    return expand(fence)


def computed_numbers(text: str) -> set[str]:
    """Numbers in a page's code, its outputs and the generated files it includes."""
    return _numbers_in([_expanded(f) for s in sections(text) for f in s.fences]
                       + [(ROOT / inc).read_text(encoding="utf-8")
                          for inc in re.findall(r'^--8<-- "([^":]+)"$', text, re.M)])


def _section_numbers(section: Section) -> set[str]:
    return _numbers_in([_expanded(f) for f in section.fences])


def _matches(stated: str, computed: set[str]) -> bool:
    if stated in computed:
        return True
    if "×" in stated:
        return False
    percent = stated.endswith("%")
    value = stated.rstrip("%")
    try:
        x = float(value)
    except ValueError:
        return False
    decimals = len(value.split(".")[1]) if "." in value else 0
    for c in computed:
        try:
            y = float(c)
        except ValueError:
            continue
        if y == x or (percent and y * 100 == x):
            return True
        if not percent and decimals and round(y, decimals) == x:
            return True
    return False


def unaccounted_numbers(text: str, page: str) -> list[str]:
    """Numbers the prose states that the page neither computes nor lists in STATED_FACTS.

    A size stated in a section (8×8) must be computed in that section, any other number somewhere
    on the page; the introduction (before the first `##`) refers to the sections it links to
    (`(#anchor)`), or else to the whole page."""
    facts, parts = STATED_FACTS.get(page, {}), sections(text)
    by_anchor = {s.anchor: s for s in parts[1:]}
    whole = computed_numbers(text)
    problems = []
    for s in parts:
        if s is parts[0]:
            for line in s.lines:
                linked = [by_anchor[a] for a in re.findall(r"\]\(#([^)]+)\)", line) if a in by_anchor]
                computed = set().union(*map(_section_numbers, linked)) if linked else whole
                problems += [f"section 'top': {n}" for n in dict.fromkeys(_numbers(line))
                             if n not in facts and not _matches(n, computed)]
            continue
        computed = _section_numbers(s) | _numbers_in(
            [(ROOT / inc).read_text(encoding="utf-8") for f in s.fences
             for inc in re.findall(r'^--8<-- "([^":]+)"$', f, re.M)])
        # a size (8×8) must be computed in its own section; any other number anywhere on the page
        problems += [f"section {s.title!r}: {n}" for n in sorted(set(s.numbers))
                     if n not in facts and not _matches(n, computed if "×" in n else computed | whole)]
    return problems
