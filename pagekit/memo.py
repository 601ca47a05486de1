"""Results of the build's pure functions, remembered between builds in .cache/memo.json (`make clean` removes it).

`@remembered` keys a result by the function, its arguments and all else it may read: the engine's source and
every file in snippets/ (left out for a result that reads neither: a search entry, a jieba cut). The hooks
`load()` before a build and `save()` what that build used.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os

from pagekit.project import ROOT, engine_sources

CACHE = ROOT / ".cache" / "memo.json"
_seen: dict[str, object] = {}
_used: dict[str, object] = {}
_on_disk: set[str] = set()  # the keys CACHE holds


@functools.lru_cache(maxsize=1)
def _salt() -> str:
    files = engine_sources() + sorted(f for f in (ROOT / "snippets").iterdir() if f.is_file())
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


def recall(name: str, key, make, *, salted: bool = True):
    """`make()`'s result, remembered under `name` and `key` (its repr: all that result depends on), and the
    engine's and snippets' sources unless `salted` is False (a result that reads neither)."""
    digest = hashlib.sha256(repr((name, key, _salt() if salted else None)).encode()).hexdigest()
    if digest not in _seen:
        _seen[digest] = make()
    _used[digest] = _seen[digest]
    return _seen[digest]


def remembered(fn=None, *, salted: bool = True):
    """`fn`'s result, remembered by its arguments (`@remembered`, or `@remembered(salted=False)`: see recall)."""
    if fn is None:
        return functools.partial(remembered, salted=salted)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return recall(fn.__qualname__, (args, sorted(kwargs.items())), lambda: fn(*args, **kwargs), salted=salted)
    return wrapper


def load() -> None:
    _salt.cache_clear()  # `mkdocs serve`: a table or the engine may have changed
    if not _seen and CACHE.is_file():
        try:
            _seen.update(json.loads(CACHE.read_text(encoding="utf-8")))
            _on_disk.update(_seen)
        except ValueError:  # a damaged file: start again
            pass


def save() -> None:
    if _used.keys() <= _on_disk and CACHE.is_file():
        return  # nothing new (a warm build): not 7 MB written again; what it no longer uses goes at the next write
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    written = CACHE.with_name(f"{CACHE.name}.{os.getpid()}")  # then renamed: builds side by side (make test's
    written.write_text(json.dumps(_used), encoding="utf-8")    # two workers) never read a half-written file
    os.replace(written, CACHE)
    _on_disk.clear()
    _on_disk.update(_used)
