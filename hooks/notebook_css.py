"""Give each notebook page only the notebook CSS it uses, inlined in its <head>.

nbconvert's template puts about 600 kB of JupyterLab CSS (the whole application) into every notebook
page, which uses a few dozen of its rules; served as one file it blocked rendering and cost the lab
pages about 0.1 of Lighthouse's performance score. The <style> blocks are taken out of the content,
and the rendered page gets what can match it (`prune`, about 3%): a rule whose selector names only
classes and ids the page has, and the custom properties a kept rule or the page uses, transitively.
Pruning keeps a rule it is not sure about (element names, attributes and pseudo-classes are ignored;
:not(), :is() and the like are not looked into), so a pruned page looks exactly like the full one
(tests/test_browser.py compares the computed styles).

Pygments writes a <span> per token, and many token classes have no rule (1150 of the Task1 lab's
4600 elements were <span class="n">). A code span whose class no selector that may match the page
names, in any stylesheet it links or holds, is replaced by its text (`unwrap_plain_spans`): that cut
the page's style and layout time by about a third.
"""
from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import tinycss2

from pagekit.export import ANY_SITE

_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S)
_CLASS_ATTR = re.compile(r"""\sclass\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_ID_ATTR = re.compile(r"""\sid\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_VAR_USE = re.compile(r"var\(\s*(--[\w-]+)")
_GROUPING = {"media", "supports", "layer", "container", "document", "-moz-document"}
_KEYFRAMES = re.compile(r"(?:-[a-z]+-)?keyframes$")


def attribute_values(pattern: re.Pattern, page: str) -> set[str]:
    return {name for m in pattern.finditer(page) for name in "".join(m.groups(default="")).split()}


def split_selectors(prelude: list) -> list[list]:
    """A selector list's tokens, one list per selector (commas inside brackets do not split)."""
    selectors: list[list] = [[]]
    for token in prelude:
        if token.type == "literal" and token.value == ",":
            selectors.append([])
        else:
            selectors[-1].append(token)
    return [s for s in selectors if any(t.type != "whitespace" for t in s)]


def needs(selector: list) -> tuple[frozenset[str], frozenset[str]]:
    """The classes and ids an element (or its ancestors, siblings) must have for the selector
    to match. Function arguments (:not(.x), :is(...)) and attribute selectors are not looked
    into: the tokenizer keeps each of them as one block."""
    classes, ids = set(), set()
    for i, token in enumerate(selector):
        if token.type == "hash" and token.is_identifier:
            ids.add(token.value)
        if token.type == "literal" and token.value == "." and i + 1 < len(selector) and selector[i + 1].type == "ident":
            classes.add(selector[i + 1].value)
    return frozenset(classes), frozenset(ids)


def _kept_rules(rules: list, classes: set[str], ids: set[str]) -> list[tuple]:
    """The rules that may match: ("rule", selectors, declarations), ("group", head, rules)
    for @media and the like, ("at", rule) for other at-rules (@keyframes, @font-face...)."""
    kept = []
    for rule in rules:
        if rule.type == "qualified-rule":
            # a selector that needs a class or id the page does not have cannot match it
            selectors = [s for s in split_selectors(rule.prelude)
                         if needs(s)[0] <= classes and needs(s)[1] <= ids]
            if selectors:
                text = ",".join(tinycss2.serialize(s).strip() for s in selectors)
                declarations = [d for d in tinycss2.parse_declaration_list(
                    rule.content, skip_comments=True, skip_whitespace=True) if d.type == "declaration"]
                kept.append(("rule", text, declarations))
        elif rule.type == "at-rule":
            keyword = rule.at_keyword.lower()
            if keyword == "charset":  # only valid as a file's first bytes; the page is UTF-8 anyway
                continue
            if keyword in _GROUPING and rule.content is not None:
                nested = _kept_rules(tinycss2.parse_rule_list(rule.content, skip_comments=True,
                                                              skip_whitespace=True), classes, ids)
                if nested:
                    kept.append(("group", f"@{rule.at_keyword}{tinycss2.serialize(rule.prelude).rstrip()}", nested))
            else:
                kept.append(("at", rule))
    return kept


def _declarations(kept: list[tuple]):
    """Every kept rule's declarations, @media and the like included."""
    for item in kept:
        if item[0] == "rule":
            yield from item[2]
        elif item[0] == "group":
            yield from _declarations(item[2])


def _used_properties(kept: list[tuple], page: str, other_css: tuple[str, ...]) -> set[str]:
    """Custom properties used by a kept declaration, the page or the page's other stylesheets,
    closed over their definitions."""
    definitions: dict[str, list[str]] = {}
    used = set(_VAR_USE.findall(page)).union(*(_VAR_USE.findall(other) for other in other_css))
    for d in _declarations(kept):
        value = tinycss2.serialize(d.value)
        if d.name.startswith("--"):
            definitions.setdefault(d.name, []).append(value)
        else:
            used.update(_VAR_USE.findall(value))
    todo = list(used)
    while todo:
        for value in definitions.get(todo.pop(), []):
            for name in _VAR_USE.findall(value):
                if name not in used:
                    used.add(name)
                    todo.append(name)
    return used


def _serialize(kept: list[tuple], used: set[str], idents: set[str]) -> str:
    out = []
    for item in kept:
        if item[0] == "rule":
            declarations = [d for d in item[2] if not d.name.startswith("--") or d.name in used]
            if declarations:
                text = ";".join(f"{d.name}:{tinycss2.serialize(d.value).strip()}"
                                + ("!important" if d.important else "") for d in declarations)
                out.append(f"{item[1]}{{{text}}}")
        elif item[0] == "group":
            inner = _serialize(item[2], used, idents)
            if inner:
                out.append(f"{item[1]}{{{inner}}}")
        else:  # kept whole; @keyframes only when a kept declaration names them
            rule = item[1]
            if _KEYFRAMES.match(rule.at_keyword.lower()) and tinycss2.serialize(rule.prelude).strip() not in idents:
                continue
            out.append(rule.serialize())
    return "".join(out)


@functools.lru_cache(maxsize=16)
def _parsed(css: str) -> tuple:
    """css's rules (parsed once a build: every notebook page has the same template CSS)."""
    return tuple(tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True))


def prune(css: str, page: str, other_css: tuple[str, ...] = ()) -> str:
    """The part of css that can apply to the HTML page, minified. other_css: the page's other
    stylesheets, whose var(--x) may read a property css defines."""
    classes, ids = attribute_values(_CLASS_ATTR, page), attribute_values(_ID_ATTR, page)
    kept = _kept_rules(_parsed(css), classes, ids)
    idents = {token.value for d in _declarations(kept) if not d.name.startswith("--")
              for token in d.value if token.type == "ident"}
    return _serialize(kept, _used_properties(kept, page, other_css), idents)


# --- code spans that no stylesheet styles -------------------------------------------------------

def _tokens(tokens, negated: bool = False):
    """(token, inside :not()) for every token, those inside brackets and functions too."""
    for token in tokens:
        yield token, negated
        if token.type == "function":
            yield from _tokens(token.arguments, negated or token.lower_name == "not")
        elif token.type in ("[] block", "() block"):
            yield from _tokens(token.content, negated)


def _selectors(rules):
    for rule in rules:
        if rule.type == "qualified-rule":
            yield from split_selectors(rule.prelude)
        elif rule.type == "at-rule" and rule.content is not None and rule.at_keyword.lower() in _GROUPING:
            yield from _selectors(tinycss2.parse_rule_list(rule.content, skip_comments=True, skip_whitespace=True))


@functools.lru_cache(maxsize=16)
def _selector_facts(css: str) -> tuple[tuple[frozenset, frozenset, frozenset, bool], ...]:
    """For each selector of css: the classes and ids it needs, every class it names (anywhere,
    :not() and :is() included), and whether it tests the class attribute itself ([class...])
    other than in :not() (which cannot select the text a span leaves)."""
    facts = []
    for selector in _selectors(_parsed(css)):
        tokens = list(_tokens(selector))
        named = frozenset(tokens[i + 1][0].value for i, (t, _) in enumerate(tokens[:-1])
                          if t.type == "literal" and t.value == "." and tokens[i + 1][0].type == "ident")
        tests_class = any(t.type == "[] block" and not negated and any(
            c.type == "ident" and c.lower_value == "class" for c in t.content) for t, negated in tokens)
        facts.append((*needs(selector), named, tests_class))
    return tuple(facts)


def named_classes(css: str, page: str) -> set[str] | None:
    """Every class named by a selector of css that may match the page; None when such a
    selector tests the class attribute itself (see _selector_facts)."""
    classes, ids = attribute_values(_CLASS_ATTR, page), attribute_values(_ID_ATTR, page)
    named: set[str] = set()
    for need_classes, need_ids, names, tests_class in _selector_facts(css):
        if need_classes <= classes and need_ids <= ids:
            if tests_class:
                return None
            named |= names
    return named


# a code cell as the template writes it, or as a chapter's block (hooks/notebook_pages.py: chapter_look)
_CODE_BLOCK = re.compile(r'(<div class="(?:[\w-]+ )*highlight-ipynb[^"]*"><pre>)(.*?)(</pre>)', re.S)
_PLAIN_SPAN = re.compile(r'<span class="([\w-]+)">([^<]*)</span>')


def unwrap_plain_spans(page: str, stylesheets: list[str]) -> tuple[str, set[str]]:
    """The page with each code-cell <span> whose class no stylesheet names replaced by its
    text, and the classes that went."""
    styled: set[str] = set()
    for css in stylesheets:
        named = named_classes(css, page)
        if named is None:
            return page, set()
        styled |= named
    gone: set[str] = set()

    def plain(m: re.Match) -> str:
        if m.group(1) in styled:
            return m.group(0)
        gone.add(m.group(1))
        return m.group(2)
    page = _CODE_BLOCK.sub(lambda b: b.group(1) + _PLAIN_SPAN.sub(plain, b.group(2)) + b.group(3), page)
    return page, gone


_LINKED_CSS = re.compile(r'<link\b[^>]*\brel="stylesheet"[^>]*\bhref="([^"]+)"')


def linked_stylesheets(output: str, page_url: str, site_dir: str) -> list[str]:
    """The text of each stylesheet the page links, read from the built site."""
    sheets = []
    for href in _LINKED_CSS.findall(output):
        path = urlsplit(urljoin(f"/{page_url}", href)).path
        if urlsplit(href).netloc:
            raise ValueError(f"{page_url} links a stylesheet on another host: {href}")
        sheets.append((Path(site_dir) / path.lstrip("/")).read_text(encoding="utf-8"))
    return sheets


# --- the hooks ----------------------------------------------------------------------------------

def on_page_content(content, page, config, files):
    if not page.file.src_uri.endswith(".ipynb"):
        return content
    css = "\n".join(m.group(1) for m in _STYLE.finditer(content))
    if css.strip():
        page.notebook_css = css
    return _STYLE.sub("", content)


# A lab page's result, kept by the digest of all its inputs: parsing JupyterLab's and Material's
# stylesheets was a tenth of a warm build, for the same pages every time. `make clean` empties it.
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "notebook-css"


def on_post_page(output, page, config):
    css = getattr(page, "notebook_css", None)
    if css is None:
        return output
    linked = tuple(linked_stylesheets(output, page.url, config.site_dir))
    site = config.site_url or ""  # kept for a stand-in address: a build at another (a test session's) reads it
    if site:
        output = output.replace(site, ANY_SITE)
    digest = hashlib.sha256("\0".join((Path(__file__).read_text(encoding="utf-8"), css, output, *linked))
                            .encode()).hexdigest()
    name = page.url.strip("/").replace("/", "_") or "index"
    cached = CACHE / f"{name}-{digest}.html"
    if cached.is_file():
        return _at(cached.read_text(encoding="utf-8"), site)
    output, _ = unwrap_plain_spans(output, [css, *linked])
    style = f'<style id="notebook-css">{prune(css, output, linked)}</style>\n'
    result = output.replace("</head>", style + "</head>", 1)
    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob(f"{name}-*.html"):  # this page's results from other inputs
        stale.unlink()
    cached.write_text(result, encoding="utf-8")
    return _at(result, site)


def _at(page: str, site: str) -> str:
    return page.replace(ANY_SITE, site) if site else page
