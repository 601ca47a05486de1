"""Do the two languages of a page say the same things? Compared `##` section by section: the same code blocks
(language, marks, with or without an output), the same count of paragraphs, list items and table rows, the same
numbers; and each number the prose states is one the page computes, rounded as the prose rounds it, or a fact
that tests/stated_numbers.yml lists.

A number is what a reader would notice changing: two or more digits or a decimal point, a percentage, a size such
as 8×8, anything inside `code`; 1,437 and 1437 alike, never inside a link target. Single digits are words that
differ by language ("2-D" / 二维). `python -m tools.parity` prints the differences.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from pymdownx.slugs import slugify

from pagekit.page import MARKER, expand, parse_mark
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
    language, so only its name, `holds` and `cpu` must match."""
    if word.startswith("pytest.mark.varies"):
        mark = parse_mark(word)
        return f"varies(holds={mark.holds!r}, cpu={mark.cpu})"
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
        section.anchor = slugify(case="lower")(section.title, "-")
    return out


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


# --- numbers the prose states: each must be one the page computes, or a stated fact -----------
_TUPLE = re.compile(r"[(\[](\d+(?:, \d+)+)[)\]]")

def _numbers_in(bodies: list[str]) -> set[str]:
    found: set[str] = set()
    for body in bodies:
        found |= {n.replace(",", "").replace("−", "-") for n in _NUMBER.findall(body)}
        found |= {re.sub(r",\s*", "×", t) for t in _TUPLE.findall(body)}
        found |= {re.sub(r"\s*[×x]\s*", "×", s) for s in _SIZE.findall(body)}
    return found


def computed_numbers(text: str) -> set[str]:
    """Numbers in a page's code, its outputs and the generated files it includes."""
    return _numbers_in([expand(f) for s in sections(text) for f in s.fences]
                       + [(ROOT / inc).read_text(encoding="utf-8")
                          for inc in re.findall(r'^--8<-- "([^":]+)"$', text, re.M)])


def _section_numbers(section: Section) -> set[str]:
    return _numbers_in([expand(f) for f in section.fences])


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


def unaccounted_numbers(text: str, facts: dict[str, str]) -> list[str]:
    """Numbers the prose states that the page neither computes nor lists among its `facts`; the introduction
    (before the first `##`) refers to the sections it links to (`(#anchor)`), or else to the whole page."""
    parts = sections(text)
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
