"""Each code block's copy button is in the page's HTML, not made by Material in the browser.

Material mounts every code block while the page loads (its copy button, whether it scrolls), one
forced layout per block: on a chapter's forty-odd blocks, most of Lighthouse's total blocking
time. With `content.lazy` (mkdocs.yml) it mounts a block when the block comes on screen; had the
button still come from that mount (`content.code.copy`), a reader moving with Tab would skip the
buttons of the blocks not yet seen. So the hook writes Material's own markup (its CSS places the
button; its clipboard handler, which listens on the whole page, copies the block's text and says
"copied"), pointing at the block's <code> by an id, and `content.code.copy` stays off.
"""

import html
import itertools
import re

# A block's <pre>, the runnable-copy button hooks/chapters.py puts first, pymdownx's empty line span
_CODE = re.compile(r"(<pre\b[^>]*>(?:<button\b[^>]*></button>)?(?:<span></span>)?)<code\b")
_WORD = '{% import "partials/language.html" as lang with context %}{{ lang.t("clipboard.copy") }}'


_titles: dict[str, str] = {}  # the theme's language -> its word (rendering it on every page was 0.3 s a build)


def on_post_page(output, page, config):
    language = config.theme["language"]
    if language not in _titles:
        _titles[language] = html.escape(config.theme.get_env().from_string(_WORD).render(config=config))
    title = _titles[language]
    count = itertools.count()

    def button(match) -> str:
        code = f"tpn-code-{next(count)}"
        return (f'{match[1]}<nav class="md-code__nav"><button class="md-code__button" title="{title}" '
                f'data-clipboard-target="#{code}" data-md-type="copy"></button></nav><code id="{code}"')

    return _CODE.sub(button, output)
