"""Chapters read like a textbook (DESIGN.md §3): each page is one program, shown in short blocks,
each function or class shown once; what the built site shows is what runs; the downloads run."""
from __future__ import annotations

import ast
import html
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from pagekit import export, project
from pagekit.comments import code_tokens
from pagekit.page import parse_page, python_blocks
from pagekit.project import LANGS, ROOT
from pagekit.run import remembered

MAX_LINES, MEDIAN_LINES, LINE_LENGTH = 45, 15, 88


CHAPTERS = [chapter.page for chapter in project.CHAPTERS]  # the nav's Task sections (pagekit/project.py)


def site_folder(site: Path, lang: str, page: str) -> Path:
    stem = Path(page).stem
    return site / stem if lang == "zh" else site / lang / stem


def html_python_blocks(site: Path, lang: str, page: str) -> list[str]:
    """The code of each Python block as the built page shows it (what a reader copies)."""
    text = (site_folder(site, lang, page) / "index.html").read_text(encoding="utf-8")
    found = re.findall(r'<div class="language-python highlight"><pre>.*?<code[^>]*>(.*?)</code></pre>', text, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", code)).rstrip("\n") for code in found]


def page_blocks(page: str, lang: str = "en"):
    path = ROOT / "docs" / lang / page
    return python_blocks(parse_page(path.read_text(encoding="utf-8"), str(path)))


def defined_names(code: str) -> set[str]:
    """Functions and classes a block defines at its top level (inside if/try/with too)."""
    names, todo = set(), list(ast.parse(code).body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            todo += [n for field in ("body", "orelse", "finalbody", "handlers") for n in getattr(node, field, [])]
        elif isinstance(node, ast.ExceptHandler):
            todo += node.body
    return names


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", CHAPTERS)
def test_each_function_and_class_is_shown_once(built_site, page, lang):
    where: dict[str, list[int]] = {}
    for n, code in enumerate(html_python_blocks(built_site, lang, page), 1):
        for name in defined_names(code):
            where.setdefault(name, []).append(n)
    assert {name: blocks for name, blocks in where.items() if len(blocks) > 1} == {}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", CHAPTERS)
def test_the_site_shows_the_code_that_runs(built_site, page, lang):
    shown = html_python_blocks(built_site, lang, page)
    assert shown == [export.block_code(b, lang) for b in page_blocks(page, lang)]


def test_shown_blocks_are_short(built_site, capsys):
    lengths = {page: [len(code.split("\n")) for code in html_python_blocks(built_site, "en", page)]
               for page in CHAPTERS}
    every = sorted(n for counts in lengths.values() for n in counts)
    with capsys.disabled():
        print(f"\nshown Python blocks: {len(every)}, median {statistics.median(every):g}, longest {max(every)}")
        for page, counts in lengths.items():
            print(f"  {page}: {len(counts)} blocks, median {statistics.median(counts):g}, longest {max(counts)}")
    assert statistics.median(every) <= MEDIAN_LINES
    assert [(p, n) for p, counts in lengths.items() for n in counts if n > MAX_LINES] == []


@pytest.mark.parametrize("page", CHAPTERS)
def test_shown_code_reads_cleanly(built_site, page):
    """Lines of at most 88 characters, a blank line before each top-level definition that
    follows other code, and no name imported that the page's program never uses."""
    problems = []
    for n, code in enumerate(html_python_blocks(built_site, "en", page), 1):
        lines = code.split("\n")
        problems += [f"block {n}: line of {len(line)} characters" for line in lines if len(line) > LINE_LENGTH]
        for i, line in enumerate(lines[1:], 1):
            before = lines[i - 1].strip()
            if re.match(r"(def|class|async def|@)\s*\w", line) and before and not before.startswith(("@", "#")):
                problems.append(f"block {n}: no blank line before `{line[:40]}`")
    script = (site_folder(built_site, "en", page) / f"{Path(page).stem}.py").read_text(encoding="utf-8")
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F401,F811,F821",
                           "--output-format", "concise", "--stdin-filename", f"{Path(page).stem}.py", "-"],
                          input=script, capture_output=True, text=True)
    problems += [line for line in lint.stdout.splitlines() if re.search(r":\d+:\d+: F", line)]
    assert problems == []


# --- the downloads ----------------------------------------------------------------------------------
@pytest.mark.parametrize("page", CHAPTERS)
def test_every_chapter_offers_a_notebook_and_a_script_in_words(built_site, page):
    stem = Path(page).stem
    for lang, words in (("zh", ("下载 Notebook", "下载脚本")), ("en", ("Download notebook", "Download script"))):
        text = (site_folder(built_site, lang, page) / "index.html").read_text(encoding="utf-8")
        for name, word in zip((f"{stem}.ipynb", f"{stem}.py"), words):
            assert re.search(rf'<a href="{re.escape(name)}" download class="md-button tpn-download">.*?'
                             rf"<span>{word}</span></a>", text, re.S), (lang, name)
            assert (site_folder(built_site, lang, page) / name).is_file()


def _code_only(script: str) -> str:
    """A script without its docstring, its full-line comments and its blank lines."""
    body = script.split('"""', 2)[2]
    return "\n".join(line for line in body.split("\n") if line.strip() and not line.lstrip().startswith("#"))


@pytest.mark.parametrize("page", CHAPTERS)
def test_downloads_hold_the_page_and_link_to_the_hosted_site(served_site, page):
    built_site = served_site.root
    stem = Path(page).stem
    scripts, notebooks = {}, {}
    for lang in LANGS:
        folder = site_folder(built_site, lang, page)
        scripts[lang] = (folder / f"{stem}.py").read_text(encoding="utf-8")
        notebooks[lang] = nbformat.read(folder / f"{stem}.ipynb", as_version=4)
        nbformat.validate(notebooks[lang])
        prose = "\n".join(c.source for c in notebooks[lang].cells if c.cell_type == "markdown")
        assert "](../" not in prose and "](#" not in prose and ".md)" not in prose
        assert "<!--pytest" not in prose and "--8<--" not in prose and "!!! " not in prose
        assert served_site.base in scripts[lang].split("\n", 3)[2]  # the site's address (SITE_URL)
        assert served_site.base in prose
    # the same code; only comments and docstrings are in the page's language (pagekit.comments)
    assert code_tokens(scripts["zh"].split('"""', 2)[2]) == code_tokens(scripts["en"].split('"""', 2)[2])
    code = {lang: [c.source for c in nb.cells if c.cell_type == "code"] for lang, nb in notebooks.items()}
    assert [code_tokens(c) for c in code["zh"]] == [code_tokens(c) for c in code["en"]]
    # every block the page runs is a cell, in order; what fails on purpose is tagged so "Run all" goes on
    blocks = [b for b in page_blocks(page) if not b.mark("skip")]
    assert code["en"] == [export.block_code(b) for b in blocks]
    assert code["zh"] == [export.block_code(b, "zh") for b in blocks]
    tagged = [c.metadata.get("tags") == ["raises-exception"] for c in notebooks["en"].cells if c.cell_type == "code"]
    assert tagged == [bool(b.must_fail) for b in blocks]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", CHAPTERS)
def test_downloaded_script_is_the_program_the_page_run_ran(built_site, page, lang):
    """The page's run (conftest.py) runs its script's code block by block, in a fresh interpreter
    without the repository, in an empty folder: the script on the site holds exactly that code, in
    that order, between its comments (in the page's language), and compiles as one file."""
    name = f"{Path(page).stem}.py"
    script = (site_folder(built_site, lang, page) / name).read_text(encoding="utf-8")
    compile(script, name, "exec")  # a SyntaxError here would stop `python FILE` before its first line
    spawn = export.starts_processes(page_blocks(page))
    ran = [export.script_code(b, spawn, lang) for b in page_blocks(page)]
    assert _code_only(script) == _code_only('"""\n"""\n' + "\n".join(code for code in ran if code is not None))


@pytest.mark.parametrize("lang", LANGS)
def test_the_box_of_a_chapter_that_starts_workers_says_what_windows_and_macos_readers_do(built_site, lang):
    """Only the data chapter starts worker processes; its box says how to run it under spawn."""
    # the box's first words: the environment chapter's recap also says that Windows and macOS use spawn
    words = {"zh": "本章会启动 worker 进程。Windows 和 macOS 用 spawn",
             "en": "This chapter starts worker processes. Windows and macOS start them by spawn"}[lang]
    with_note = {page for page in CHAPTERS
                 if words in (site_folder(built_site, lang, page) / "index.html").read_text(encoding="utf-8")}
    assert with_note == {page for page in CHAPTERS if export.starts_processes(page_blocks(page))}
    assert with_note == {"data.md"}


# --- Colab: each chapter's notebook, committed where repo_url points (pagekit/colab.py) -----------
def test_the_colab_notebooks_are_committed_as_make_colab_writes_them():
    from pagekit import colab
    assert colab.write_all(check=True) == [], "run `make colab` and commit notebooks/"
    committed = {p.relative_to(colab.NOTEBOOKS).as_posix() for p in colab.NOTEBOOKS.rglob("*.ipynb")}
    assert committed == {f"{lang}/{Path(page).stem}.ipynb" for page in CHAPTERS for lang in LANGS}


@pytest.mark.parametrize("page", CHAPTERS)
def test_a_colab_notebook_is_the_built_notebook_with_its_setup_cell_in_front(served_site, page):
    """The notebook Colab opens is the one the page offers (made for the hosted site, whose
    address the committed copy holds where this build holds its own), one cell added."""
    from pagekit import colab
    hosted = colab.configured("site_url", "SITE_URL")
    for lang in LANGS:
        built = (site_folder(served_site.root, lang, page) / f"{Path(page).stem}.ipynb").read_text(encoding="utf-8")
        built_nb = nbformat.reads(built.replace(served_site.base, hosted), as_version=4)
        committed = nbformat.read(colab.notebook_path(page, lang), as_version=4)
        nbformat.validate(committed)
        assert committed.cells[0].id == "colab-setup"
        assert committed.cells[1:] == built_nb.cells


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", CHAPTERS)
def test_a_colab_notebooks_first_cell_installs_only_what_colab_lacks(page, lang):
    from pagekit import colab
    nb = nbformat.read(colab.notebook_path(page, lang), as_version=4)
    first, rest = nb.cells[0], nb.cells[1:]
    imported = {name for cell in rest if cell.cell_type == "code"
                for name in colab.third_party(colab.imported(nbformat.from_dict({"cells": [cell]})))}
    lacking = sorted(imported - colab.COLAB_HAS)
    if not lacking:
        assert first.cell_type == "markdown" and "pip" not in first.source
        assert all(colab.DISTRIBUTION.get(n, n) in first.source for n in imported)
        return
    assert first.cell_type == "code"
    pip = first.source.split("\n")[-1]
    assert pip.startswith("%pip install -q ")
    assert sorted(re.findall(r'"([A-Za-z0-9_.-]+)>=', pip)) == lacking


def test_only_the_saving_chapter_needs_an_install_in_colab():
    from pagekit import colab
    needs = {page: colab.to_install(colab.chapter_notebook(page, "en")) for page in CHAPTERS}
    assert {page: found for page, found in needs.items() if found} == {
        "saving.md": [f"safetensors>={project.pins()['safetensors']}"]}


def test_a_colab_notebook_of_an_unknown_page_or_language_is_refused():
    from pagekit import colab
    with pytest.raises(FileNotFoundError, match="docs/en/nope.md: no such page"):
        colab.chapter_notebook("nope.md", "en")
    with pytest.raises(ValueError, match="no Colab words for language 'fr'"):
        colab.chapter_notebook("layers.md", "fr")


@pytest.mark.parametrize("lang", LANGS)
def test_each_chapter_opens_its_committed_notebook_in_colab(built_site, lang):
    from pagekit import colab
    repo = os.environ.get("REPO_URL") or colab.configured("repo_url", "REPO_URL")
    words = "Open in Colab" if lang == "en" else "在 Colab 中打开"
    for page in CHAPTERS:
        text = (site_folder(built_site, lang, page) / "index.html").read_text(encoding="utf-8")
        url = colab.colab_url(repo, lang, Path(page).stem)
        assert url.endswith(f"/blob/main/notebooks/{lang}/{Path(page).stem}.ipynb") and colab.notebook_path(page, lang).is_file()
        link = re.search(rf'<a href="{re.escape(url)}" class="md-button tpn-download tpn-colab">(.*?)</a>', text, re.S)
        assert link and f"<span>{words}</span>" in link.group(1), f"{lang}/{page}"
    assert colab.colab_url("https://gitlab.com/a/b", lang, "layers") is None


def test_a_notebook_cell_that_must_fail_and_does_not_stops_the_run(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", id="one"), nbformat.v4.new_code_cell("y = x + 1", id="two")]
    nb.cells[1].metadata["tags"] = ["raises-exception"]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = remembered([sys.executable, "-m", "pagekit.run", "r.json", path.name], cwd=tmp_path, env=env,
                      depends=[path], files=["."])
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "r.json").read_text())[path.name]["returncode"] == 1
    assert "tagged raises-exception but ran without error" in (tmp_path / "nb.ipynb.err").read_text()


def test_a_page_offers_the_files_its_front_matter_lists(built_site):
    """multi-gpu shows ddp_train.py in sections; torchrun starts the whole file, offered as it is
    on the English page and with its comments and docstrings in Chinese on the zh page, as the
    zh page's blocks show them."""
    source = ROOT / "snippets" / "ddp_train.py"
    for lang in LANGS:
        folder = site_folder(built_site, lang, "multi-gpu.md")
        assert '<a href="ddp_train.py" download' in (folder / "index.html").read_text(encoding="utf-8")
    en = (site_folder(built_site, "en", "multi-gpu.md") / "ddp_train.py").read_bytes()
    assert en == source.read_bytes()
    zh = (site_folder(built_site, "zh", "multi-gpu.md") / "ddp_train.py").read_text(encoding="utf-8")
    assert code_tokens(zh) == code_tokens(source.read_text(encoding="utf-8"))
    assert "DDP 在这里对所有 rank 的梯度取平均" in zh and '"""用 DistributedDataParallel（DDP）' in zh
    shown = "\n".join(html_python_blocks(built_site, "zh", "multi-gpu.md"))
    assert "# DDP 在这里对所有 rank 的梯度取平均" in shown  # the same words as the page's block


# --- API names link to PyTorch's documentation ----------------------------------------------------
API_LINK = re.compile(r'<a class="tpn-api" href="([^"]*)" title="([^"]*)"><code>([^<]*)</code></a>')
# Names as each chapter writes them, linked on both languages' pages (pagekit/apilinks.py).
LINKED = {"data.md": ["DataLoader", "ImageFolder", "v2.RandomAffine"],
          "layers.md": ["nn.Conv2d", "F.conv2d", "F.max_pool2d"],
          "training.md": ["autocast", "GradScaler", "optimizer.zero_grad()", "torch.no_grad()"],
          "saving.md": ["torch.save", "torch.load", "state_dict"],
          "multi-gpu.md": ["nn.DataParallel", "DistributedDataParallel", "DistributedSampler"],
          "init.md": ["nn.init.xavier_normal_", "model.apply"],
          "losses.md": ["nn.BCEWithLogitsLoss", "F.cross_entropy"]}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", sorted(LINKED))
def test_api_names_in_the_prose_link_to_their_documentation(built_site, page, lang):
    from pagekit import apilinks
    text = (site_folder(built_site, lang, page) / "index.html").read_text(encoding="utf-8")
    found = {html.unescape(written): (href, title) for href, title, written in API_LINK.findall(text)}
    for written in LINKED[page]:
        full = apilinks.full_name(written)
        assert found.get(written) == (apilinks.inventory()[full], full), f"{lang}/{page}: {written}"


def test_every_linked_api_name_is_in_the_inventory_and_outside_headings_and_code(built_site):
    from pagekit import apilinks
    names, pages = apilinks.inventory(), 0
    for path in built_site.rglob("index.html"):
        text = path.read_text(encoding="utf-8")
        for href, title, written in API_LINK.findall(text):
            assert names.get(title) == href and apilinks.full_name(html.unescape(written)) == title, path
        pages += 'class="tpn-api"' in text
        for heading in re.findall(r"<h[1-6][^>]*>.*?</h[1-6]>", text, re.S):
            assert 'class="tpn-api"' not in heading, path
        for block in re.findall(r"<pre.*?</pre>", text, re.S):
            assert 'class="tpn-api"' not in block, path
    assert pages >= 2 * len(LINKED)


# --- blocks outside the page's program -------------------------------------------------------------
NOTE = re.compile(r'<p class="tpn-not-run"[^>]*>(.*?)</p>\s*(?:<!--.*?-->\s*)*<div class="language-python highlight">')


@pytest.mark.parametrize("page", CHAPTERS)
def test_each_block_outside_the_program_says_why_in_the_pages_language(built_site, page):
    """A skipped block says above it, in the reader's words, why the page's program leaves it out
    and what to do; the GPU checkpoints it reads download from the page, byte for byte."""
    for lang in LANGS:
        folder = site_folder(built_site, lang, page)
        notes = NOTE.findall((folder / "index.html").read_text(encoding="utf-8"))
        skipped = [b for b in page_blocks(page, lang) if b.mark("skip")]
        assert [html.unescape(re.sub(r"<[^>]+>", "", n)) for n in notes] == [export.not_run(b, lang) for b in skipped]
        assert all(bool(re.search(r"[\u4e00-\u9fff]", n)) == (lang == "zh") for n in notes)
        for name in {m for n in notes for m in re.findall(r'href="([^"]+\.pt)" download', n)}:
            assert (folder / name).read_bytes() == (ROOT / "tests/fixtures/gpu-checkpoints" / name).read_bytes()
        script = (folder / f"{Path(page).stem}.py").read_text(encoding="utf-8")
        assert all(export.not_run(b, lang) in script.replace("\n# ", " ") for b in skipped)


def test_a_skip_reason_without_readers_words_fails_the_build():
    [block] = python_blocks(parse_page('<!--pytest.mark.skip(reason="too slow: tests/x.py runs it")-->\n'
                                       "```python\nx = 1\n```\n"))
    with pytest.raises(ValueError, match="skip reason 'too slow: tests/x.py runs it' has no reader's words"):
        export.not_run(block, "en")


# --- outputs: each one shown is labelled, and is one the page's run compares --------------------
_OUTPUT_BOX = re.compile(r'<div class="language-text highlight tpn-output"(?: data-search-exclude="1")?>'
                         r'<span class="filename">([^<]*)</span><pre><span></span>'  # the built page: a copy button
                         r'(?:<nav class="md-code__nav"><button [^>]*></button></nav>)?<code(?: id="tpn-code-\d+")?>'
                         r'(.*?)</code></pre></div>', re.S)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", CHAPTERS)
def test_every_output_shown_is_labelled_and_is_the_one_the_run_compares(built_site, page, lang):
    """The built page shows exactly the page's expected outputs, in order, each labelled;
    those inside an exercise's collapsed solution (indented fences) inside its <details>;
    no other text block that would look like output."""
    text = (site_folder(built_site, lang, page) / "index.html").read_text(encoding="utf-8")
    blocks = [b for b in parse_page((ROOT / "docs" / lang / page).read_text(encoding="utf-8"))
              if b.expected is not None]
    shown = _OUTPUT_BOX.findall(text)
    # Markdown expands tabs (a PyTorch error message indents with them) to 4-column stops
    assert [html.unescape(code) for _, code in shown] == [b.expected.rstrip("\n").expandtabs(4) + "\n" for b in blocks]
    assert {label for label, _ in shown} <= {"输出" if lang == "zh" else "Output"}
    in_details = sum(len(_OUTPUT_BOX.findall(d)) for d in re.findall(r"<details\b.*?</details>", text, re.S))
    source = (ROOT / "docs" / lang / page).read_text(encoding="utf-8")
    assert in_details == source.count("    <!--pytest-codeblocks:expected-output-->")
    assert '<div class="language-text highlight">' not in text


def test_an_output_inside_a_collapsed_solution_is_labelled_inside_it():
    """Inside an admonition Markdown would wrap the box's HTML in a paragraph and read the output
    as Markdown (`__x__` bold): the hook puts the box in after Markdown has run."""
    import markdown

    from hooks.chapters import labelled_outputs, with_nested_outputs

    source = ('??? success "Solution"\n\n    ```python\n    print(1)\n    ```\n\n'
              "    <!--pytest-codeblocks:expected-output-->\n    ```text\n    a * b * c\n    __x__ <t>\n    ```\n\n"
              "After.\n")
    nested: dict[str, str] = {}
    md = labelled_outputs(source, "Output", nested=nested)
    assert len(nested) == 1
    page = markdown.markdown(md, extensions=["admonition", "md_in_html", "pymdownx.details", "pymdownx.superfences"])
    page = with_nested_outputs(page, nested)
    details, after = page.split("</details>")
    assert _OUTPUT_BOX.findall(details) == [("Output", "a * b * c\n__x__ &lt;t&gt;\n")]
    assert "<p>After.</p>" in after and "tpnnestedoutput" not in page
    with pytest.raises(ValueError, match="not one paragraph"):
        with_nested_outputs("<p>changed</p>", nested)


# --- what a chapter gives readers: goals first, a recap and exercises last ---------------------------
OPENER = {"zh": ('!!! abstract "本章概览"', "**你将学到：**", "**先读：**", "**运行时间：**", "2 核 CPU"),
          "en": ('!!! abstract "In this chapter"', "**You will learn**", "**You need first:**", "**Run time:**",
                 "2-core CPU")}
ENDING = {"zh": ("## 小结", "## 练习", '??? success "答案"'), "en": ("## Recap", "## Exercises", '??? success "Solution"')}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", CHAPTERS)
def test_a_chapter_opens_with_its_goals_and_ends_with_a_recap_and_two_exercises(page, lang):
    """Under the title's first paragraph: what the reader will learn (3-5 points), the earlier
    chapters to read first (linked), the program's run time on a 2-core CPU. At the end: a recap
    of 3-5 points, then two exercises, each solved in a collapsed block by code from the chapter's
    snippet module (an `exercise_` section) with its output inside the block."""
    text = (ROOT / "docs" / lang / page).read_text(encoding="utf-8")
    module = Path(page).stem.replace("-", "_")
    head, _, rest = text.partition("\n## ")
    title, learn, needs, time, cpu = OPENER[lang]
    assert title in head and head.index(title) > head.index("\n# ")
    opener = head[head.index(title):].split("\n\n!!!")[0]
    goals = opener.split(learn)[1].split(needs)[0]
    assert 3 <= len(re.findall(r"^    - ", goals, re.M)) <= 5
    earlier = CHAPTERS[:CHAPTERS.index(page)]
    linked = re.findall(r"\]\(([\w-]+\.md)\)", opener.split(needs)[1].split(time)[0])
    assert set(linked) <= set(earlier) | {"index.md"} and (set(linked) - {"index.md"} or not earlier), linked
    assert cpu in opener.split(time)[1]
    recap_title, exercises_title, solution = ENDING[lang]
    *_, recap, exercises = ("\n## " + rest).split("\n## ")
    assert "## " + recap.split("\n")[0] == recap_title and "## " + exercises.split("\n")[0] == exercises_title
    assert 3 <= len(re.findall(r"^- ", recap, re.M)) <= 5
    solutions = exercises.split(solution)[1:]
    assert len(solutions) == 2
    for body in solutions:
        body = body.split("\n\n**")[0]  # up to the next exercise
        section = re.search(rf'^    --8<-- "snippets/{module}\.py:(exercise_\w+)"$', body, re.M)
        assert section, body
        assert "\n    <!--pytest-codeblocks:expected-output-->\n    ```text\n" in body
        # the solution is asserted, not only run: tests/test_<module>.py has a test named for it
        tests = (ROOT / "tests" / f"test_{module}.py").read_text(encoding="utf-8")
        assert re.search(rf"^def test_{section[1]}\w*\(", tests, re.M), section[1]


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", CHAPTERS)
def test_the_notebooks_prose_has_no_stray_indented_lines(page, lang):
    """Prose that follows a block inside an admonition (an exercise's solution) stays in that
    admonition, quoted, in the notebook; indented by four spaces it would read as code."""
    text = (ROOT / "docs" / lang / page).read_text(encoding="utf-8")
    chapter = export.read_chapter(text, "https://example.invalid/x/", "https://example.invalid/", lang=lang)
    for kind, part in chapter.parts:
        if kind != "md":
            continue
        outside_fences = re.sub(r"^```.*?^```", "", part, flags=re.S | re.M)
        assert not re.search(r"^ {4}\S", outside_fences, re.M), part[:200]


def test_prose_after_a_solutions_block_is_quoted_like_its_header():
    page = ('Task.\n\n??? success "Solution"\n\n    ```python\n    --8<-- "snippets/autograd.py:imports"\n    ```\n\n'
            "    Why it works.\n\n    More.\n\nNext task.\n")
    parts = export.read_chapter(page, "https://example.invalid/x/", "https://example.invalid/").parts
    assert [kind for kind, _ in parts] == ["md", "code", "md"]
    assert parts[0][1] == "Task.\n\n> **Solution**\n>"
    assert parts[2][1] == "> Why it works.\n>\n> More.\n\nNext task."


# What a test does belongs in its docstring and CONTRIBUTING.md; a page may say that a claim is
# checked, and a skip reason names its test, but the prose does not describe the test suite.
_ABOUT_THE_TESTS = re.compile(r"\b(?<!tests/)test_\w+|\bA test\b|another test|repository's tests|test in the repository"
                              r"|repository's settings|有一个测试|另一个测试|页面测试|仓库中的测试在|仓库中的测试把|本仓库的设置")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", CHAPTERS)
def test_the_page_talks_to_readers_not_about_its_tests(page, lang):
    text = (ROOT / "docs" / lang / page).read_text(encoding="utf-8")
    prose = [line for line in text.splitlines() if not line.lstrip().startswith(("<!--", "--8<--"))]
    assert [line for line in prose if _ABOUT_THE_TESTS.search(line)] == []
