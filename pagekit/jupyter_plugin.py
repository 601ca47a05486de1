"""mkdocs-jupyter's plugin, named `notebooks` in mkdocs.yml, with its converter imported on first use.

mkdocs-jupyter imports nbconvert and jupytext as MkDocs loads it: about 0.7 s of a 2.7 s warm build that
converts no notebook (hooks/build_cache.py keeps the rendered pages). Here each of the two is a
stand-in module until one of its attributes is read; the plugin is mkdocs-jupyter's own, unchanged.
The entry point is in pyproject.toml; hooks/notebook_pages.py wraps the converter.
"""
from __future__ import annotations

import importlib
import sys
from types import ModuleType


class Deferred(ModuleType):
    """Stands in sys.modules for the module of its name; the first attribute read imports that module.

    (importlib.util.LazyLoader would not do: on Python 3.11 an `import` statement reads the module's
    __spec__, which runs it.)"""

    def __getattr__(self, attr: str):  # only for the attributes a bare module lacks
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attr)


def defer(name: str) -> None:
    """Put a Deferred for `name` in sys.modules (and on its package), unless `name` is imported."""
    if name not in sys.modules:
        sys.modules[name] = Deferred(name)
        package, _, child = name.rpartition(".")
        if package:
            setattr(importlib.import_module(package), child, sys.modules[name])


defer("jupytext")
defer("mkdocs_jupyter.convert")

from mkdocs_jupyter.plugin import Plugin  # noqa: E402  (after the two stand-ins it imports)

__all__ = ["Plugin"]
