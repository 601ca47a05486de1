"""The errata page: every row names tests that exist, and every test of the notes' code has a row."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = {lang: ROOT / "docs" / lang / "errata.md" for lang in ("zh", "en")}
ROW = re.compile(r"^\| (E\d+) \|(.*)\|\s*$", re.M)
TESTS = re.compile(r"`((?:tests/test_\w+\.py )+)-k (notes_E\d+_)`")
# E3 is a dead web page: there is no code to run offline, the chapter cites the announcement.
WITHOUT_TESTS = {"E3"}


def rows(lang: str) -> dict[str, dict]:
    text = PAGES[lang].read_text(encoding="utf-8")
    out = {}
    for ident, rest in ROW.findall(text):
        cells = [c.strip() for c in rest.split(" | ")]
        spec = TESTS.search(cells[-1])
        link = re.search(r"\]\(([\w-]+\.md)#", cells[-2])
        out[ident] = {
            "files": spec.group(1).split() if spec else [],
            "key": spec.group(2) if spec else None,
            "page": link.group(1) if link else None,
        }
    return out


def notes_tests() -> dict[str, list[str]]:
    """file -> names of its test_notes_* functions."""
    found = {}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        names = re.findall(r"^def (test_notes_\w+)\(", path.read_text(encoding="utf-8"), re.M)
        if names:
            found[f"tests/{path.name}"] = names
    return found


def test_both_languages_list_the_same_rows_tests_and_chapters():
    zh, en = rows("zh"), rows("en")
    assert list(zh) == list(en)
    assert zh == en
    assert len(zh) >= 20


@pytest.mark.parametrize("ident", list(rows("en")))
def test_every_row_links_a_chapter_and_selects_existing_tests(ident):
    row = rows("en")[ident]
    assert row["page"] and (ROOT / "docs" / "en" / row["page"]).exists()
    if ident in WITHOUT_TESTS:
        assert row["key"] is None
        return
    assert row["key"] == f"notes_{ident}_"
    existing = notes_tests()
    for file in row["files"]:
        selected = [n for n in existing.get(file, []) if row["key"] in n]
        assert selected, f"{file} has no test matching -k {row['key']}"


def test_every_test_of_the_notes_code_has_a_row():
    listed = {(f, r["key"]) for r in rows("en").values() if r["key"] for f in r["files"]}
    missing = []
    for file, names in notes_tests().items():
        for name in names:
            ident = re.match(r"test_notes_(E\d+)_", name)
            if not ident or (file, f"notes_{ident.group(1)}_") not in listed:
                missing.append(f"{file}::{name}")
    assert missing == [], "name these tests test_notes_E<n>_... and list them on the errata page"
