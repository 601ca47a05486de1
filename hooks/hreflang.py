"""Absolute hreflang alternates.

Material writes `<link rel="alternate" href=... hreflang=...>` with the page-relative
hrefs that mkdocs-static-i18n gives it ("./", "../en/layers/"); search engines and
Lighthouse's `hreflang` audit want absolute URLs. Resolve each against the page's
own address under `site_url` (set SITE_URL to build for another host).
"""
from __future__ import annotations

import re
from urllib.parse import urljoin

_ALTERNATE = re.compile(r'(<link rel="alternate" href=")([^"]*)(" hreflang=")')


def _absolute(html: str, page_address: str) -> str:
    return _ALTERNATE.sub(lambda m: m[1] + urljoin(page_address, m[2]) + m[3], html)


def on_post_page(output, page, config):
    return _absolute(output, urljoin(config.site_url, page.url)) if config.site_url else output


def on_post_template(output, template_name, config):
    # 404.html: its hrefs are already root-relative ("/en/")
    if template_name.endswith(".html") and config.site_url:
        return _absolute(output, config.site_url)
    return output
