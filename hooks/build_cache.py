"""Work a warm build need not redo: highlighted code (.cache/highlight.json) and compiled templates
(.cache/templates/).

Highlighting the site's code blocks was a fifth of a warm build, and every Python block is
highlighted twice per build (zh and en) and again at every build. pymdownx.highlight's
`Highlight.highlight` is wrapped: the same arguments and the same highlighter settings (with
the Pygments and pymdown-extensions versions) give the same HTML, so a block seen before is
not highlighted again. The file is rewritten after each build with only the blocks that build
used.

Jinja compiled every template of the theme (and each icon it includes) once per language and
build: 0.3 s of a warm build. Its own bytecode cache keeps them, keyed by each template's source
and the Python version. `make clean` removes both.

Rendering the pages' Markdown was a quarter of a warm build. MkDocs' `Page.render` is wrapped: its
results (the HTML, the table of contents, the title, the anchors) are remembered (pagekit.memo) by the
page's Markdown and address, the files it includes (`--8<--`, read again each build), every file's
address, the language, mkdocs.yml and the renderers' versions (not the site URL: MkDocs writes the links it
renders relative, so a build at another address, as each test session's, reads them too). A render that logged a
warning is not remembered: it renders again, so `--strict` fails again.
"""
from __future__ import annotations

import hashlib
import json
import logging
from importlib.metadata import version
from pathlib import Path

import jinja2
import pymdownx.highlight
from mkdocs.plugins import event_priority
from mkdocs.structure.pages import Page
from mkdocs.structure.toc import get_toc

from pagekit.memo import recall
from pagekit.page import includes
from pagekit.project import ROOT

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "highlight.json"
TEMPLATES = CACHE.with_name("templates")
_VERSIONS = f"pygments {version('pygments')} pymdown-extensions {version('pymdown-extensions')}"
_original = pymdownx.highlight.Highlight.highlight
_seen: dict[str, str] = {}
_used: dict[str, str] = {}


def _highlight(self, *args, **kwargs):
    settings = {k: v for k, v in vars(self).items() if isinstance(v, (str, int, float, bool, type(None)))}
    text = json.dumps([_VERSIONS, sorted(settings.items()), repr(args),
                       sorted((k, repr(v)) for k, v in kwargs.items())])
    key = hashlib.sha256(text.encode()).hexdigest()
    if key not in _seen:
        _seen[key] = _original(self, *args, **kwargs)
    _used[key] = _seen[key]
    return _seen[key]


pymdownx.highlight.Highlight.highlight = _highlight


def on_pre_build(config):
    if not _seen and CACHE.is_file():
        try:
            _seen.update(json.loads(CACHE.read_text(encoding="utf-8")))
        except ValueError:  # a damaged file: start again
            pass


@event_priority(-100)
def on_post_build(config):
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_text(json.dumps(_used), encoding="utf-8")


def on_env(env, config, files):
    TEMPLATES.mkdir(parents=True, exist_ok=True)
    env.bytecode_cache = jinja2.FileSystemBytecodeCache(str(TEMPLATES))
    return env


_RENDERERS = [(ROOT / "mkdocs.yml").read_bytes()] + [
    version(name) for name in ("mkdocs", "markdown", "pymdown-extensions", "mkdocs-material", "pygments")]
_page_render = getattr(Page.render, "__wrapped__", Page.render)


def _included(text: str, seen: set[str]) -> list[tuple[str, bytes]]:
    """The files a page's Markdown includes, and theirs, with their bytes."""
    found = []
    for name in dict.fromkeys(spec.split(":")[0] for spec in includes(text)):
        if name not in seen:
            seen.add(name)
            data = (ROOT / name).read_bytes() if (ROOT / name).is_file() else b""
            found += [(name, data)] + (_included(data.decode("utf-8"), seen) if name.endswith(".md") else [])
    return found


def _tokens(items) -> list[dict]:
    return [{"level": a.level, "id": a.id, "name": a.title, "children": _tokens(a.children)} for a in items]


class _Warned(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record):
        self.count += 1


def _render(self, config, files) -> None:
    if not self.file.src_uri.endswith(".md"):
        return _page_render(self, config, files)

    rendered = []

    def make() -> dict:
        rendered.append(True)
        warned = _Warned()
        logging.getLogger("mkdocs").addHandler(warned)
        try:
            _page_render(self, config, files)
        finally:
            logging.getLogger("mkdocs").removeHandler(warned)
        return {"warned": True} if warned.count else {
            "content": self.content, "toc": _tokens(self.toc), "title": self._title_from_render,
            "anchors": sorted(self.present_anchor_ids),
            "links": {f.src_uri: links for f, links in (self.links_to_anchors or {}).items()}}

    key = (self.markdown, self.file.src_uri, self.file.url, _included(self.markdown, set()),
           [(f.src_uri, f.url) for f in files], config.theme["language"], _RENDERERS)
    made = recall("page render", key, make, salted=False)
    if rendered:
        return
    if made.get("warned"):
        _page_render(self, config, files)  # its warnings again, every build
    else:  # what MkDocs' render sets
        self.content, self.toc, self._title_from_render = made["content"], get_toc(made["toc"]), made["title"]
        self.present_anchor_ids = set(made["anchors"])
        self.links_to_anchors = {files.get_file_from_path(uri): links for uri, links in made["links"].items()}


_render.__wrapped__ = _page_render
Page.render = _render
