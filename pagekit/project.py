"""The project's facts, read from mkdocs.yml and requirements.txt once: where it is, its
languages, its chapters, and the pinned versions.

A chapter is a page under one of the nav's Task sections (CHAPTER_SECTIONS): `docs/<lang>/<slug>.md`
in every language, and its snippet module `snippets/<slug with _>.py`. Everything that lists
chapters or languages derives the list from here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
GENERATED = ROOT / "generated"
CHAPTER_SECTIONS = ("Task1 基础", "Task3 进阶")


def engine_sources() -> list[Path]:
    """The engine's source a run or a build result depends on: pagekit/ but its two plugins, pytest's
    (turns pages into test items, schedules the tests) and MkDocs' (loads mkdocs-jupyter lazily): no
    page's program and no rendered chapter reads them."""
    plugins = ("pytest_plugin.py", "jupyter_plugin.py")
    return sorted(f for f in Path(__file__).parent.glob("*.py") if f.name not in plugins)


@lru_cache(maxsize=1)
def mkdocs_config() -> dict:
    """mkdocs.yml, its !tags not followed (mkdocs need not be installed). PyYAML is imported
    here: `make gpu-check` reads the pins before it has installed PyYAML on a bare machine."""
    import yaml

    class IgnoreTags(yaml.SafeLoader):
        pass

    IgnoreTags.add_multi_constructor("", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=IgnoreTags)


def __getattr__(name: str):
    """LANGS, DEFAULT_LANG and CHAPTERS, read from mkdocs.yml when first asked for."""
    if name not in ("LANGS", "DEFAULT_LANG", "CHAPTERS"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    i18n = next(p["i18n"] for p in mkdocs_config()["plugins"] if isinstance(p, dict) and "i18n" in p)
    found = {"LANGS": tuple(lang["locale"] for lang in i18n["languages"]),
             "DEFAULT_LANG": next(lang["locale"] for lang in i18n["languages"] if lang.get("default")),
             "CHAPTERS": tuple(Chapter(page, titles[-1]) for titles, page in nav_pages()
                               if titles[0] in CHAPTER_SECTIONS)}
    globals().update(found)
    return found[name]


def nav_pages(node=None, titles: tuple[str, ...] = ()):
    """(titles above it, page) for every page in mkdocs.yml's nav, in order."""
    node = mkdocs_config()["nav"] if node is None else node
    if isinstance(node, list):
        for item in node:
            yield from nav_pages(item, titles)
    elif isinstance(node, dict):
        for title, value in node.items():
            yield from nav_pages(value, (*titles, title))
    else:
        yield titles, node


@dataclass(frozen=True)
class Chapter:
    page: str    # e.g. "multi-gpu.md", the same name in every language
    title: str   # its nav title (in the default language)

    @property
    def module(self) -> str:
        return Path(self.page).stem.replace("-", "_")

    def path(self, lang: str) -> Path:
        return DOCS / lang / self.page


def snippet_options() -> dict:
    """mkdocs.yml's pymdownx.snippets options, with base_path resolved to the project root."""
    for ext in mkdocs_config()["markdown_extensions"]:
        if isinstance(ext, dict) and "pymdownx.snippets" in ext:
            opts = dict(ext["pymdownx.snippets"] or {})
            break
    else:
        raise LookupError("mkdocs.yml does not enable pymdownx.snippets")
    opts["base_path"] = [str(ROOT)]  # `!relative $config_dir` in mkdocs.yml
    return opts


_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def pins(requirements_text: str | None = None) -> dict[str, str]:
    """{package: version} for each `name==version` line of requirements.txt."""
    if requirements_text is None:
        requirements_text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    found = {}
    for line in requirements_text.splitlines():
        m = _PIN.match(line)
        if m:
            found[m.group(1).lower().replace("_", "-")] = m.group(2)
    return found
