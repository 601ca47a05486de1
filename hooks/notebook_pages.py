"""Execute the lab notebooks once per build, in a scratch folder, and keep their pages offline.

mkdocs-jupyter (execute: true) runs each notebook with its own folder as the working
directory, so the files a lab writes (a digits/ tree of PNGs, checkpoints) would land in
docs/. It also runs the zh and the en notebook separately although their code cells are
the same (tools/make_notebooks.py writes them from the same snippet sections). Here the
converter is wrapped: a notebook is executed in a temporary folder with nbclient (the
plugin's kernel_name and allow_errors apply: a failing cell fails the build), its outputs
are kept for this build by the text of its code cells, and the other language's notebook
with the same code gets those outputs without running again. mkdocs-jupyter's cache
then stores the rendered pages as usual.

The nbconvert template also writes a MathJax <script> from cdnjs and a Mermaid loader
that imports from cdnjs into every notebook page. The site loads nothing from other
hosts (and has no math), so those scripts are removed from notebook pages. And it inlines
about 600 kB of the same JupyterLab CSS into each notebook page; it goes into one shared
file (assets/stylesheets/notebook-<hash>.css), which keeps the pages small, lets browsers
cache it, and keeps the search plugin from parsing it on every build.
"""
from __future__ import annotations

import hashlib
import html
import re
import tempfile
from pathlib import Path

import mkdocs_jupyter.convert
import nbformat

_original_nb2html = getattr(mkdocs_jupyter.convert.nb2html, "__wrapped__", mkdocs_jupyter.convert.nb2html)
_outputs: dict[str, list[tuple[list, int | None]]] = {}  # code-cells key -> (outputs, execution_count) per code cell


def code_key(nb: nbformat.NotebookNode, kernel_name: str, allow_errors: bool) -> str:
    """What decides a notebook's outputs: its code cells, in order, and how it is run."""
    h = hashlib.sha256(f"{kernel_name}|{allow_errors}".encode())
    for cell in nb.cells:
        if cell.cell_type == "code":
            h.update(b"\0" + cell.source.encode())
    return h.hexdigest()


def execute_in(folder: Path, nb: nbformat.NotebookNode, kernel_name: str, allow_errors: bool) -> None:
    """Run nb in place, with folder as the kernel's working directory."""
    from nbclient import NotebookClient  # only on a cache miss: keeps warm builds fast
    options = {"kernel_name": kernel_name} if kernel_name else {}
    NotebookClient(nb, allow_errors=allow_errors, resources={"metadata": {"path": str(folder)}},
                   **options).execute()


def nb2html(nb_path, execute=False, kernel_name="", allow_errors=True, **options):
    if not execute or not str(nb_path).endswith(".ipynb"):
        return _original_nb2html(nb_path, execute=execute, kernel_name=kernel_name,
                                 allow_errors=allow_errors, **options)
    nb = nbformat.read(nb_path, as_version=4)
    key = code_key(nb, kernel_name, allow_errors)
    with tempfile.TemporaryDirectory(prefix="lab-") as scratch:
        if key not in _outputs:
            run = nbformat.from_dict(nb)
            execute_in(Path(scratch), run, kernel_name, allow_errors)
            _outputs[key] = [(c.outputs, c.execution_count) for c in run.cells if c.cell_type == "code"]
        code_cells = [c for c in nb.cells if c.cell_type == "code"]
        for cell, (outputs, count) in zip(code_cells, _outputs[key]):
            cell.outputs, cell.execution_count = nbformat.from_dict(outputs), count
        executed = Path(scratch) / "executed" / Path(nb_path).name
        executed.parent.mkdir()
        nbformat.write(nb, executed)
        body = _original_nb2html(str(executed), execute=False, kernel_name=kernel_name,
                                 allow_errors=allow_errors, **options)
    return with_image_alts(body, nb)


_NO_ALT = 'alt="No description has been provided for this image"'


def with_image_alts(body: str, nb: nbformat.NotebookNode) -> str:
    """nbconvert's HTML template ignores an image output's `alt` (IPython.display.Image(..., alt=...))
    and writes a generic text; put each output's own alt back, image by image."""
    alts = [o.get("metadata", {}).get(mime, {}).get("alt") for c in nb.cells if c.cell_type == "code"
            for o in c.outputs for mime in ("image/png", "image/jpeg") if mime in o.get("data", {})]
    pieces = body.split(_NO_ALT)
    if len(pieces) != len(alts) + 1:  # not one generic alt per image: leave the page as it is
        return body
    out = pieces[0]
    for alt, piece in zip(alts, pieces[1:]):
        out += (f'alt="{html.escape(alt)}"' if alt else _NO_ALT) + piece
    return out


nb2html.__wrapped__ = _original_nb2html
mkdocs_jupyter.convert.nb2html = nb2html  # the plugin calls convert.nb2html(...) at render time


_EXTERNAL_SCRIPTS = [
    re.compile(r'<!-- Load mathjax -->\s*<script src="[^"]*">\s*</script>', re.S),
    re.compile(r'<!-- MathJax configuration -->\s*<script type="text/x-mathjax-config">.*?</script>\s*'
               r'<!-- End of mathjax configuration -->', re.S),
    re.compile(r'<script type="module">(?:(?!</script>).)*?import\("https://[^"]*mermaid.*?</script>', re.S),
]


def without_external_scripts(content: str) -> str:
    for pattern in _EXTERNAL_SCRIPTS:
        content = pattern.sub("", content)
    return content


_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S)


def on_page_content(content, page, config, files):
    if not page.file.src_uri.endswith(".ipynb"):
        return content
    content = without_external_scripts(content)
    css = "\n".join(m.group(1).strip() for m in _STYLE.finditer(content))
    if not css:
        return content
    name = f"assets/stylesheets/notebook-{hashlib.sha256(css.encode()).hexdigest()[:12]}.css"
    page.notebook_css = (name, css)
    up = "../" * len(Path(page.file.dest_uri).parent.parts)  # from the page's folder to the site root
    return f'<link rel="stylesheet" href="{up}{name}">\n' + _STYLE.sub("", content)


def on_post_page(output, page, config):
    name, css = getattr(page, "notebook_css", (None, None))
    if name:
        target = Path(config.site_dir) / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(css, encoding="utf-8")
    return output
