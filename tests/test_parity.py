"""The two languages say the same things, and the numbers the prose states are the ones the code
computes (pagekit/parity.py) or facts stated with their reasons (tests/stated_numbers.yml). The
checker itself is tested on the changes it exists to catch."""
from __future__ import annotations

import html
import re

import pytest
import yaml

from pagekit import parity
from pagekit.page import parse_page
from pagekit.project import LANGS, ROOT
from tools.make_notebooks import LABS

DOCS = ROOT / "docs"
STATED = yaml.safe_load((ROOT / "tests" / "stated_numbers.yml").read_text(encoding="utf-8"))
CHAPTERS = [p for p in parity.page_pairs()
            if any(b.is_python for b in parse_page((DOCS / "en" / p).read_text(encoding="utf-8")))]


def read(lang: str, page: str) -> str:
    return (DOCS / lang / page).read_text(encoding="utf-8")


@pytest.mark.parametrize("page", parity.page_pairs())
def test_both_languages_say_the_same_things_section_by_section(page):
    assert parity.differences(read("zh", page), read("en", page)) == []


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("page", CHAPTERS)
def test_numbers_in_the_prose_are_computed_by_the_page(page, lang):
    assert parity.unaccounted_numbers(read(lang, page), STATED.get(page, {})) == []


def test_stated_facts_are_still_stated():
    """An entry of tests/stated_numbers.yml that no page states any more is stale."""
    for page, facts in STATED.items():
        stated = {n for s in parity.sections(read("en", page)) for n in s.numbers}
        assert set(facts) <= stated, (page, set(facts) - stated)


@pytest.mark.parametrize("lab", sorted(LABS))
def test_lab_prose_says_the_same_things_in_both_languages(lab):
    prose = [cell for cell in LABS[lab] if isinstance(cell, dict)]
    assert prose
    for cell in prose:
        assert parity.differences(cell["zh"], cell["en"]) == [], cell["en"][:60]


# Numbers the labs' prose states that their code does not print.
LAB_FACTS = {"1797": "the size of scikit-learn's digits data set (its documentation)",
             "8×8": "the digits' image size",
             "32×16×16": "the lab's hint for a 32-pixel variant it does not run (tests/test_labs.py checks it)"}


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("lab", sorted(LABS))
def test_lab_numbers_are_what_the_executed_lab_shows(built_site, lab, lang):
    page = (built_site / ("" if lang == "zh" else "en") / "labs" / lab / "index.html").read_text(encoding="utf-8")
    shown = html.unescape(re.sub(r"<[^>]+>", "", " ".join(re.findall(r"<pre\b.*?</pre>", page, re.S))))
    computed = parity.computed_numbers(f"```text\n{shown}\n```\n") | set(LAB_FACTS)
    stated = [n for cell in LABS[lab] if isinstance(cell, dict)
              for s in parity.sections(cell[lang]) for n in s.numbers]
    assert [n for n in stated if not parity._matches(n, computed)] == []


# --- the checker, on the changes it exists to catch ------------------------------------------------
def _one_paragraph_less(text: str, section: str) -> str:
    start = text.index(f"## {section}")
    head, tail = text[:start], text[start:]
    paragraphs = [m for m in re.finditer(r"\n\n([^\n<`|#!-][^\n]+)\n", tail)]
    m = paragraphs[0]
    return head + tail[:m.start()] + "\n" + tail[m.end():]


def test_a_paragraph_dropped_in_one_language_names_the_page_section():
    zh = read("zh", "layers.md")
    first = parity.sections(zh)[1].title
    found = parity.differences(_one_paragraph_less(zh, first), read("en", "layers.md"))
    assert found and found[0].startswith(f"section {first!r}") and "paragraphs differ" in found[0]


def test_an_output_removed_in_one_language_is_caught():
    en = read("en", "layers.md")
    cut = re.sub(r"<!--pytest-codeblocks:expected-output-->\n```text\n.*?\n```\n", "", en, count=1, flags=re.S)
    assert any("blocks differ" in line for line in parity.differences(read("zh", "layers.md"), cut))


@pytest.mark.parametrize("page, old, new", [
    ("training.md", "38,282", "38,382"),     # a parameter count
    ("training.md", "1,437", "1,537"),       # a dataset size
    ("layers.md", "6×6", "7×7"),             # an output shape
    ("training.md", "95 %", "99 %"),         # an accuracy
])
def test_a_number_changed_in_both_languages_is_caught(page, old, new):
    for lang in LANGS:
        text = read(lang, page)
        if old not in text:
            old_zh = old.replace(",", "")
            assert old_zh in text, f"{lang}/{page} no longer states {old}"
            text = text.replace(old_zh, new.replace(",", ""))
        else:
            text = text.replace(old, new)
        assert parity.unaccounted_numbers(read(lang, page), STATED.get(page, {})) == []
        found = parity.unaccounted_numbers(text, STATED.get(page, {}))
        assert any(found_n.endswith(new.replace(",", "").replace(" ", "")) for found_n in found), found


def test_a_number_changed_in_one_language_is_caught():
    en = read("en", "training.md").replace("38,282", "38,382")
    assert any("numbers differ" in line for line in parity.differences(read("zh", "training.md"), en))


def test_the_lab_size_of_the_data_set_is_checked():
    computed = parity.computed_numbers("```text\n1438 training images, 359 validation images\n```\n") | set(LAB_FACTS)
    assert parity._matches("1797", computed) and not parity._matches("1897", computed)
