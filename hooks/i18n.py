"""The site in two languages: links between them, and a 404 page in each.

Material writes the hreflang alternates (`<link rel="alternate" href=... hreflang=...>`) with the
page-relative hrefs mkdocs-static-i18n gives it ("../en/layers/"); search engines and Lighthouse's
`hreflang` audit want absolute URLs, resolved here under `site_url` (SITE_URL builds for another host).
The header's language menu stays relative: on the home pages i18n leaves root-absolute links ("/en/"),
which break in a local preview or under another path, so they point at the page's own alternates.

mkdocs-static-i18n builds every language into one site_dir, so the last language's /404.html wins.
The default language's page stays at the root (GitHub Pages serves it for every missing path; it
links the other languages' home pages too, see overrides/404.html) and each other one moves into its
language folder (hosts such as Cloudflare Pages serve the nearest 404.html). The 404's language
switcher points at each language's home page, not at the links of the page built last.
"""
from __future__ import annotations

import re
from copy import deepcopy
from pathlib import Path
from urllib.parse import urljoin

_ALTERNATE = re.compile(r'(<link rel="alternate" href=")([^"]*)(" hreflang=")')


def _absolute(html: str, page_address: str) -> str:
    return _ALTERNATE.sub(lambda m: m[1] + urljoin(page_address, m[2]) + m[3], html)


def on_page_context(context, page, config, nav):
    # runs after mkdocs-static-i18n's on_page_context (priority 50); it sets config.extra.alternate
    # as an attribute, which shadows the item
    alternates = getattr(page.file, "alternates", None) or {}
    for alternate in getattr(config.extra, "alternate", None) or []:
        if alternate.get("lang") in alternates:
            alternate["link"] = alternates[alternate["lang"]].url  # the `url` filter makes it relative
    return context


def on_post_page(output, page, config):
    return _absolute(output, urljoin(config.site_url, page.url)) if config.site_url else output


def on_post_template(output, template_name, config):
    # 404.html: its hrefs are already root-relative ("/en/")
    if template_name.endswith(".html") and config.site_url:
        return _absolute(output, config.site_url)
    return output


_default_page: dict[str, bytes] = {}


def on_template_context(context, template_name, config):
    i18n = config.plugins.get("i18n")
    if template_name == "404.html" and i18n is not None and i18n.extra_alternate:
        # i18n sets it as an attribute (config.extra.alternate = ...), which shadows the item
        config.extra.alternate = deepcopy(i18n.extra_alternate)
    return context


def on_post_build(config):
    i18n = config.plugins.get("i18n")
    if i18n is None:
        return
    root_404 = Path(config.site_dir) / "404.html"
    if i18n.current_language == i18n.default_language:
        _default_page["html"] = root_404.read_bytes()  # the other languages build next
    elif "html" in _default_page:
        target = Path(config.site_dir) / i18n.current_language / "404.html"
        target.write_bytes(root_404.read_bytes())
        root_404.write_bytes(_default_page["html"])
