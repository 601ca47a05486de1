"""Formulas as MathML, written at build time: the browser typesets MathML itself, so a page with a
formula loads no math script (KaTeX cost the layers chapter 0.3 s of main-thread work).

pymdownx.arithmatex (generic: true) leaves `<span class="arithmatex">\\( ... \\)</span>` inline and
`<div class="arithmatex">\\[ ... \\]</div>` as a block; latex2mathml turns each into <math>, kept in
its element (the class stays for the CSS and the tests).
"""
from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

_FORMULA = re.compile(r'<(span|div) class="arithmatex">\s*\\[(\[](.*?)\\[)\]]\s*</\1>', re.S)


def mathml(match: re.Match) -> str:
    tag, tex = match.group(1), html.unescape(match.group(2)).strip()
    return f'<{tag} class="arithmatex">{convert(tex, display="block" if tag == "div" else "inline")}</{tag}>'


def on_page_content(content, page, config, files):
    return _FORMULA.sub(mathml, content) if 'class="arithmatex"' in content else content
