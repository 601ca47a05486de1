"""The site itself: strict build, language parity, every shown block accounted for, Chinese search."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pagekit.page import MarkerError, expand, includes, parse_page
from pagekit.project import LANGS, ROOT
from pagekit.run import remembered
from tools.reproducible import differences

DOCS = ROOT / "docs"
PAGE_SUFFIXES = (".md", ".ipynb")


def pages(lang: str) -> set[str]:
    base = DOCS / lang
    return {str(p.relative_to(base)) for p in base.rglob("*") if p.suffix in PAGE_SUFFIXES}


def md_pages() -> list[Path]:
    return sorted(p for lang in LANGS for p in (DOCS / lang).rglob("*.md"))


def mkdocs(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_strict_build_passes(built_site):
    assert (built_site / "index.html").exists() and (built_site / "en" / "index.html").exists()


def test_both_languages_have_the_same_pages():
    assert pages("zh") == pages("en")
    assert pages("zh"), "no pages found"


def test_every_page_is_in_the_nav():
    cfg = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)

    def walk(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, list):
            for v in node:
                yield from walk(v)
        else:
            yield node

    assert set(walk(cfg["nav"])) == pages("zh")


@pytest.mark.parametrize("page", sorted(pages("zh") & pages("en")), ids=str)
def test_language_pair_includes_the_same_sections_in_order(page):
    if not page.endswith(".md"):
        pytest.skip("notebooks are checked by their generator's test")
    shown = {}
    for lang in LANGS:
        text = (DOCS / lang / page).read_text(encoding="utf-8")
        shown[lang] = [(b.lang, includes(b.source)) for b in parse_page(text)]
        # a generated fragment in the page's own language (generated/verified.zh.md) counts as the same
        shown[lang] += [("page", [m.replace(f".{lang}.", ".<lang>.")])
                        for m in re.findall(r'^--8<-- "([^"]+)"$', text, re.M)]
    assert shown["zh"] == shown["en"]


# generated table (generated/<name>.<lang>.md) -> the page that includes it
GENERATED_TABLES = {"layers-bench": "layers.md", "training-compile": "training.md", "multi-gpu-table": "multi-gpu.md"}
# Latin letters allowed outside code spans in a Chinese table: units and memory-format names
LATIN_IN_ZH = {"ms", "NCHW", "NHWC"}


@pytest.mark.parametrize("name", GENERATED_TABLES)
def test_generated_tables_are_in_the_pages_language_with_the_same_numbers(name):
    """Each page includes its own language's table (issue 12): the Chinese one has no English words
    outside code spans and a Chinese word in every header row, the English one no Chinese, and both
    hold the same numbers in the same order (one measurement, rendered twice)."""
    texts = {lang: (ROOT / "generated" / f"{name}.{lang}.md").read_text(encoding="utf-8") for lang in LANGS}
    assert not (ROOT / "generated" / f"{name}.md").exists(), "the one-language table is gone"
    for lang in LANGS:
        page = (DOCS / lang / GENERATED_TABLES[name]).read_text(encoding="utf-8")
        assert re.findall(r'^--8<-- "generated/' + re.escape(name) + r'[^"]*"$', page, re.M) == [
            f'--8<-- "generated/{name}.{lang}.md"']
    assert not _HAN.search(texts["en"]) and not re.search(r"[\u3000-\u303f\uff00-\uffef]", texts["en"])
    zh_lines = texts["zh"].splitlines()
    headers = [line for line, below in zip(zh_lines, zh_lines[1:]) if re.fullmatch(r"\|( :?-+:? \|)+", below)]
    assert headers and all(_HAN.search(h) for h in headers), headers
    prose = re.sub(r"`[^`]*`|<[^>]*>", " ", texts["zh"])
    assert set(re.findall(r"[A-Za-z]{2,}", prose)) <= LATIN_IN_ZH, prose
    numbers = {lang: re.findall(r"\d+(?:\.\d+)?", text) for lang, text in texts.items()}
    assert numbers["zh"] == numbers["en"] and numbers["en"]


@pytest.mark.parametrize("page", md_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_block_is_run_or_skipped_with_a_reason(page):
    problems = block_problems(page.read_text(encoding="utf-8"))
    assert problems == []


def block_problems(text: str) -> list[str]:
    """Why a page's fences would escape the test run or break the page model (empty when none)."""
    problems = []
    try:
        blocks = parse_page(text)
    except MarkerError as err:
        return [str(err)]
    for b in blocks:
        where = f"line {b.lineno}"
        if b.cont:
            problems.append(f"{where}: `cont` marker: a page is one program now, every block continues the last")
        if b.is_python:
            if b.info != b.lang:
                problems.append(f"{where}: fence options ({b.info!r}) are not allowed; use a plain ```python")
            skip = b.mark("skip")
            if skip and not re.search(r"tests/test_\w+\.py", skip.reason):
                problems.append(f"{where}: a skip reason must name the test that runs this code instead")
            code = expand(b.source)
            if re.search(r"^\s*(from|import)\s+snippets\b", code, re.M):
                problems.append(f"{where}: a shown block imports the project's `snippets` package")
            if not includes(b.source):
                problems.append(f"{where}: code typed in Markdown; include it from snippets/")
            if re.search(r"^\s*-+8<-+\s*$", b.source, re.M):
                problems.append(f"{where}: write one `--8<-- \"file:section\"` line per include, blank lines between")
        elif b.lang in ("bash", "sh", "shell", "console"):
            if not includes(b.source) or expand(b.source).strip() == b.source.strip():
                problems.append(f"{where}: shell blocks may only include files that a test executes")
            if b.marks:
                problems.append(f"{where}: shell blocks are not run here; put their test in tests/")
        elif b.lang in ("text", "") and b.marks:
            problems.append(f"{where}: test markers on a non-Python fence do nothing")
        elif b.lang not in ("text", ""):
            problems.append(f"{where}: fence language {b.lang!r} is neither run nor allowed; use ```python")
        else:
            problems.append(f"{where}: a {b.lang or 'plain'} fence that is not an expected output is typed output")
    return problems


@pytest.mark.parametrize("fence, problem", [
    ('```py title="x.py"\nprint(1)\n```', "fence options"),
    ('<!--pytest.mark.skip-->\n```python\n--8<-- "snippets/layers.py:imports"\n```', "needs reason="),
    ('<!--pytest.mark.skip(reason="x")-->\n```python\n--8<-- "snippets/layers.py:imports"\n```',
     "must name the test"),
    ('<!--pytest.mark.xfail(raises=__import__("pickle").X, strict=True)-->\n```python\n--8<-- "a:b"\n```',
     "page:1: bad marker"),
    ('<!--pytest-codeblocks:cont-->\n```python\n--8<-- "snippets/layers.py:imports"\n```', "one program"),
    ('```python\n--8<--\nsnippets/layers.py:imports\n--8<--\n```', "one `--8<--"),
    ("```python\nprint(1)\n```", "code typed in Markdown"),
    ("```pycon\n>>> 1\n```", "neither run nor allowed"),
    ("```text\n1\n```", "typed output"),
    ("```bash\npip install torch\n```", "shell blocks may only include"),
    ('```python\n--8<-- "snippets/layers.py:imports"\n```\n<!--pytest-codeblocks:expected-output-->\n```text\n\n```',
     None),
])
def test_block_checker_catches_unaccounted_blocks(fence, problem):
    found = block_problems(fence + "\n")
    if problem is None:
        assert found == []
    else:
        assert any(problem in p for p in found), found


def test_search_index_holds_jieba_segmented_chinese(built_site):
    index = json.loads((built_site / "search" / "search_index.json").read_text(encoding="utf-8"))
    zh_docs = [d for d in index["docs"] if not d["location"].startswith("en/")]
    text = " ".join(d["title"] + " " + d["text"] for d in zh_docs)
    # jieba splits 训练循环 ("training loop") into two searchable words, but keeps the glossary's
    # terms whole (hooks/search_lang.py): 梯度累加 ("gradient accumulation"), 图中断 ("graph break")
    assert "训练\u200b循环" in text
    from hooks import search_lang  # imports mkdocs: not at module level (the GPU machine has none)

    for term in search_lang.glossary_terms((ROOT / "docs" / "zh" / "glossary.md").read_text(encoding="utf-8")):
        assert f"\u200b{term}\u200b" in text or term not in text.replace("\u200b", ""), term
    assert "\u200b梯度累加\u200b" in text and "\u200b图中断\u200b" in text
    assert "\\u200b" in index["config"]["separator"]


def test_a_texts_cut_is_remembered_by_the_text_and_the_dictionary(monkeypatch):
    """hooks/search_lang.py: Material's jieba cut runs once per text and dictionary (jieba's version,
    the glossary's terms), not at every build; the build's search index takes the remembered cut."""
    from material.plugins.search.plugin import SearchIndex

    from hooks import search_lang
    cuts = []
    monkeypatch.setattr(search_lang, "_material_cut", lambda self, text: cuts.append(text) or text.replace("的", "\u200b的\u200b"))
    text = f"剪切的记忆 {time.time_ns()}"  # a text no earlier cut has seen
    dictionary = search_lang._dictionary()
    assert "梯度累加" in dictionary and dictionary[0] == search_lang.jieba.__version__
    assert SearchIndex._segment_chinese(None, text) == text.replace("的", "\u200b的\u200b")
    assert search_lang.cut(text, dictionary) == search_lang.cut(text, dictionary) and cuts == [text]
    search_lang.cut(text, (*dictionary, "剪切"))  # a new glossary term: cut again
    assert cuts == [text, text]
    from pagekit import memo
    monkeypatch.setattr(memo, "_salt", lambda: "a snippet was edited")  # the engine's work misses; not the cut
    assert search_lang.cut(text, dictionary) and cuts == [text, text]


def test_a_pages_render_is_remembered_by_what_it_reads_unless_it_warned(tmp_path, monkeypatch):
    """hooks/build_cache.py: MkDocs renders a page's Markdown once per Markdown, included files and
    addresses; a render that logged a warning renders again at every build, so `--strict` fails again."""
    import logging
    from types import SimpleNamespace

    from mkdocs.structure.toc import get_toc

    from hooks import build_cache
    calls = []

    def render(page, config, files):  # MkDocs' Page.render, in short
        calls.append(page.markdown)
        if "bad link" in page.markdown:
            logging.getLogger("mkdocs.structure.pages").warning("a link to a page that does not exist")
        page.content, page._title_from_render = f"<h1 id=\"t\">{page.markdown}</h1>", "T"
        page.toc = get_toc([{"level": 1, "id": "t", "name": "T", "children": []}])
        page.present_anchor_ids, page.links_to_anchors = {"t"}, {}

    monkeypatch.setattr(build_cache, "_page_render", render)
    monkeypatch.setattr(build_cache, "ROOT", tmp_path)
    (tmp_path / "part.py").write_text("x = 1\n")
    config = SimpleNamespace(theme={"language": "en"}, site_url="http://127.0.0.1/")

    def page(markdown):
        return SimpleNamespace(markdown=markdown, file=SimpleNamespace(src_uri="a.md", url="a/"), content=None)

    markdown = f'{time.time_ns()}\n\n--8<-- "part.py:one"\n'
    first, second = page(markdown), page(markdown)
    build_cache._render(first, config, [])
    build_cache._render(second, config, [])
    assert calls == [markdown] and second.content == first.content and second._title_from_render == "T"
    assert [a.id for a in second.toc] == ["t"] and second.present_anchor_ids == {"t"}
    (tmp_path / "part.py").write_text("x = 2\n")  # an included file changed: rendered again
    build_cache._render(page(markdown), config, [])
    assert calls == [markdown] * 2
    for _ in range(2):
        build_cache._render(page(markdown + " bad link"), config, [])
    assert calls == [markdown] * 2 + [markdown + " bad link"] * 2


def test_the_memo_file_is_written_only_when_a_build_used_other_results(tmp_path, monkeypatch):
    """pagekit.memo: a warm build, which used what the file holds, does not write its 7 MB again."""
    from pagekit import memo
    monkeypatch.setattr(memo, "CACHE", tmp_path / "memo.json")
    for name, empty in (("_seen", {}), ("_used", {}), ("_on_disk", set())):
        monkeypatch.setattr(memo, name, empty)
    memo.recall("t", 1, lambda: "one", salted=False)
    memo.save()
    assert list(json.loads(memo.CACHE.read_text()).values()) == ["one"]
    memo.CACHE.write_text("{}")  # a save that writes replaces it
    memo.recall("t", 1, lambda: "one", salted=False)
    memo.save()
    assert memo.CACHE.read_text() == "{}"
    memo.recall("t", 2, lambda: "two", salted=False)
    memo.save()
    assert sorted(json.loads(memo.CACHE.read_text()).values()) == ["one", "two"]
    memo.CACHE.unlink()  # removed by hand: written again
    memo.save()
    assert memo.CACHE.is_file()


def test_a_pages_search_entries_are_remembered_by_all_they_are_made_of(monkeypatch):
    """hooks/search_lang.py: Material parses a page's HTML into entries once per page content, title,
    table of contents and front matter; a warm build appends the remembered entries, and `mkdocs serve`,
    which runs the hook module again, still wraps Material's own method."""
    import importlib
    from types import SimpleNamespace

    from material.plugins.search.plugin import SearchIndex
    from mkdocs.structure.toc import get_toc

    from hooks import search_lang
    parsed = []
    monkeypatch.setattr(search_lang, "_material_add", lambda index, page: parsed.append(page.url) or
                        search_lang.add_entry_from_context.__wrapped__(index, page))
    html = f'<h1 id="t">Title</h1><p>words {time.time_ns()}</p><h2 id="s">Part</h2><p>more</p>'
    toc = get_toc([{"level": 1, "id": "t", "name": "Title", "html": "Title", "children": [
        {"level": 2, "id": "s", "name": "Part", "html": "Part", "children": []}]}])
    page = SimpleNamespace(content=html, url="x/", title="Title", meta={}, toc=toc)
    first, second = SearchIndex(), SearchIndex()
    first.add_entry_from_context(page)
    second.add_entry_from_context(page)
    assert first.entries == second.entries and parsed == ["x/"]
    assert [e["location"] for e in first.entries] == ["x/", "x/#s"] and first.entries[1]["text"] == "<p>more</p>"
    for changed in ({"content": html.replace("more", "other")}, {"title": "Other"}, {"meta": {"search": {"boost": 2}}}):
        SearchIndex().add_entry_from_context(SimpleNamespace(**{**vars(page), **changed}))
    assert parsed == ["x/"] * 4
    first.entries[0]["text"] = "edited"  # a build's entries are its own: the remembered ones stay
    third = SearchIndex()
    third.add_entry_from_context(page)
    assert parsed == ["x/"] * 4 and third.entries == second.entries and third.entries[0]["text"] != "edited"
    from pagekit import memo
    monkeypatch.setattr(memo, "_salt", lambda: "a snippet was edited")  # the page's HTML says if it changed
    SearchIndex().add_entry_from_context(page)
    assert parsed == ["x/"] * 4
    material = search_lang.add_entry_from_context.__wrapped__
    importlib.reload(search_lang)
    assert SearchIndex.add_entry_from_context.__wrapped__ is material
    assert SearchIndex._segment_chinese.__wrapped__.__module__ == "material.plugins.search.plugin"


def test_each_language_has_its_own_clean_search_index(built_site):
    """hooks/search_lang.py: one index per language; no page furniture in it (data-search-exclude,
    put on by hooks/chapters.py and hooks/search_index.py)."""
    zh = json.loads((built_site / "search" / "search_index.json").read_text(encoding="utf-8"))
    en = json.loads((built_site / "en" / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert zh["config"]["lang"] == ["zh"] and en["config"]["lang"] == ["en"]
    assert zh["docs"] and en["docs"]
    assert not any(d["location"].startswith("en/") for d in zh["docs"] + en["docs"])
    assert "layers/" in {d["location"] for d in en["docs"]}
    for doc in zh["docs"] + en["docs"]:
        for furniture in ("¶", "In\xa0[", "In [", "Copied!", ">Output<", ">输出<", "How to run this chapter", "怎样运行本章"):
            assert furniture not in doc["title"] + doc["text"], (doc["location"], furniture)
    worker = (built_site / "assets" / "javascripts" / "workers" / "search-i18n.js").read_text(encoding="utf-8")
    assert "lunr.stemmer" in worker and "importScripts" in worker


def test_search_index_leaves_code_blocks_out_and_pages_keep_them(built_site):
    """hooks/search_index.py: prose and inline code are indexed, code blocks are not, and each
    page still shows every code block (neither the placeholders nor the attributes the search
    plugin saw are left on a page)."""
    index = json.loads((built_site / "search" / "search_index.json").read_text(encoding="utf-8"))
    indexed = " ".join(d["text"] for d in index["docs"] if d["location"].startswith("layers/"))
    assert "<pre" not in indexed and "<code>nn.Conv2d</code>" in indexed
    page = (built_site / "layers" / "index.html").read_text(encoding="utf-8")
    blocks = [html.unescape(re.sub(r"<[^>]+>", "", b)) for b in re.findall(r"<pre\b.*?</pre>", page, re.S)]
    lines = [max(b.splitlines(), key=len).strip() for b in blocks]
    lines = [line for line in lines if len(line) > 15]  # each block's longest line, if not too short to tell
    assert len(lines) >= 10
    assert [line for line in lines if line in html.unescape(indexed)] == []
    for built in built_site.rglob("*.html"):
        text = built.read_text(encoding="utf-8")
        assert "<!--code-block-->" not in text and "data-search-exclude" not in text, built


def test_a_second_build_is_byte_identical(served_site, second_build):
    """Two builds at the same SITE_URL give the same bytes. In a fresh clone the session's build is
    cold and the second (started by tests/conftest.py when the first was done) warm, so the caches
    change nothing either. (`make reproducible` compares two cold builds and a warm one.)"""
    status, log, root = second_build
    assert status == 0, log[-3000:]
    found = differences(served_site.root, root)
    assert found == [], f"{len(found)} files differ between two builds:\n" + "\n".join(found)


def test_the_build_date_is_the_last_commits(monkeypatch):
    """hooks/chapters.py: SOURCE_DATE_EPOCH (the sitemap's dates) is the last commit's time, so two
    builds a day apart are byte-identical too; one set from outside is kept."""
    from hooks import chapters
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # so that monkeypatch restores the environment after
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    chapters.on_config(None)
    head = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True, text=True)
    assert os.environ["SOURCE_DATE_EPOCH"] == head.stdout.strip() != ""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    chapters.on_config(None)
    assert os.environ["SOURCE_DATE_EPOCH"] == "86400"


def test_no_list_is_left_inside_a_paragraph(built_site):
    """Python-Markdown starts a list only after a blank line: a list typed right under a sentence
    (in an admonition too) renders as one paragraph with " - " in it."""
    found = []
    for page in built_site.rglob("index.html"):
        for paragraph in re.findall(r"<p>((?:(?!</p>).)*)</p>", page.read_text(encoding="utf-8"), re.S):
            if re.search(r"\n\s*(?:[-*]|\d+\.) \S", paragraph):
                found.append(f"{page.relative_to(built_site)}: {paragraph[:80]!r}")
    assert found == []


def test_chinese_headings_get_readable_anchors(built_site):
    html = (built_site / "autograd" / "index.html").read_text(encoding="utf-8")
    assert 'id="梯度累加"' in html


COPIED = ("docs", "snippets", "generated", "overrides", "hooks", "tools", "mkdocs.yml", "conftest.py", "pagekit",
          "pyproject.toml", "requirements.txt")  # hooks/chapters.py reads the pins


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("copy")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def test_a_removed_section_fails_the_build_and_the_tests(project_copy):
    layers = project_copy / "snippets" / "layers.py"
    layers.write_text(layers.read_text(encoding="utf-8").replace("[start:demo_unfold]", "[start:renamed]"),
                      encoding="utf-8")
    # both commands remembered by the copy's files (run.remembered), kept when they fail as they must
    sources = [project_copy / name for name in COPIED]
    build = remembered([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", "site"], cwd=project_copy,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, depends=sources,
                       keep=lambda done: done.returncode != 0)
    assert build.returncode != 0
    # the last line: the labs' kernels, started with the build (hooks/notebook_pages.py), are stopped, not heard
    assert build.stderr.rstrip().endswith("Snippet section 'demo_unfold' could not be located")
    run = remembered([sys.executable, "-m", "pytest", "-q", "docs/en/layers.md"], cwd=project_copy, depends=sources,
                     keep=lambda done: done.returncode != 0)
    assert run.returncode != 0
    assert "Snippet section 'demo_unfold' could not be located" in run.stdout


def test_every_page_has_a_description():
    for page in md_pages():
        head = page.read_text(encoding="utf-8").split("---", 2)
        assert len(head) == 3 and re.search(r"^description: \S", head[1], re.M), f"{page} has no description"


def test_quickstart_commands_exist(tmp_path):
    """Run the home page's shell lines with a recording `make`, then dry-run each target for real."""
    fake = tmp_path / "make"
    fake.write_text('#!/bin/sh\necho "$@" >> "$MAKE_LOG"\n')
    fake.chmod(0o755)
    log = tmp_path / "log"
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "MAKE_LOG": str(log)}
    subprocess.run(["bash", "-e", str(ROOT / "snippets" / "quickstart.sh")], cwd=ROOT, env=env, check=True)
    targets = log.read_text().split()
    assert targets == ["test", "serve"]
    for target in targets:
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert dry.returncode == 0, dry.stderr


def _nav_entries(node, titles=()):
    """(title path, page) for every page in mkdocs.yml's nav."""
    if isinstance(node, list):
        for item in node:
            yield from _nav_entries(item, titles)
    elif isinstance(node, dict):
        for title, value in node.items():
            yield from _nav_entries(value, (*titles, title))
    else:
        yield titles, node


def test_every_nav_title_has_its_english_translation():
    cfg = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    i18n = next(p["i18n"] for p in cfg["plugins"] if isinstance(p, dict) and "i18n" in p)
    en = next(lang for lang in i18n["languages"] if lang["locale"] == "en")
    titles = {t for path, _ in _nav_entries(cfg["nav"]) for t in path}
    assert titles - set(en["nav_translations"]) == set()


def test_each_chapter_has_its_snippet_module_and_test_file():
    """A chapter (pagekit.project.CHAPTERS: a page under the nav's Task1/Task3 sections) <slug>.md has
    snippets/<module>.py, which it includes, and tests/test_<module>.py; <module> is the slug with - as _
    (multi-gpu -> multi_gpu). Every page with Python blocks, in every language, is a chapter (or a lab)."""
    from pagekit.page import is_chapter
    from pagekit.project import CHAPTERS

    chapters = [c.page for c in CHAPTERS]
    assert len(chapters) >= 10
    problems = [f"{lang}/{p.name}: has Python blocks but is not under a Task section of the nav"
                for lang in LANGS for p in sorted((DOCS / lang).glob("*.md"))
                if is_chapter(p.read_text(encoding="utf-8")) and p.name not in chapters]
    for page in chapters:
        module = Path(page).stem.replace("-", "_")
        for need in (f"snippets/{module}.py", f"tests/test_{module}.py"):
            if not (ROOT / need).is_file():
                problems.append(f"{page}: no {need}")
        for lang in LANGS:
            if f'--8<-- "snippets/{module}.py:' not in (DOCS / lang / page).read_text(encoding="utf-8"):
                problems.append(f"{lang}/{page}: includes nothing from snippets/{module}.py")
    assert problems == []


def test_the_tests_contributing_names_exist():
    """CONTRIBUTING.md names the test behind each rule (`test_site.py::test_...`): each exists."""
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8"))
    assert len(named) >= 10
    missing = [f"{file}::{name}" for file, name in named
               if not re.search(rf"^def {name}\(", (ROOT / "tests" / file).read_text(encoding="utf-8"), re.M)]
    assert missing == []


@pytest.mark.parametrize("lang", LANGS)
def test_every_chapter_is_in_the_home_pages_table(lang):
    cfg = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    pages = {page for path, page in _nav_entries(cfg["nav"]) if page.endswith(".md") and page != "index.md"}
    table = "\n".join(line for line in (DOCS / lang / "index.md").read_text(encoding="utf-8").split("\n")
                      if line.startswith("|"))
    assert {p for p in pages if f"]({p})" not in table} == set()


@pytest.mark.parametrize("lang", LANGS)
def test_the_home_page_starts_a_learner_on_every_chapter_in_order(lang):
    """"Start here": a numbered path through every chapter, once each, in the nav's order, and the
    name of the runnable-copy button as the pages show it (hooks/chapters.py's RUNNABLE_WORDS)."""
    from hooks.chapters import RUNNABLE_WORDS
    from pagekit.project import CHAPTERS

    text = (DOCS / lang / "index.md").read_text(encoding="utf-8")
    title = {"zh": "## 从这里开始\n", "en": "## Start here\n"}[lang]
    section = text.split(title)[1].split("\n## ")[0]
    path = re.findall(r"^\d+\. \[[^\]]+\]\(([\w-]+\.md)\)", section, re.M)
    assert path == [chapter.page for chapter in CHAPTERS]
    assert RUNNABLE_WORDS[lang][0].split("（")[0].split(" (")[0] in section


# ---------------------------------------------------------------- everything in the page's language

_HAN = re.compile(r"[\u4e00-\u9fff]")


def _article(page_html: str) -> str:
    """The page's own text: the <article>, tags and code removed."""
    found = re.search(r"<article\b.*?</article>", page_html, re.S)
    text = re.sub(r"<(pre|code|script)\b.*?</\1>", " ", found[0] if found else "", flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


def test_language_menu_links_are_relative(built_site):
    """The header's language menu links each page's counterpart relatively (hooks/i18n.py), the
    home pages included, so the site works in a local preview and under any path. Only the 404
    pages, served at any address, link the homes from the site's root."""
    checked = 0
    for built in built_site.rglob("*.html"):
        rel = built.relative_to(built_site).as_posix()
        if rel.startswith(("assets/", "search/")) or built.name == "404.html":
            continue
        links = re.findall(r'<a href="([^"]*)" hreflang="([^"]*)" class="md-select__link"', built.read_text("utf-8"))
        assert {lang for _, lang in links} == set(LANGS), rel
        absolute = [href for href, _ in links if href.startswith(("/", "http:", "https:"))]
        assert absolute == [], f"{rel}: absolute language links {absolute}"
        checked += 1
    home = (built_site / "index.html").read_text("utf-8")
    assert '<a href="en/" hreflang="en" class="md-select__link"' in home
    assert '<a href="../" hreflang="zh" class="md-select__link"' in (built_site / "en" / "index.html").read_text("utf-8")
    assert checked == 2 * len(pages("zh"))


@pytest.mark.parametrize("lang,path", [("zh", "404.html"), ("en", "en/404.html")])
def test_each_404_page_is_in_its_own_language(built_site, lang, path):
    """hooks/i18n.py + overrides/404.html: /404.html all Chinese, /en/404.html all English,
    each linking its own home and the other language's home (named in that language)."""
    page = (built_site / path).read_text("utf-8")
    assert f'<html lang="{lang}"' in page
    sections = re.findall(r'<section lang="([^"]*)" class="tpn-not-found">(.*?)</section>', page, re.S)
    assert [s_lang for s_lang, _ in sections] == [lang]
    body = sections[0][1]
    other = re.findall(r'<a href="([^"]*)" hreflang="([^"]*)" lang="([^"]*)">([^<]*)</a>', body)
    assert [(href, hreflang) for href, hreflang, _, _ in other] == (
        [("/en/", "en")] if lang == "zh" else [("/", "zh")])
    # outside the other language's name, the page's words are in its language only
    words = _article(re.sub(r'<a href="[^"]*" hreflang="[^"]*" lang="[^"]*">[^<]*</a>', " ", page))
    if lang == "zh":
        assert "404：页面不存在" in words and not re.search(r"[A-Za-z]{3,}", words), words
    else:
        assert "404: page not found" in words and not _HAN.search(words), words
    home = re.search(r'<a href="([^"]*)" hreflang="([^"]*)" class="tpn-home">', body)
    assert home and home.groups() == (("/", "zh") if lang == "zh" else ("/en/", "en"))


@pytest.mark.parametrize("lang", LANGS)
def test_home_page_table_and_figures_are_in_the_pages_language(built_site, lang):
    """The home page includes its own language's 'verified' table; each chapter shows its own
    language's pictures (`make figures`: <name>.<lang>.png) with alt text in that language."""
    prefix = "" if lang == "zh" else "en/"
    home = (built_site / prefix / "index.html").read_text("utf-8")
    heads = {"zh": "<th>验证环境</th>", "en": "<th>Verified on</th>"}
    assert heads[lang] in home and heads["en" if lang == "zh" else "zh"] not in home
    images = []
    for built in built_site.rglob("index.html"):
        rel = built.relative_to(built_site).as_posix()
        if rel.startswith("en/") != (lang == "en"):
            continue
        for tag in re.findall(r"<img\b[^>]*>", built.read_text("utf-8")):
            src = re.search(r'src="([^"]*)"', tag)[1]
            if "assets/img/" in src:
                images.append((rel, src, html.unescape(re.search(r'alt="([^"]*)"', tag)[1])))
    assert len(images) >= 2, images
    for rel, src, alt in images:
        assert src.endswith(f".{lang}.png"), f"{rel}: {src} is not the {lang} picture"
        assert bool(_HAN.search(alt)) == (lang == "zh"), f"{rel}: alt text {alt!r}"


@pytest.mark.parametrize("page", md_pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_pages_front_matter_parses(page):
    """An unquoted `: ` in a description makes the YAML invalid, and MkDocs then shows the front
    matter as text: "description: ..." rendered as the page's first heading."""
    found = re.match(r"\A---\n(.*?)\n---\n", page.read_text(encoding="utf-8"), re.S)
    assert found, "a page starts with front matter (its description)"
    meta = yaml.safe_load(found.group(1))
    assert isinstance(meta, dict) and isinstance(meta.get("description"), str) and meta["description"]


def test_every_internal_link_and_anchor_of_the_built_site_resolves(served_site):
    """Every href on every built page (labs included) that stays on the site names a file that
    exists and, with a #fragment, an id on that page: a TOC entry such as `#_1` whose heading
    nbconvert left without an id fails here."""
    from urllib.parse import unquote, urlsplit

    site, base = served_site.root.resolve(), urlsplit(served_site.base).path
    pages = {p: p.read_text(encoding="utf-8", errors="replace") for p in site.rglob("*.html")}
    ids = {p: set(re.findall(r'\b(?:id|name)="([^"]*)"', text)) for p, text in pages.items()}
    broken = []
    for page, text in pages.items():
        for href in map(html.unescape, re.findall(r'\bhref="([^"]*)"', text)):
            parts = urlsplit(href)
            if parts.scheme or href.startswith("//") or not href:
                continue
            path = unquote(parts.path)
            if path.startswith("/"):  # the not-found pages link from the site's root
                assert path.startswith(base), f"{page}: {href} is outside the site ({base})"
                target = site / path[len(base):]
            else:
                target = (page.parent / path).resolve() if path else page
            target = target / "index.html" if target.is_dir() else target
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {href} (no such file)")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in ids[target]:
                broken.append(f"{page.relative_to(site)}: {href} (no id {unquote(parts.fragment)!r} there)")
    assert not broken, "\n".join(broken)


def test_the_chinese_pages_chrome_is_chinese(built_site):
    """Tooltips and labels that libraries write in English only are translated on zh pages
    (hooks/chapters.py CHROME); the English pages keep them."""
    from hooks.chapters import CHROME

    for english, own in CHROME["zh"].items():
        zh = [p for p in built_site.rglob("*.html") if not p.relative_to(built_site).parts[0] == "en"]
        assert not [p for p in zh if english in p.read_text(encoding="utf-8")], english
        assert any(own in p.read_text(encoding="utf-8") for p in zh), own
        assert any(english in p.read_text(encoding="utf-8") for p in (built_site / "en").rglob("*.html")), english
