"""A smaller search index: code blocks are left out of it.

Material indexes each section's whole text, code blocks included, and every page fetches
search/search_index.json and parses it on the main thread as it loads; on this site code
was about 60% of the index (885 kB), which showed as blocking time in Lighthouse. Prose,
headings and inline `code` stay searchable; a name that appears only inside a code block
is no longer found.

Each <pre> block is swapped for a placeholder comment just before the search plugin reads
the page, and put back just after, before the page is rendered: the index never sees the
code, and the build does not spend time parsing it (0.7 s of a 5 s warm build here).
"""
from __future__ import annotations

import re

from mkdocs.plugins import CombinedEvent, event_priority

_CODE_BLOCK = re.compile(r"<pre\b.*?</pre>", re.S)
_PLACEHOLDER = re.compile(r"<!--search-index-code-(\d+)-->")


@event_priority(100)  # before the search plugin (priority 0)
def _hide_code(context, page, config, nav):
    blocks: list[str] = []

    def hide(m: re.Match) -> str:
        blocks.append(m.group(0))
        return f"<!--search-index-code-{len(blocks) - 1}-->"
    page.content = _CODE_BLOCK.sub(hide, page.content)
    page.hidden_code = blocks
    return context


@event_priority(-100)  # after it
def _show_code(context, page, config, nav):
    blocks = page.__dict__.pop("hidden_code", [])
    page.content = _PLACEHOLDER.sub(lambda m: blocks[int(m.group(1))], page.content)
    return context


on_page_context = CombinedEvent(_hide_code, _show_code)
