"""Code blocks and page furniture are left out of the search index; labs rank below chapters.

Every page fetches search/search_index.json and parses it on the main thread as it loads, and code
was about 60% of it (885 kB), blocking time in Lighthouse. Prose, headings and inline `code` stay
searchable; a name that appears only inside a code block is not found.

Material's search plugin skips an element with a `data-search-exclude` attribute (and takes it off
once the page is indexed): hooks/chapters.py puts it on the HTML it writes, and here it goes on the
notebook pages' heading anchors (¶), prompts ("In [1]:") and the copy button's "Copied!". Code
blocks (<pre>) are taken out of the page while the plugin reads it, and put back after: the plugin
parses an excluded element all the same, and parsing the highlighted code took 0.55 s of a 2.7 s warm build.
"""
from __future__ import annotations

import re

from mkdocs.plugins import CombinedEvent, event_priority

EXCLUDE = ' data-search-exclude="1"'  # with a value: the plugin's clean-up removes only name="value"
_FURNITURE = re.compile(r'<(?:a(?= class="anchor-link")|div(?= class="jp-(?:In|Out)putPrompt)'
                        r'|span(?= class="notice"))')
_CODE = re.compile(r"<pre\b.*?</pre>", re.S)
_PLACEHOLDER = "<!--code-block-->"


@event_priority(100)  # before the search plugin (priority 0)
def _hide_code(context, page, config, nav):
    page.hidden_code = _CODE.findall(page.content)
    page.content = _FURNITURE.sub(lambda m: m[0] + EXCLUDE, _CODE.sub(_PLACEHOLDER, page.content))
    if page.file.src_uri.endswith(".ipynb"):
        # A lab goes over every chapter's topics again: for a topic, the chapter comes first.
        page.meta.setdefault("search", {}).setdefault("boost", 0.5)
    return context


@event_priority(-100)  # after it
def _show_code(context, page, config, nav):
    blocks = iter(page.__dict__.pop("hidden_code", []))
    page.content = re.sub(_PLACEHOLDER, lambda m: next(blocks), page.content)
    return context


on_page_context = CombinedEvent(_hide_code, _show_code)
