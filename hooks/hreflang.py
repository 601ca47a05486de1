"""Absolute hreflang alternates.

Material writes `<link rel="alternate" href=... hreflang=...>` with the page-relative
hrefs that mkdocs-static-i18n gives it ("./", "../en/layers/"); search engines and
Lighthouse's `hreflang` audit want absolute URLs. Resolve each against the page's
own address under `site_url` (set SITE_URL to build for another host).

The header's language menu, on the other hand, stays relative: on the home pages
mkdocs-static-i18n leaves its root-absolute defaults ("/", "/en/", from site_url's
path), which break in a local preview or under another path. `on_page_context`
points them at the page's own alternates, as it does on every other page.
"""
from __future__ import annotations

import re
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
