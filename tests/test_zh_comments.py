"""Code in the reader's language (DESIGN.md §3): one source of code, English comments and
docstrings in snippets/, their Chinese in snippets/<module>.zh.yml; the zh build (page, notebook,
script) shows the Chinese, the English build the English, and only comments and docstrings differ
(pagekit/comments.py)."""
from __future__ import annotations

import html
import re
import unicodedata
from pathlib import Path

import pytest

from pagekit import comments, export
from pagekit.comments import (
    SHELLS,
    code_tokens,
    key,
    module_of,
    table,
    table_path,
    translate,
    words,
)
from pagekit.page import expand, parse_page, python_blocks
from pagekit.project import LANGS, ROOT

# Imports only what `make gpu-check` installs (it collects this module; no nbformat, no site build)
PAGES = sorted((ROOT / "docs" / "en").rglob("*.md"))
BLOCKS = [(page.name, b) for page in PAGES for b in python_blocks(parse_page(page.read_text(encoding="utf-8")))]
CHAPTERS = sorted({page for page, _ in BLOCKS})
SHELL_BLOCKS = [(page, b) for page in PAGES for b in parse_page(page.read_text(encoding="utf-8"))
                if b.lang in SHELLS]
TABLES = sorted((ROOT / "snippets").glob("*.zh.yml"))


def _without_comments(code: str, shell: bool) -> list[str]:
    lines = code.split("\n")
    for w in reversed(words(code, shell)):  # plain code: the fence is the code itself
        lines[w.start[0] - 1] = lines[w.start[0] - 1][:w.start[1]].rstrip()
    return lines


def test_every_comment_and_docstring_a_page_shows_has_a_chinese_translation():
    missing = [f"{m} [{w.section}] {w.kind}: {text!r}" for m, texts in comments.missing("zh").items()
               for text, w in texts.items()]
    assert missing == [], ("add these to the module's .zh.yml (`python -m tools.code_comments` prints "
                           "them as entries to translate):\n" + "\n".join(missing))


def test_every_translation_still_has_its_english_text_in_a_shown_block():
    shown: dict[str, set[str]] = {}
    for w in comments.shown_words():
        shown.setdefault(w.module, set()).add(key(w.text))
    stale = [f"{path.relative_to(ROOT)}: {text!r}" for path in TABLES
             for text in table(module_of(path), "zh") if text not in shown.get(module_of(path), set())]
    assert stale == [], ("no page shows these any more (the comment changed or went): update or delete\n"
                         + "\n".join(stale))


def test_each_translation_file_sits_beside_its_module_and_translates():
    assert TABLES, "no snippets/*.zh.yml"
    for path in TABLES:
        module = module_of(path)
        assert table_path(module, "zh") == path
        entries = table(module, "zh")
        assert entries, path
        # most entries are Chinese; a comment that is only a formula or code stays as it is
        chinese = [text for text in entries.values() if re.search(r"[\u4e00-\u9fff]", text)]
        assert len(chinese) >= len(entries) * 0.8, path


@pytest.mark.parametrize("page,block", BLOCKS, ids=[f"{p}:{b.lineno}" for p, b in BLOCKS])
def test_translating_changes_only_comments_and_docstrings(page, block):
    """The zh code is the English code token for token, once comments are dropped and docstrings
    blanked: the code a zh reader copies runs as the code the page's run ran."""
    en, zh = expand(block.source), translate(block.source, "zh")
    compile(zh, page, "exec")
    assert code_tokens(zh) == code_tokens(en)
    assert len(words(block.source)) == len(words(zh))  # as many comments and docstrings, each in place
    wide = [line for line in zh.split("\n") if columns(line) > LINE_COLUMNS]
    assert wide == [], f"longer than {LINE_COLUMNS} columns (a Chinese character takes two): shorten the Chinese"


@pytest.mark.parametrize("page,block", SHELL_BLOCKS, ids=[f"{p.name}:{b.lineno}" for p, b in SHELL_BLOCKS])
def test_translating_a_shell_block_changes_only_its_comments(page, block):
    en, zh = expand(block.source), translate(block.source, "zh", shell=True)
    assert zh != en
    assert _without_comments(zh, True) == _without_comments(en, True)


LINE_COLUMNS = 88  # the English code's limit (test_pages.py)


def columns(line: str) -> int:
    """The columns a line takes in a monospace font: two for a wide (CJK) character."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def test_no_shown_block_reads_a_docstring():
    """A translated docstring changes `__doc__`: a block that printed it would print other words
    on the zh page than the run it is compared with."""
    readers = re.compile(r"__doc__|\bhelp\(|getdoc\(")
    assert [f"{page}:{b.lineno}" for page, b in BLOCKS if readers.search(expand(b.source))] == []


def test_an_indented_fence_is_translated_in_place():
    source = '--8<-- "snippets/autograd.py:demo_requires_grad"\n'
    markdown = f"# t\n\n!!! note\n\n    ```python\n    {source}    ```\n"
    out = comments.page_in_language(markdown, "zh")
    (block,) = parse_page(out)
    assert block.source.rstrip("\n") == translate(source, "zh").rstrip("\n")
    assert "    ```python\n    x = torch.tensor" in out and "需要求梯度的叶子张量" in out
    assert comments.page_in_language(markdown, "en") == markdown


def test_a_docstring_keeps_its_layout():
    """One line stays one line; a docstring whose closing quotes sit on their own line keeps
    them there, at its indentation; the English layout of the Chinese is the translator's."""
    source = '--8<-- "snippets/containers.py:copy_by_order"\n'
    zh = translate(source, "zh").split("\n")
    assert zh[1] == '    """把 src 的每个参数和缓冲区按位置（而不是按名字）复制到 dst。'
    assert zh[2] == "" and zh[3].startswith("    适用于") and zh[5] == '    """'
    one_line = translate('--8<-- "snippets/containers.py:count_params"\n', "zh")
    assert '    """模型中可训练的数的个数。"""' in one_line


# --- the built site: zh pages and downloads show the Chinese, en ones the English -----------------
def _changed_lines(page: str, lang: str) -> list[str]:
    """The lines of the page's blocks that are in `lang`'s words (not in the other language's)."""
    from test_pages import page_blocks

    other = "en" if lang == "zh" else "zh"
    found = []
    for b in page_blocks(page):
        mine = export.block_code(b, lang).split("\n")
        theirs = set(export.block_code(b, other).split("\n"))
        found += [line.strip() for line in mine if line.strip() and line not in theirs]
    return found


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("page", CHAPTERS)
def test_the_pages_and_downloads_show_comments_in_their_language(built_site, page, lang):
    import nbformat
    from test_pages import html_python_blocks, site_folder

    own, other = _changed_lines(page, lang), _changed_lines(page, "en" if lang == "zh" else "zh")
    assert own and other, f"{page}: no comment in its code is translated"
    folder = site_folder(built_site, lang, page)
    stem = Path(page).stem
    nb = nbformat.read(folder / f"{stem}.ipynb", as_version=4)
    shown = {"page": "\n".join(html_python_blocks(built_site, lang, page)),
             "notebook": "\n".join(cell.source for cell in nb.cells),
             "script": (folder / f"{stem}.py").read_text(encoding="utf-8")}
    for where, text in shown.items():
        assert [line for line in own if line not in text] == [], (lang, where)
        assert [line for line in other if line in text] == [], (lang, where)
    if lang == "zh":
        assert re.search(r"# [^\n]*[\u4e00-\u9fff]", shown["page"])
        # a GPU run's output stays under its block: it is found by the code that ran (English)
        boxes = [(site_folder(built_site, lg, page) / "index.html").read_text(encoding="utf-8").count("tpn-gpu")
                 for lg in LANGS]
        assert boxes[0] == boxes[1]


@pytest.mark.parametrize("lang", LANGS)
def test_shell_blocks_show_comments_in_their_language(built_site, lang):
    """The shell blocks (install.sh, cuda_env.sh, ddp_run.sh, the home page's quickstart.sh) on
    the pages, and in the chapters' notebooks as Markdown."""
    import nbformat

    checked = 0
    for page, block in SHELL_BLOCKS:
        folder = built_site if lang == "zh" else built_site / "en"
        folder = folder if page.stem == "index" else folder / page.stem
        text = (folder / "index.html").read_text(encoding="utf-8")
        shown = [html.unescape(re.sub(r"<[^>]+>", "", code)).rstrip("\n") for code in re.findall(
            r'<div class="language-(?:bash|sh|shell) highlight"><pre>.*?<code[^>]*>(.*?)</code></pre>', text, re.S)]
        code = translate(block.source, lang, shell=True).rstrip("\n")
        assert code in shown, (lang, page.name)
        if page.stem != "index":
            nb = nbformat.read(folder / f"{page.stem}.ipynb", as_version=4)
            assert code in "\n".join(cell.source for cell in nb.cells), (lang, page.name)
        checked += 1
    assert checked == 4


@pytest.mark.parametrize("module", comments.offered_files())
def test_a_downloaded_file_is_itself_in_english_and_translated_in_chinese(module):
    """A file a page offers beside its notebook and script (multi-gpu: ddp_train.py): the English
    page offers it byte for byte; the zh page with every comment and docstring in Chinese (the
    `--8<--` section marks stay), its code token for token the same."""
    source = (ROOT / module).read_text(encoding="utf-8")
    assert comments.file_in_language(module, "en") == source
    zh = comments.file_in_language(module, "zh")
    compile(zh, module, "exec")
    assert code_tokens(zh) == code_tokens(source)
    english = [w.text for w in comments.file_words(module)]
    assert english and [w.text for w in comments.words(zh)] != english
    for w in comments.file_words(module):  # each one has its Chinese in the table, and the file shows it
        chinese = table(module, "zh")[key(w.text)]
        assert chinese.split("\n")[0] in zh, w.text
    assert zh.count("# --8<-- [start:") == source.count("# --8<-- [start:") > 0


def test_a_download_that_is_not_there_is_named():
    with pytest.raises(FileNotFoundError, match="snippets/nope.py: no such file to offer"):
        comments.file_in_language("snippets/nope.py", "zh")



@pytest.mark.parametrize("lab", ["task1", "task3"])
def test_the_zh_lab_shows_chinese_comments_and_the_same_code(lab):
    """The lab notebooks' code cells come from the same sections as the pages: the zh notebook
    shows their comments and docstrings in Chinese (snippets/labs.zh.yml for the labs' own code),
    and its code is the English notebook's, token for token."""
    import json

    cells = {lang: [c["source"] for c in json.loads((ROOT / "docs" / lang / "labs" / f"{lab}.ipynb")
                                                    .read_text(encoding="utf-8"))["cells"]
                    if c["cell_type"] == "code"] for lang in LANGS}
    cells = {lang: ["".join(s) if isinstance(s, list) else s for s in found] for lang, found in cells.items()}
    assert [code_tokens(c) for c in cells["zh"]] == [code_tokens(c) for c in cells["en"]]
    english = [w.text for c in cells["zh"] for w in words(c) if not re.search(r"[\u4e00-\u9fff]", w.text)
               and re.search(r"[A-Za-z]{3,} [A-Za-z]{3,}", w.text)]
    assert english == [], f"English left in the zh {lab} notebook"
    assert cells["zh"] != cells["en"]
