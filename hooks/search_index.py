"""A smaller search index: code blocks are left out of it.

Material indexes each section's whole text, code blocks included, and every page fetches
search/search_index.json and parses it on the main thread as it loads; on this site code
was about 60% of the index (885 kB), which showed as blocking time in Lighthouse. Prose,
headings and inline `code` stay searchable; a name that appears only inside a code block
is no longer found.

mkdocs-static-i18n writes the final index (all languages) in its own on_post_build at
priority -100, so this runs after it.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from mkdocs.plugins import event_priority

_CODE_BLOCK = re.compile(r"<pre\b.*?</pre>", re.S)


@event_priority(-200)
def on_post_build(config):
    index = Path(config.site_dir) / "search" / "search_index.json"
    if not index.is_file():
        return
    data = json.loads(index.read_text(encoding="utf-8"))
    for doc in data["docs"]:
        doc["text"] = _CODE_BLOCK.sub(" ", doc["text"])
    index.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
