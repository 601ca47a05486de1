"""A smaller, cleaner search index: code blocks and page furniture are left out of it.

Material indexes each section's whole text, code blocks included, and every page fetches
search/search_index.json and parses it on the main thread as it loads; on this site code
was about 60% of the index (885 kB), which showed as blocking time in Lighthouse. Prose,
headings and inline `code` stay searchable; a name that appears only inside a code block
is no longer found.

Each <pre> block is swapped for a placeholder comment just before the search plugin reads
the page, and put back just after, before the page is rendered: the index never sees the
code, and the build does not spend time parsing it (0.7 s of a 5 s warm build here).

The same goes for what is not the page's text, which showed in result titles and snippets:
notebook heading anchors (¶), prompts ("In [1]:"), the copy button's "Copied!", the output
label (输出 / Output) and the "how to run this chapter" box every chapter opens with.
Lab notebooks, which revisit the chapters' topics, rank below the chapters (boost 0.5).
"""
from __future__ import annotations

import re

from mkdocs.plugins import CombinedEvent, event_priority

_CODE_BLOCK = re.compile("|".join([
    r"<pre\b.*?</pre>",
    r'<a class="anchor-link"[^>]*>¶</a>',                          # notebook heading anchors
    r'<div class="jp-(?:In|Out)putPrompt[^"]*">[^<]*</div>',       # In [1]: / Out[1]:
    r'<span class="notice" hidden="">[^<]*</span>',               # "Copied!"
    r'<span class="filename">[^<]*</span>',                       # fence titles: 输出 / Output
    r'<div class="admonition tip">\s*<p class="admonition-title">(?:怎样运行本章|How to run this chapter)'
    r"</p>.*?</div>",                                               # hooks/pages.py's run note
]), re.S)
_PLACEHOLDER = re.compile(r"<!--search-index-code-(\d+)-->")


@event_priority(100)  # before the search plugin (priority 0)
def _hide_code(context, page, config, nav):
    blocks: list[str] = []

    def hide(m: re.Match) -> str:
        blocks.append(m.group(0))
        return f"<!--search-index-code-{len(blocks) - 1}-->"
    page.content = _CODE_BLOCK.sub(hide, page.content)
    page.hidden_code = blocks
    if page.file.src_uri.endswith(".ipynb"):
        # A lab goes over every chapter's topics again: for a topic, the chapter comes first.
        page.meta.setdefault("search", {}).setdefault("boost", 0.5)
    return context


@event_priority(-100)  # after it
def _show_code(context, page, config, nav):
    blocks = page.__dict__.pop("hidden_code", [])
    page.content = _PLACEHOLDER.sub(lambda m: blocks[int(m.group(1))], page.content)
    return context


on_page_context = CombinedEvent(_hide_code, _show_code)
