"""Execute the lab notebooks once per build, in a scratch folder, and keep their pages offline.

mkdocs-jupyter (execute: true) runs each notebook in its own folder, so the files a lab writes
(a digits/ tree of PNGs, checkpoints) would land in docs/, and it runs the zh and the en notebook
separately although their code is the same. Here its converter is wrapped: a notebook runs in a
temporary folder with nbclient (the plugin's kernel_name and allow_errors apply: a failing cell
fails the build), and its outputs, kept by its code's tokens (comments and docstrings aside), serve
the other language's notebook too. The runs start with the build, in a thread (`on_pre_build`), for
every notebook the plugin's page cache lacks, so the kernels work while the chapters are rendered.
The plugin's page cache key also holds this file and requirements.txt, so that a warm build gives
the same pages as a cold one after either changes.

The template's MathJax and Mermaid loaders (from cdnjs) are removed: the site loads nothing from
other hosts and has no math. A lab reads like a chapter (`chapter_look`; CONTRIBUTING.md, "The labs
look like the chapters"). Its figures, base64 PNGs that held up the page's first paint (69 of the
Task1 lab's 98 kB, gzipped), go into files next to the page, sized and loaded lazily.
"""
from __future__ import annotations

import atexit
import base64
import concurrent.futures
import contextlib
import hashlib
import html
import importlib
import os
import re
import signal
import struct
import tempfile
import threading
from pathlib import Path

import mkdocs_jupyter.plugin
import nbformat
from pymdownx.slugs import slugify

from pagekit.comments import code_tokens

ROOT = Path(__file__).resolve().parents[1]

QUIET = "-torch.utils.cpp_extension"  # TORCH_LOGS for the lab kernels: that logger only at ERROR
_runs: dict[str, tuple[str, concurrent.futures.Future]] = {}  # code key -> (exact key of the notebook run, its run)
# Two kernels at once: on 2 cores a cold build took 19 s with one, 15-18 s with two (37 s before the runs were shared)
_kernels = threading.BoundedSemaphore(2)
_READS_ITS_TEXT = {"__doc__", "help", "inspect", "getsource", "getdoc"}  # a cell that may print its own comments
_running: set = set()  # the NotebookClients whose kernels are running (`_stop_kernels`)


def code_key(nb: nbformat.NotebookNode, kernel_name: str, allow_errors: bool, exact: bool = False) -> str:
    """What decides a notebook's outputs: its code cells' tokens, in order, and how it is run.

    Comments and docstrings are left out (`code_tokens`), so a lab's zh and en notebooks share a
    run, unless `exact` or a cell may read its own text (help(), __doc__, inspect)."""
    h = hashlib.sha256(f"{kernel_name}|{allow_errors}".encode())
    for cell in nb.cells:
        if cell.cell_type == "code":
            tokens = code_tokens(cell.source)
            literal = exact or any(text in _READS_ITS_TEXT for _, text in tokens)
            h.update(b"\0" + (cell.source if literal else repr(tokens)).encode())
    return h.hexdigest()


def execute_in(folder: Path, nb: nbformat.NotebookNode, kernel_name: str, allow_errors: bool) -> None:
    """Run nb in place, with folder as the kernel's working directory.

    coalesce_streams: a cell's printed lines become one output however the kernel happened to
    flush them, so that two builds write byte-identical pages. QUIET: importing torch.utils.benchmark
    on a machine with a CUDA toolkit but no GPU logs "No CUDA runtime is found" with a time and a pid;
    a lab page shows its cells' stderr, so that line would make every build differ and tell readers
    about the build machine (a chapter's run shows stdout only)."""
    from nbclient import NotebookClient  # only on a cache miss: keeps warm builds fast
    options = {"kernel_name": kernel_name} if kernel_name else {}
    logs = ",".join(filter(None, [os.environ.get("TORCH_LOGS"), QUIET]))
    client = NotebookClient(nb, allow_errors=allow_errors, resources={"metadata": {"path": str(folder)}},
                            coalesce_streams=True, **options)
    _running.add(client)
    try:
        client.execute(env={**os.environ, "TORCH_LOGS": logs})
    finally:
        _running.discard(client)


@atexit.register
def _stop_kernels() -> None:
    """A build that fails exits while a lab's kernel may still run (a daemon thread, `start`): stop the
    kernel, its process group, rather than wait for it or leave it running with the build's output open.
    nbclient's own exit callback for that client goes too: it can race the thread's cleanup of the same
    client (which sets its km to None), and once, under load, it printed "'NoneType' object has no
    attribute 'cleanup_resources'" after the build's real error."""
    for client in list(_running):
        provisioner = getattr(client.km, "provisioner", None)
        if getattr(provisioner, "pgid", None):
            with contextlib.suppress(OSError):
                os.killpg(provisioner.pgid, signal.SIGKILL)
        atexit.unregister(client._cleanup_kernel)


def _executed(nb: nbformat.NotebookNode, kernel_name: str, allow_errors: bool) -> list[tuple[list, int | None]]:
    """(outputs, execution_count) of each code cell of a run of a copy of nb in a scratch folder."""
    with tempfile.TemporaryDirectory(prefix="lab-") as scratch:
        run = nbformat.from_dict(nb)
        execute_in(Path(scratch), run, kernel_name, allow_errors)
    return [(c.outputs, c.execution_count) for c in run.cells if c.cell_type == "code"]


def start(nb: nbformat.NotebookNode, kernel_name: str, allow_errors: bool) -> None:
    """Run nb in the background, unless a run of the same code has started. The thread is a daemon:
    a build that fails exits without waiting for it, and stops its kernel (`_stop_kernels`)."""
    key = code_key(nb, kernel_name, allow_errors)
    if key in _runs:
        return
    run = concurrent.futures.Future()

    def work():
        with _kernels:
            try:
                run.set_result(_executed(nb, kernel_name, allow_errors))
            except BaseException as error:  # a failing cell: nb2html raises it in the build
                run.set_exception(error)

    _runs[key] = (code_key(nb, kernel_name, allow_errors, exact=True), run)
    threading.Thread(target=work, name="lab-kernel", daemon=True).start()


def outputs_for(nb: nbformat.NotebookNode, kernel_name: str, allow_errors: bool) -> list[tuple[list, int | None]]:
    """Each code cell's (outputs, execution_count): from the run of the same code, or, where that run
    was the other language's and its outputs may quote its lines (a traceback, a warning), nb's own."""
    start(nb, kernel_name, allow_errors)
    ran_as, run = _runs[code_key(nb, kernel_name, allow_errors)]
    outputs = run.result()
    quotes = any(o.get("output_type") == "error" or o.get("name") == "stderr" for cell, _ in outputs for o in cell)
    if quotes and ran_as != code_key(nb, kernel_name, allow_errors, exact=True):
        return _executed(nb, kernel_name, allow_errors)
    return outputs


def _converter():
    """mkdocs-jupyter's converter module, imported on first use (nbconvert: 0.4 s; pagekit/jupyter_plugin.py)."""
    return importlib.import_module("mkdocs_jupyter.convert")


def nb2html(nb_path, execute=False, kernel_name="", allow_errors=True, **options):
    if not execute or not str(nb_path).endswith(".ipynb"):
        return _converter().nb2html(nb_path, execute=execute, kernel_name=kernel_name,
                                    allow_errors=allow_errors, **options)
    nb = nbformat.read(nb_path, as_version=4)
    ran = outputs_for(nb, kernel_name, allow_errors)
    with tempfile.TemporaryDirectory(prefix="lab-") as scratch:
        code_cells = [c for c in nb.cells if c.cell_type == "code"]
        for cell, (outputs, count) in zip(code_cells, ran):
            cell.outputs, cell.execution_count = nbformat.from_dict(outputs), count
        executed = Path(scratch) / "executed" / Path(nb_path).name
        executed.parent.mkdir()
        nbformat.write(nb, executed)
        body = _converter().nb2html(str(executed), execute=False, kernel_name=kernel_name,
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


class _Converter:
    """What the plugin calls `convert` (it calls convert.nb2html(...) at render time): `_converter()`,
    with nb2html as above."""
    nb2html = staticmethod(nb2html)

    def __getattr__(self, name: str):
        return getattr(_converter(), name)


mkdocs_jupyter.plugin.convert = _Converter()

_original_cache_key = getattr(mkdocs_jupyter.plugin._compute_cache_key, "__wrapped__",
                              mkdocs_jupyter.plugin._compute_cache_key)


def cache_key(nb_path, config, exec_nb) -> str:
    """The plugin's key for a rendered notebook, with this file and the pinned versions in it."""
    h = hashlib.sha256(_original_cache_key(nb_path, config, exec_nb).encode())
    for path in (Path(__file__), ROOT / "requirements.txt"):
        h.update(path.read_bytes())
    return h.hexdigest()


cache_key.__wrapped__ = _original_cache_key
mkdocs_jupyter.plugin._compute_cache_key = cache_key


_EXTERNAL_SCRIPTS = [
    re.compile(r'<!-- Load mathjax -->\s*<script src="[^"]*">\s*</script>', re.S),
    re.compile(r'<!-- MathJax configuration -->\s*<script type="text/x-mathjax-config">.*?</script>\s*'
               r'<!-- End of mathjax configuration -->', re.S),
    re.compile(r'<script type="module">(?:(?!</script>).)*?import\("https://[^"]*mermaid.*?</script>', re.S),
]


_INLINE_PNG = re.compile(r'(<img\b[^>]*?)\ssrc="data:image/png;base64,([A-Za-z0-9+/=\s]+)"')


def png_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height, from its IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG (no PNG signature and IHDR chunk at its start)")
    return struct.unpack(">II", data[16:24])


def with_image_files(content: str, folder: Path) -> str:
    """Each inline PNG written to folder/figure-<hash>.png and linked from there."""
    def move(m: re.Match) -> str:
        data = base64.b64decode(m.group(2))
        width, height = png_size(data)
        name = f"figure-{hashlib.sha256(data).hexdigest()[:12]}.png"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        size = "" if re.search(r"\s(?:width|height)=", m.group(1)) else f' width="{width}" height="{height}"'
        return f'{m.group(1)} src="{name}"{size} loading="lazy" decoding="async"'
    return _INLINE_PNG.sub(move, content)


_SLUG = slugify(case="lower")


def with_heading_ids(content: str, toc) -> str:
    """nbconvert gives a heading with no Latin letters an empty id (`<h2 id="">接下来可以试试`), while
    the table of contents links it as `#_1`: such a heading gets the id the site's Markdown pages
    would give it, and its table-of-contents entry follows."""
    def walk(items):
        for item in items:
            yield item
            yield from walk(item.children)

    for item in walk(toc):
        empty = f'<h{item.level} id="">{html.escape(item.title, quote=False)}<a class="anchor-link" href="#">'
        if f'id="{item.id}"' in content or empty not in content:
            continue
        item.id = _SLUG(item.title, "-")
        content = content.replace(empty, empty.replace('id=""', f'id="{item.id}"').replace('href="#"', f'href="#{item.id}"'), 1)
    return content


OUTPUT_LABEL = {"zh": "输出", "en": "Output"}  # as on the chapters (hooks/chapters.py)
_CODE_CELL = re.compile(r'<div class="highlight-ipynb hl-python"><pre><span></span>(.*?)</pre></div>', re.S)
# A name's span: Material colours `.highlight .n` with --md-code-hl-name-color, which its palette sets
# to the code's own colour, so the span changes nothing on screen; the task1 lab has 1,200 of them,
# which hooks/notebook_css.py would keep because a stylesheet names the class (tests/test_browser.py
# compares every cell's look with the converter's own, spans and all).
_NAME = re.compile(r'<span class="n">([^<]*)</span>')
_COPY_BUTTON = re.compile(r'<div class="zeroclipboard-container">\s*<clipboard-copy\b.*?</clipboard-copy>\s*</div>\s*', re.S)
_TEXT_OUTPUT = re.compile(r'<div class="jp-RenderedText jp-OutputArea-output"( data-mime-type="[^"]*")? tabindex="0">\s*'
                          r'<pre>(.*?)</pre>\s*</div>', re.S)


def chapter_look(content: str, lang: str) -> str:
    """A lab's code cells and printed outputs in the markup of a chapter's blocks: a code cell as a
    Python block (`div.language-python.highlight > pre > code`, which Material colours and gives
    its copy button; the template's own copy button goes), a text output as a chapter's output
    box, labelled in the page's language and left out of the search index as a chapter's is."""
    if lang not in OUTPUT_LABEL:
        raise ValueError(f"no output label for language {lang!r}; known: {', '.join(OUTPUT_LABEL)}")
    content = _COPY_BUTTON.sub("", content)
    content = _CODE_CELL.sub(lambda m: '<div class="language-python highlight highlight-ipynb hl-python"><pre>'
                             "<span></span><code>" + _NAME.sub(r"\1", m.group(1)) + "</code></pre></div>", content)
    label = OUTPUT_LABEL[lang]
    return _TEXT_OUTPUT.sub(
        lambda m: f'<div class="jp-RenderedText jp-OutputArea-output language-text highlight tpn-output"{m.group(1) or ""}'
                  f' tabindex="0" data-search-exclude="1"><span class="filename">{label}</span><pre><span></span><code>{m.group(2)}</code></pre></div>',
        content)


def on_page_content(content, page, config, files):
    if not page.file.src_uri.endswith(".ipynb"):
        return content
    folder = Path(config.site_dir) / Path(page.file.dest_uri).parent
    lang = config.theme["language"]
    content = chapter_look(with_heading_ids(content, page.toc), lang if lang in OUTPUT_LABEL else "en")
    for pattern in _EXTERNAL_SCRIPTS:
        content = pattern.sub("", content)
    return with_image_files(content, folder)


def on_pre_build(config):
    """Start the runs of the notebooks whose pages the plugin has not cached, before any page is rendered."""
    plugin = config.plugins.get("notebooks")
    if plugin is None or not plugin.config["execute"]:
        return
    for path in sorted(Path(config.docs_dir).rglob("*.ipynb")):
        key = mkdocs_jupyter.plugin._compute_cache_key(str(path), plugin.config, True)
        if plugin.config["cache"] and mkdocs_jupyter.plugin._get_cache_path(plugin.config["cache_dir"], key).exists():
            continue
        start(nbformat.read(path, as_version=4), plugin.config["kernel_name"], plugin.config["allow_errors"])


def on_build_error(error):
    _stop_kernels()  # now, before the process's exit closes what the kernel's client is using
