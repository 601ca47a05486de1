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
"""
from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path

import jinja2
import pymdownx.highlight
from mkdocs.plugins import event_priority

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
