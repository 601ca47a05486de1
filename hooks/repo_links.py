"""Links into this project's repository written as `(repo:tests/test_init.py)` in a page: made
absolute from mkdocs.yml's repo_url (set with REPO_URL at build time), so a page never spells the
repository's address. The errata page links each row's tests this way."""
from __future__ import annotations

import re

_REPO_LINK = re.compile(r"\]\(repo:([^)\s]+)\)")


def on_page_markdown(markdown, page, config, files):
    if "](repo:" not in markdown:
        return markdown
    base = (config.repo_url or "").rstrip("/")
    if not base:
        raise ValueError(f"{page.file.src_uri} links into the repository, but mkdocs.yml sets no repo_url")
    return _REPO_LINK.sub(lambda m: f"]({base}/blob/main/{m.group(1)})", markdown)
