"""Let mkdocs-static-i18n and mkdocs-jupyter work together.

1. i18n rebuilds every File as a plain mkdocs File, which drops mkdocs-jupyter's
   notebook wrapper: the .ipynb is then copied as an asset and its raw JSON is
   published as the page (upstream: ultrabug/mkdocs-static-i18n#198). A File
   subclass that calls .ipynb a documentation page keeps notebooks as pages.
2. mkdocs-jupyter evicts "stale" cache entries after each build, and i18n builds
   once per language, so each language evicted the other's notebooks and every
   build re-executed them. Telling the plugin that every cache entry is in use
   keeps both languages cached (`make clean` empties .cache/).
"""
import mkdocs_static_i18n.folder
import mkdocs_static_i18n.suffix
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File


class NotebookAwareFile(File):
    def is_documentation_page(self) -> bool:
        return self.src_uri.endswith(".ipynb") or super().is_documentation_page()


mkdocs_static_i18n.folder.File = NotebookAwareFile
mkdocs_static_i18n.suffix.File = NotebookAwareFile


class _EverythingUsed(set):
    def __contains__(self, item) -> bool:
        return True


@event_priority(-200)  # after mkdocs-jupyter's own on_pre_build resets its set
def on_pre_build(config):
    plugin = config.plugins.get("notebooks")
    if plugin is not None:
        plugin._used_cache_paths = _EverythingUsed()
