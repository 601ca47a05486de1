"""The site in two languages: links between them, and a 404 page in each.

Absolute hreflang alternates.

Material writes `<link rel="alternate" href=... hreflang=...>` with the page-relative
hrefs that mkdocs-static-i18n gives it ("./", "../en/layers/"); search engines and
Lighthouse's `hreflang` audit want absolute URLs. Resolve each against the page's
own address under `site_url` (set SITE_URL to build for another host).

The header's language menu, on the other hand, stays relative: on the home pages
mkdocs-static-i18n leaves its root-absolute defaults ("/", "/en/", from site_url's
path), which break in a local preview or under another path. `on_page_context`
points them at the page's own alternates, as it does on every other page.

One 404 page per language: /404.html (Chinese) and /en/404.html (English).

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

import re
from copy import deepcopy
from pathlib import Path
from urllib.parse import urljoin

_ALTERNATE = re.compile(r'(<link rel="alternate" href=")([^"]*)(" hreflang=")')


def _absolute(html: str, page_address: str) -> str:
    return _ALTERNATE.sub(lambda m: m[1] + urljoin(page_address, m[2]) + m[3], html)


def on_page_context(context, page, config, nav):
    # runs after mkdocs-static-i18n's on_page_context (priority 50), which sets config.extra.alternate
    alternates = getattr(page.file, "alternates", None) or {}
    # i18n sets config.extra.alternate as an attribute, which shadows the item
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
