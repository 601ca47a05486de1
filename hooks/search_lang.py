"""Each language searches only its own pages, and a query finds the words the index holds.

1. One index per language. mkdocs-static-i18n merges every language's entries into one
   search/search_index.json, which every page loads: English readers got Chinese pages first
   and the English stemmer ran over both languages. After the last language is built, the
   merged index is split: search/search_index.json keeps the default language's pages (lunr
   language `zh`), <lang>/search/search_index.json each other language's (lunr `en`, its
   locations made relative to /<lang>/), and each other language's pages get that folder as
   Material's `base`, from which it loads the index.

2. Queries in the index's words: the pages' `search` worker address points at search-i18n.js,
   hooks/search_worker.js written next to Material's worker (it says what it does and why).

3. The glossary's Chinese terms are words. jieba cuts "图中断" (graph break) into "图 中断" and
   "损失缩放" into "损失 缩放", and a page that says 中断 or 损失 often ranked above the one that
   teaches the term. Each term of docs/zh/glossary.md's 中文 column is given to jieba as one word
   before the pages are indexed, so the index holds it whole and the query cutter finds it.

4. Cut once. Material cuts every Chinese run of a section's text with jieba, whose dictionary takes
   0.5 s to load: a tenth of a warm build. A text's cut, keyed by the text, jieba's version and the
   glossary's terms, is remembered (pagekit.memo), and jieba is loaded only for a text not cut before.
   A page's entries, which Material makes by parsing its HTML again, are remembered too, keyed by all
   they are made of.
"""
from __future__ import annotations

import functools
import json
import re
from importlib.metadata import version
from pathlib import Path

from material.plugins.search.plugin import SearchIndex, jieba
from mkdocs.plugins import event_priority

from pagekit.memo import recall, remembered

WORKER = "search-i18n.js"
_CONFIG_BASE = re.compile(r'(<script id="__config" type="application/json">[^<]*?"base": ")([^"]*)(")')
_WORKER_URL = re.compile(r'("search": "[^"]*/workers/)search\.[0-9a-f]+\.min\.js(")')

SHIM = Path(__file__).with_name("search_worker.js")  # Material's worker, with the queries in the index's words
GLOSSARY = Path(__file__).resolve().parents[1] / "docs" / "zh" / "glossary.md"
_ROW = re.compile(r"^\| [^|]+ \| ([^|]+?) \|", re.M)


def glossary_terms(text: str) -> list[str]:
    """The Chinese terms of the glossary's table that jieba should keep whole (two or more Han
    characters, nothing else: "meta 设备" and "rank" are cut at their spaces anyway)."""
    table = text.split("| --- |", 1)[-1]  # the rows under the header
    terms = (t.strip() for cell in _ROW.findall(table) for t in cell.split("、"))
    return [t for t in terms if re.fullmatch(r"[\u4e00-\u9fff]{2,}", t)]


@functools.lru_cache(maxsize=1)
def _dictionary() -> tuple[str, ...]:
    """jieba's version and the glossary's terms: what a cut depends on besides the text."""
    return (jieba.__version__, *glossary_terms(GLOSSARY.read_text(encoding="utf-8")))


_words_added: set[str] = set()


def _materials(name: str):
    """SearchIndex's own method `name`, also when `mkdocs serve` runs this module again over its patch."""
    method = getattr(SearchIndex, name)
    return getattr(method, "__wrapped__", method)


_material_cut = _materials("_segment_chinese")


@remembered(salted=False)  # not the engine's nor the snippets' work: editing a snippet keeps every cut
def cut(text: str, dictionary: tuple[str, ...]) -> str:
    """Material's cut of text's Chinese runs (words joined by zero-width spaces), with the glossary's
    terms as words."""
    for term in dictionary[1:]:
        if term not in _words_added:
            jieba.add_word(term)
            _words_added.add(term)
    return _material_cut(None, text)


def _segment_chinese(self, text: str) -> str:
    return cut(text, _dictionary())


if jieba is not None:  # without jieba, Material indexes without cutting, and so does this
    _segment_chinese.__wrapped__ = _material_cut
    SearchIndex._segment_chinese = _segment_chinese

_material_add = _materials("add_entry_from_context")
_MATERIAL = version("mkdocs-material")


def _toc(items) -> list:
    return [(item.title, item.url, _toc(item.children)) for item in items]


def add_entry_from_context(self, page) -> None:
    """Material's entries for `page`, remembered by their inputs: its HTML, address, title, front matter and
    table of contents, Material's release and the dictionary the Chinese text is cut with."""
    def make() -> list[dict]:
        index = SearchIndex(**self.config)
        _material_add(index, page)
        return index.entries

    key = (page.content, page.url, page.title, json.dumps(page.meta, sort_keys=True, default=str),
           _toc(page.toc), _MATERIAL, jieba is not None and _dictionary())
    self.entries += [dict(entry) for entry in recall("search entries", key, make, salted=False)]


add_entry_from_context.__wrapped__ = _material_add
SearchIndex.add_entry_from_context = add_entry_from_context


def on_config(config):
    _dictionary.cache_clear()  # `mkdocs serve`: the glossary may have changed
    return config


def on_post_page(output, page, config):
    i18n = config.plugins.get("i18n")
    output = _WORKER_URL.sub(lambda m: m[1] + WORKER + m[2], output, count=1)
    if i18n is not None and i18n.current_language != i18n.default_language:
        # Material fetches base + "search/search_index.json": this language's own index
        output = _CONFIG_BASE.sub(lambda m: f"{m[1]}{m[2].rstrip('/')}/{i18n.current_language}/{m[3]}",
                                  output, count=1)
    return output


def on_post_template(output, template_name, config):
    return on_post_page(output, None, config) if template_name == "404.html" else output


@event_priority(-200)  # after mkdocs-static-i18n has built every language and merged the index
def on_post_build(config):
    i18n = config.plugins.get("i18n")
    if i18n is None or i18n.building:  # a language built inside the first one's build
        return
    site = Path(config.site_dir)
    workers = sorted((site / "assets" / "javascripts" / "workers").glob("search.*.min.js"))
    if workers:
        shim = SHIM.read_text(encoding="utf-8").replace("MATERIAL_WORKER", workers[0].name)
        (workers[0].parent / WORKER).write_text(shim, encoding="utf-8")
    merged_path = site / "search" / "search_index.json"
    if not merged_path.exists():
        return
    merged = json.loads(merged_path.read_text(encoding="utf-8"))
    others = [lang for lang in i18n.build_languages if lang != i18n.default_language]
    for lang in [i18n.default_language, *others]:
        prefix = "" if lang == i18n.default_language else f"{lang}/"
        if prefix:
            docs = [{**d, "location": d["location"][len(prefix):]} for d in merged["docs"]
                    if d["location"].startswith(prefix)]
        else:
            docs = [d for d in merged["docs"] if not d["location"].startswith(tuple(f"{o}/" for o in others))]
        index = {**merged, "config": {**merged["config"], "lang": [lang]}, "docs": docs}
        target = site / prefix / "search" / "search_index.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(index, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
