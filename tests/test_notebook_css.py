"""hooks/notebook_css.py: a notebook page keeps only the template CSS that can apply to it.
(tests/test_browser.py checks in Chromium that a real lab page looks the same both ways.)"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from hooks.notebook_css import (
    linked_stylesheets,
    named_classes,
    on_page_content,
    on_post_page,
    prune,
    unwrap_plain_spans,
)

PAGE = ('<html><head><title>t</title></head><body><div class="jupyter-wrapper">'
        '<div id="cell-1" class="jp-Cell jp-CodeCell" style="color: var(--inline-color)">'
        '<pre class=\'k\'>x</pre></div></div></body></html>')


@pytest.mark.parametrize("selector", [
    ".jp-Cell", ".jupyter-wrapper .jp-Cell.jp-CodeCell", "#cell-1", "pre", "div.jp-Cell > pre.k",
    ".jp-Cell:not(.jp-mod-active)", ".jp-Cell:is(.absent, .jp-CodeCell)", 'a[href$=".absent"]',
    ".jp-Cell::before", ".jp-Cell:hover", "*",
])
def test_a_rule_that_may_match_the_page_stays(selector):
    assert prune(f"{selector}{{margin:0}}", PAGE) == f"{selector}{{margin:0}}"


@pytest.mark.parametrize("selector", [
    ".jp-Toolbar", ".jp-Cell .jp-Toolbar", ".jp-Cell.jp-mod-active", "#cell-2", "pre.absent::after",
])
def test_a_rule_needing_a_class_or_id_the_page_lacks_goes(selector):
    assert prune(f"{selector}{{margin:0}}", PAGE) == ""


def test_a_selector_list_keeps_only_the_selectors_that_may_match():
    assert prune(".jp-Toolbar, .jp-Cell ,#nope, pre{color:red}", PAGE) == ".jp-Cell,pre{color:red}"


@pytest.mark.parametrize("css, kept", [
    pytest.param(".jupyter-wrapper{--a:1px;--b:var(--a);--unused:3px;--inline-color:red;--only-unused:var(--x)}"
                 ".jp-Cell{margin:var(--b)}.jp-Toolbar{padding:var(--unused)}",
                 ".jupyter-wrapper{--a:1px;--b:var(--a);--inline-color:red}.jp-Cell{margin:var(--b)}",
                 id="custom properties used directly, through others or by the page stay"),
    pytest.param(".jupyter-wrapper{--never:1}", "", id="a rule left with no declarations goes"),
    pytest.param("@media (max-width: 760px){.jp-Cell{margin:0}.jp-Toolbar{margin:0}}@media print{.jp-Toolbar{x:1}}",
                 "@media (max-width: 760px){.jp-Cell{margin:0}}", id="media rules pruned inside, dropped when empty"),
    pytest.param("@keyframes spin{to{transform:rotate(1turn)}}@-webkit-keyframes fade{to{opacity:0}}"
                 ".jp-Cell{animation:spin 1s}.jp-Toolbar{animation:fade 1s}",
                 "@keyframes spin{to{transform:rotate(1turn)}}.jp-Cell{animation:spin 1s}",
                 id="keyframes stay only when a kept rule names them"),
    pytest.param('@charset "UTF-8";/* note */.jp-Cell{ color : red !important ; top: 0 }',
                 ".jp-Cell{color:red!important;top:0}", id="important kept, charset and comments go"),
])
def test_prune(css, kept):
    assert prune(css, PAGE) == kept


def test_a_custom_property_another_stylesheet_reads_stays():
    css = ".jupyter-wrapper{--md-accent:red;--unused:1px}"
    assert prune(css, PAGE) == ""
    assert prune(css, PAGE, other_css=(".md-typeset a{color:var(--md-accent)}",)) == ".jupyter-wrapper{--md-accent:red}"


def fake_page(src_uri: str) -> SimpleNamespace:
    return SimpleNamespace(file=SimpleNamespace(src_uri=src_uri), url=src_uri.rsplit(".", 1)[0] + "/")


def test_hooks_move_a_notebooks_css_into_its_head_and_leave_other_pages_alone(tmp_path, monkeypatch):
    from hooks import notebook_css
    monkeypatch.setattr(notebook_css, "CACHE", tmp_path / "cache")
    content = '<style type="text/css">.jp-Cell{margin:0}.jp-Toolbar{margin:0}</style><div class="jp-Cell"></div>'
    notebook, chapter = fake_page("labs/task1.ipynb"), fake_page("layers.md")
    assert on_page_content(content, notebook, None, None) == '<div class="jp-Cell"></div>'
    assert on_page_content(content, chapter, None, None) == content
    (tmp_path / "site.css").write_text(".highlight-ipynb .o{color:red}", encoding="utf-8")
    html = ('<html><head><link rel="stylesheet" href="../../site.css"></head><body><div class="jp-Cell">'
            '<div class="highlight-ipynb"><pre><span class="n">x</span><span class="o">=</span></pre></div></div>'
            '</body></html>')
    config = SimpleNamespace(site_dir=str(tmp_path), site_url=None)
    assert on_post_page(html, notebook, config) == (
        '<html><head><link rel="stylesheet" href="../../site.css"><style id="notebook-css">.jp-Cell{margin:0}</style>\n'
        '</head><body><div class="jp-Cell"><div class="highlight-ipynb"><pre>x<span class="o">=</span></pre></div></div>'
        '</body></html>')
    assert on_post_page(html, chapter, config) == html


def test_a_notebook_pages_result_is_read_back_by_a_build_at_another_address(tmp_path, monkeypatch):
    """A test session builds the site at a new port each time: the pruned page, kept for a stand-in
    address, is read back there with that session's address in it."""
    from hooks import notebook_css
    monkeypatch.setattr(notebook_css, "CACHE", tmp_path / "cache")
    made = []
    monkeypatch.setattr(notebook_css, "unwrap_plain_spans", lambda page, sheets: made.append(page) or (page, set()))
    notebook = fake_page("labs/task1.ipynb")
    notebook.notebook_css = ".jp-Cell{margin:0}"
    for port in (1, 2, 2):
        site = f"http://127.0.0.1:{port}/"
        html = f'<html><head><link rel="canonical" href="{site}labs/task1/"></head><body class="jp-Cell"></body></html>'
        out = on_post_page(html, notebook, SimpleNamespace(site_dir=str(tmp_path), site_url=site))
        assert out.startswith(f'<html><head><link rel="canonical" href="{site}labs/task1/"><style id="notebook-css">')
    assert len(made) == 1


CODE_PAGE = ('<div class="jupyter-wrapper"><div class="highlight-ipynb hl-python"><pre><span></span>'
             '<span class="kn">import</span><span class="w"> </span><span class="nn">torch</span>\n'
             '<span class="n">x</span><span class="o">=</span><span class="mi">1</span></pre></div>'
             '<p><span class="n">prose keeps its spans</span></p></div>')


def test_code_spans_no_stylesheet_names_become_their_text():
    sheets = [".highlight-ipynb .kn,.highlight-ipynb .o{color:green}", ".jupyter-wrapper .mi{color:blue}"]
    page, gone = unwrap_plain_spans(CODE_PAGE, sheets)
    assert gone == {"w", "nn", "n"}
    assert page == ('<div class="jupyter-wrapper"><div class="highlight-ipynb hl-python"><pre><span></span>'
                    '<span class="kn">import</span> torch\n'
                    'x<span class="o">=</span><span class="mi">1</span></pre></div>'
                    '<p><span class="n">prose keeps its spans</span></p></div>')


@pytest.mark.parametrize("sheet", [
    ".n{color:red}",  # styles the span itself
    "pre .n + .o{margin:0}",  # a neighbour's style depends on it
    ".highlight-ipynb :is(.n, .q){font-weight:bold}",  # named inside a function
    "@media screen{.jupyter-wrapper .n{color:red}}",
])
def test_a_class_named_by_a_selector_that_may_match_keeps_its_spans(sheet):
    page, gone = unwrap_plain_spans(CODE_PAGE, [sheet])
    assert "n" not in gone and '<span class="n">x</span>' in page


def test_a_selector_that_cannot_match_does_not_keep_spans():
    assert "n" in unwrap_plain_spans(CODE_PAGE, [".highlight .n{color:red}"])[1]  # no .highlight on the page


def test_a_class_attribute_selector_keeps_every_span_unless_negated():
    assert unwrap_plain_spans(CODE_PAGE, ["pre span[class]{color:red}"]) == (CODE_PAGE, set())
    assert unwrap_plain_spans(CODE_PAGE, ["table:not([class]) td{color:red}"])[1] == {"w", "nn", "n", "kn", "o", "mi"}


def test_named_classes_reads_selectors_inside_functions_and_media():
    css = ".a:not(.b) .c{x:1}@media print{.jupyter-wrapper .d{x:1}}.absent .e{x:1}"
    assert named_classes(css, '<p class="a c"></p><div class="jupyter-wrapper d"></div>') == {"a", "b", "c", "jupyter-wrapper", "d"}


def test_linked_stylesheets_are_read_from_the_built_site(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "main.css").write_text(".a{x:1}", encoding="utf-8")
    page = '<link rel="stylesheet" href="../../assets/main.css"><link rel="icon" href="x.png">'
    assert linked_stylesheets(page, "labs/task1/", str(tmp_path)) == [".a{x:1}"]
    with pytest.raises(ValueError, match="another host"):
        linked_stylesheets('<link rel="stylesheet" href="https://cdn.example/a.css">', "labs/task1/", str(tmp_path))


def test_plain_spans_go_from_a_cell_in_a_chapter_blocks_markup_too():
    """hooks/notebook_pages.py gives a lab's cell a chapter block's markup (<code> inside <pre>)."""
    page = ('<div class="jupyter-wrapper"><div class="language-python highlight highlight-ipynb hl-python">'
            '<pre><span></span><code><span class="n">x</span><span class="o">=</span></code></pre></div></div>')
    out, gone = unwrap_plain_spans(page, [".highlight-ipynb .o{color:green}"])
    assert gone == {"n"}
    assert out == page.replace('<span class="n">x</span>', "x")

