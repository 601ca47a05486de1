"""One 404 page per language: /404.html (Chinese) and /en/404.html (English).

mkdocs-static-i18n builds every language into the same site_dir, so each language
build rewrites /404.html and the last one (English) wins. Keep the default
language's page at the root (GitHub Pages serves it for every missing path; it
links the other languages' home pages too, see overrides/404.html) and move the
others into their language folder (hosts such as Cloudflare Pages serve the
nearest 404.html). Each page is in its own language only. Also point
the 404's language switcher at each language's home page: by default it keeps
the links of whichever page was built last.
"""
from __future__ import annotations

from copy import deepcopy
from pathlib import Path

_default_page: dict[str, bytes] = {}


def _i18n(config):
    return config.plugins.get("i18n")


def on_template_context(context, template_name, config):
    i18n = _i18n(config)
    if template_name == "404.html" and i18n is not None and i18n.extra_alternate:
        # i18n sets it as an attribute (config.extra.alternate = ...), which shadows the item
        config.extra.alternate = deepcopy(i18n.extra_alternate)
    return context


def on_post_build(config):
    i18n = _i18n(config)
    if i18n is None:
        return
    root_404 = Path(config.site_dir) / "404.html"
    if i18n.current_language == i18n.default_language:
        _default_page["html"] = root_404.read_bytes()  # the other languages build next
    elif "html" in _default_page:
        target = Path(config.site_dir) / i18n.current_language / "404.html"
        target.write_bytes(root_404.read_bytes())
        root_404.write_bytes(_default_page["html"])
