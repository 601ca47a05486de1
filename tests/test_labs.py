"""The labs and the code downloads: generated from the snippets, rendered with real outputs in both
languages, offered for download, and runnable as downloaded from the built site."""
from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import nbformat
import pytest
import torch
from PIL import Image

from hooks import notebook_pages
from pagekit.comments import code_tokens, translate
from pagekit.project import LANGS, ROOT
from pagekit.run import remembered
from snippets.labs import digit_features, in_memory, predict, save_predictions_grid
from snippets.training import DigitCNN
from tools import make_notebooks
from tools.make_notebooks import LABS

SECTION = re.compile(r"^snippets/\w+\.py:[\w-]+$")
NAV_TITLES = {("task1", "zh"): "Task1 实验", ("task1", "en"): "Task1 lab",
              ("task3", "zh"): "Task3 实验", ("task3", "en"): "Task3 lab"}
# lines each lab prints (the same in both languages: the code is the same)
PRINTED = {
    "task1": ["1438 training images, 359 validation images", "conv bias: [0.30000001192092896]",
              "epoch  6/6", "validation: loss", "mistakes (true->predicted):"],
    "task3": ["['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']",
              "['module.hidden.weight', 'module.hidden.bias']", "<All keys matched successfully>",
              "same predictions: True", "same outputs: True", "Missing key(s) in state_dict"],
}
PICTURES = {"task1": ["training and validation loss, and validation accuracy, per epoch",  # their alt texts
                      "validation digits titled with the predicted class, mistakes in red"],
            "task3": []}


TORCH_LOG_LINE = re.compile(r"\b[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ ")  # e.g. "W1206 02:06:26.024000 19875 "


def site_path(site: Path, lang: str, path: str) -> Path:
    return site / path if lang == "zh" else site / lang / path


def code_cells(nb: nbformat.NotebookNode) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code"]


def same_code(cells: list[str], others: list[str]) -> bool:
    """The same code, whatever the language of its comments and docstrings."""
    return [code_tokens(c) for c in cells] == [code_tokens(c) for c in others]


# --- the generator ---------------------------------------------------------------------------------

def test_committed_notebooks_are_what_the_generator_makes():
    assert make_notebooks.main(["--check"]) == 0, "run `make notebooks`"


def test_check_mode_fails_on_a_stale_or_missing_notebook(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(make_notebooks, "path", lambda lab, lang: tmp_path / lang / f"{lab}.ipynb")
    assert make_notebooks.main([]) == 0
    assert make_notebooks.main(["--check"]) == 0
    stale = tmp_path / "en" / "task3.ipynb"
    stale.write_text(stale.read_text(encoding="utf-8").replace("DataParallel", "DP"), encoding="utf-8")
    (tmp_path / "zh" / "task1.ipynb").unlink()
    capsys.readouterr()
    assert make_notebooks.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "task3.ipynb" in err and "task1.ipynb" in err and "make notebooks" in err


def test_prose_lines_are_joined_without_a_space_between_chinese_characters():
    text = "\n第一行的末尾\n接着第二行，用 `ImageFolder`\n读入。\n\n- a list item\n  continued\n- next\n"
    assert make_notebooks.unwrap(text) == "第一行的末尾接着第二行，用 `ImageFolder` 读入。\n\n- a list item continued\n- next"
    assert make_notebooks.unwrap("one line\nand the next\n## Heading") == "one line and the next\n## Heading"


@pytest.mark.parametrize("lab", sorted(LABS))
def test_lab_cells_are_prose_in_both_languages_or_snippet_sections(lab):
    for cell in LABS[lab]:
        if isinstance(cell, dict):
            assert set(cell) == set(LANGS) and all(cell[lang].strip() for lang in LANGS)
        else:
            assert cell and all(SECTION.match(name) for name in cell), cell
    for lang in LANGS:
        nb = make_notebooks.build(lab, lang)
        sections = [c for c in LABS[lab] if isinstance(c, list)]
        assert len(code_cells(nb)) == len(sections)
        for source, names in zip(code_cells(nb), sections):  # the sections' code and blank lines, nothing else
            shown = "\n".join(translate(f'--8<-- "{name}"', lang).strip("\n") for name in names)
            assert re.sub(r"\n+", "\n", source) == re.sub(r"\n+", "\n", shown)
        for source in code_cells(nb):
            assert not re.search(r"^\s*(from|import)\s+snippets\b", source, re.M)


@pytest.mark.parametrize("lab", sorted(LABS))
def test_lab_code_cells_follow_the_chapters_block_rules(lab):
    """As a chapter's blocks (tests/test_pages.py): no cell over 45 lines, a median of at most
    15, no line over 88 characters."""
    import statistics

    from tests.test_pages import LINE_LENGTH, MAX_LINES, MEDIAN_LINES
    lengths = [len(source.split("\n")) for source in code_cells(make_notebooks.build(lab, "en"))]
    assert max(lengths) <= MAX_LINES, lengths
    assert statistics.median(lengths) <= MEDIAN_LINES, lengths
    wide = [line for source in code_cells(make_notebooks.build(lab, "en")) for line in source.split("\n")
            if len(line) > LINE_LENGTH]
    assert wide == []


@pytest.mark.parametrize("lab", sorted(LABS))
def test_both_languages_run_the_same_code(lab):
    """The same code, token for token; only comments and docstrings are in the page's language."""
    zh, en = (make_notebooks.build(lab, lang) for lang in LANGS)
    assert same_code(code_cells(zh), code_cells(en)) and code_cells(zh) != code_cells(en)
    assert [c.cell_type for c in zh.cells] == [c.cell_type for c in en.cells]


# --- the rendered lab pages -------------------------------------------------------------------------

@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("lab", sorted(LABS))
def test_lab_page_is_the_executed_notebook(built_site, lab, lang):
    page = site_path(built_site, lang, f"labs/{lab}/index.html").read_text(encoding="utf-8")
    assert 'class="jp-Notebook"' in page and '"cells":' not in page  # HTML, not the notebook's JSON
    nb = nbformat.read(ROOT / "docs" / lang / "labs" / f"{lab}.ipynb", as_version=4)
    prompts = re.findall(r'jp-InputPrompt jp-InputArea-prompt">In(?:\s|&nbsp;)*\[(\d*)\]:<', page)
    assert prompts == [str(i) for i in range(1, len(code_cells(nb)) + 1)]  # every code cell ran, in order
    outputs = "".join(re.findall(r'<div class="jp-OutputArea jp-Cell-outputWrapper">(.*?)</div>\s*</div>\s*</div>',
                                 page, re.S)) or page
    for line in PRINTED[lab]:
        assert html.escape(line, quote=False) in outputs, line
    assert not TORCH_LOG_LINE.search(outputs), "a torch log line (time, pid) in a lab's output"
    pictures = re.findall(r'<img alt="([^"]*)"[^>]*? src="(figure-[0-9a-f]{12}\.png)" width="(\d+)" height="(\d+)"'
                          r' loading="lazy"', page)
    assert [alt for alt, *_ in pictures] == PICTURES[lab] and "data:image" not in page
    for _, name, width, height in pictures:  # figures are files beside the page, at their stated size
        with Image.open(site_path(built_site, lang, f"labs/{lab}/{name}")) as picture:
            assert picture.format == "PNG" and picture.size == (int(width), int(height))
    assert f"<title>{NAV_TITLES[lab, lang]} - " in page


LAB_CODE = '<div class="language-python highlight highlight-ipynb hl-python"><pre><span></span><code>'
# On the built page each block's copy button sits before its <code> (hooks/copy_buttons.py)
COPY = r'<nav class="md-code__nav"><button [^>]*data-md-type="copy"></button></nav><code id="tpn-code-\d+">'
BUILT_LAB_CODE = re.compile(re.escape(LAB_CODE.removesuffix("<code>")) + COPY)
LAB_OUTPUT = re.compile(r'<div class="jp-RenderedText jp-OutputArea-output language-text highlight tpn-output"'
                        r'[^>]*><span class="filename">([^<]*)</span><pre><span></span>' + COPY)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("lab", sorted(LABS))
def test_lab_page_has_the_markup_of_a_chapter(built_site, lab, lang):
    """Each code cell is a chapter's Python block (Material colours it, hooks/copy_buttons.py gives
    it its copy button; the template's own button is gone), each printed output a chapter's output box
    labelled in the page's language (hooks/notebook_pages.py: chapter_look)."""
    page = site_path(built_site, lang, f"labs/{lab}/index.html").read_text(encoding="utf-8")
    nb = nbformat.read(ROOT / "docs" / lang / "labs" / f"{lab}.ipynb", as_version=4)
    assert len(BUILT_LAB_CODE.findall(page)) == len(code_cells(nb)) and '<div class="highlight-ipynb' not in page
    assert "zeroclipboard-container" not in page and "<clipboard-copy" not in page
    labels = LAB_OUTPUT.findall(page)
    assert labels and set(labels) == {notebook_pages.OUTPUT_LABEL[lang]}
    assert len(labels) == page.count('class="jp-RenderedText jp-OutputArea-output')


def test_lab_kernels_do_not_print_cpp_extensions_log(tmp_path):
    """torch.utils.cpp_extension logs "No CUDA runtime is found" (with a time and a pid) where a CUDA
    toolkit is installed without a GPU; the lab kernels run with that logger quiet, so two builds
    give the same page, and other output still shows."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        'import logging, torch\nlogging.getLogger("torch.utils.cpp_extension").warning("noise")\n'
        'logging.getLogger("torch.fx").warning("kept")\nprint("done")')])
    notebook_pages.execute_in(tmp_path, nb, "", allow_errors=False)
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "done" in printed and "kept" in printed and "noise" not in printed


# --- the build's runs of the labs (hooks/notebook_pages.py) -----------------------------------------

def notebook(*cells: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])


def test_a_labs_two_languages_share_a_run_and_other_code_does_not():
    key = notebook_pages.code_key
    zh, en = (nbformat.read(ROOT / "docs" / lang / "labs" / "task1.ipynb", as_version=4) for lang in LANGS)
    assert key(zh, "", False) == key(en, "", False) and key(zh, "", False, exact=True) != key(en, "", False, exact=True)
    assert key(notebook('x = 1  # one\ndef f():\n    """One."""'), "", False) == key(
        notebook('x = 1  # 一\ndef f():\n    """一。"""'), "", False)
    assert key(notebook("x = 1"), "", False) != key(notebook("x = 2"), "", False)
    assert key(notebook("x = 1"), "", False) != key(notebook("x = 1"), "python3", False)
    reads_its_doc = 'def f():\n    """{}"""\nprint(f.__doc__)'  # prints what differs: a run each
    assert key(notebook(reads_its_doc.format("One.")), "", False) != key(notebook(reads_its_doc.format("一。")), "", False)


@pytest.mark.parametrize("stream, runs", [("stdout", 1), ("stderr", 2)])
def test_the_other_language_reuses_a_run_unless_its_output_may_quote_the_code(monkeypatch, stream, runs):
    """A run's stderr (a warning) or traceback may quote a line of its code, comment and all: the
    other language's notebook then runs itself, so its page quotes its own line."""
    ran = []

    def executed(nb, kernel_name, allow_errors):  # quotes the code, as a warning's source line does
        ran.append(nb.cells[0].source)
        return [([nbformat.v4.new_output("stream", name=stream, text=nb.cells[0].source)], 1)]

    monkeypatch.setattr(notebook_pages, "_executed", executed)
    monkeypatch.setattr(notebook_pages, "_runs", {})
    en, zh = notebook("warn()  # once"), notebook("warn()  # 一次")
    assert notebook_pages.outputs_for(en, "", False)[0][0][0].text == "warn()  # once"
    shown = notebook_pages.outputs_for(zh, "", False)[0][0][0].text
    assert len(ran) == runs and shown == ("warn()  # once" if runs == 1 else "warn()  # 一次")


def test_the_build_starts_the_runs_of_the_notebooks_it_has_not_cached(tmp_path, monkeypatch):
    from collections import defaultdict
    from types import SimpleNamespace

    import mkdocs_jupyter.plugin
    options = defaultdict(lambda: None, execute=True, cache=True, cache_dir=str(tmp_path / "cache"),
                          kernel_name="", allow_errors=False)
    for name in ("cached", "new"):
        nbformat.write(notebook(f"print({name!r})"), tmp_path / f"{name}.ipynb")
    key = mkdocs_jupyter.plugin._compute_cache_key(str(tmp_path / "cached.ipynb"), options, True)
    page = mkdocs_jupyter.plugin._get_cache_path(options["cache_dir"], key)
    page.parent.mkdir()
    page.write_text("{}")
    started = []
    monkeypatch.setattr(notebook_pages, "start", lambda nb, kernel, errors: started.append(nb.cells[0].source))
    config = SimpleNamespace(plugins={"notebooks": SimpleNamespace(config=options)}, docs_dir=str(tmp_path))
    notebook_pages.on_pre_build(config)
    assert started == ["print('new')"]


def test_a_failing_build_stops_its_kernels_and_their_exit_cleanup(monkeypatch):
    """hooks/notebook_pages.py: on a build error each running lab kernel's process group is killed, and
    nbclient's exit callback for its client is dropped (it raced the lab thread's own cleanup and printed
    a traceback after the build's error)."""
    from types import SimpleNamespace

    killed, dropped = [], []
    client = SimpleNamespace(km=SimpleNamespace(provisioner=SimpleNamespace(pgid=4242)), _cleanup_kernel=object())
    monkeypatch.setattr(notebook_pages, "_running", [client])
    monkeypatch.setattr(notebook_pages.os, "killpg", lambda pgid, sig: killed.append((pgid, sig)))
    monkeypatch.setattr(notebook_pages.atexit, "unregister", dropped.append)
    notebook_pages.on_build_error(RuntimeError("a broken snippet"))
    assert killed == [(4242, notebook_pages.signal.SIGKILL)] and dropped == [client._cleanup_kernel]


def test_a_second_environment_reads_the_compiled_templates(tmp_path, monkeypatch):
    """hooks/build_cache.py: a template compiled for one language's build is not compiled again for
    the other's, or for the next build."""
    import jinja2

    from hooks import build_cache
    monkeypatch.setattr(build_cache, "TEMPLATES", tmp_path / "templates")

    def environment():
        return build_cache.on_env(jinja2.Environment(loader=jinja2.DictLoader({"t.html": "{{ 6 * 7 }}"})), None, None)

    assert environment().get_template("t.html").render() == "42"
    monkeypatch.setattr(jinja2.Environment, "compile", lambda *a, **k: pytest.fail("compiled again"))
    assert environment().get_template("t.html").render() == "42"


def test_chapter_look_rewrites_cells_and_outputs_and_refuses_an_unknown_language():
    cell = ('<div class="zeroclipboard-container">\n<clipboard-copy for="cell-1"><div>x</div></clipboard-copy>\n</div>\n'
            '<div class="highlight-ipynb hl-python"><pre><span></span><span class="k">import</span>'
            ' <span class="n">os</span>\n</pre></div>'
            '<div class="jp-RenderedText jp-OutputArea-output" data-mime-type="text/plain" tabindex="0">\n'
            "<pre>1 &lt; 2\n</pre>\n</div>")
    out = notebook_pages.chapter_look(cell, "en")
    assert out == (LAB_CODE + '<span class="k">import</span> os\n</code></pre></div>'
                   '<div class="jp-RenderedText jp-OutputArea-output language-text highlight tpn-output"'
                   ' data-mime-type="text/plain" tabindex="0" data-search-exclude="1"><span class="filename">Output</span>'
                   "<pre><span></span><code>1 &lt; 2\n</code></pre></div>")
    assert '<span class="filename">输出</span>' in notebook_pages.chapter_look(cell, "zh")
    with pytest.raises(ValueError, match="no output label for language 'fr'"):
        notebook_pages.chapter_look(cell, "fr")


@pytest.mark.parametrize("lang", LANGS)
def test_task1_lab_evaluates_the_epoch_it_kept(built_site, lang):
    """The lab says: after fit the model holds its best epoch, so evaluate reports the table's highest
    validation accuracy (and that epoch's loss)."""
    page = html.unescape(site_path(built_site, lang, "labs/task1/index.html").read_text(encoding="utf-8"))
    epochs = [(float(loss), float(acc)) for loss, acc in
              re.findall(r"epoch +\d+/\d+ +train loss [\d.]+ +val loss ([\d.]+) +val acc ([\d.]+)", page)]
    final = re.search(r"validation: loss ([\d.]+), accuracy ([\d.]+)", page)
    assert len(epochs) == 6 and final
    assert float(final[2]) == max(acc for _, acc in epochs)
    assert (float(final[1]), float(final[2])) in epochs


def test_task1_lab_hint_for_32_pixel_digits_is_the_pooled_shape():
    """"Things to try": with size=32 the first linear layer must take 32×16×16 features."""
    model = DigitCNN()
    assert model.features(torch.zeros(1, 1, 32, 32)).shape == (1, 32, 16, 16)
    assert model.classifier[2].in_features == 32 * 4 * 4  # what it takes for the 8×8 digits


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("lab", sorted(LABS))
def test_lab_page_offers_its_notebook(served_site, lab, lang):
    built_site = served_site.root
    folder = site_path(built_site, lang, f"labs/{lab}")
    assert f'<a href="{lab}.ipynb" download' in (folder / "index.html").read_text(encoding="utf-8")
    served = nbformat.read(folder / f"{lab}.ipynb", as_version=4)
    source = nbformat.read(ROOT / "docs" / lang / "labs" / f"{lab}.ipynb", as_version=4)
    assert code_cells(served) == code_cells(source)
    # the same prose, its links pointing at the hosted site (hooks/chapters.py), not at ../../
    prose = [c.source for c in served.cells if c.cell_type == "markdown"]
    assert len(prose) == len([c for c in source.cells if c.cell_type == "markdown"])
    assert not any("](../" in text for text in prose)
    hosted = re.findall(r"\]\((https?://[^)]+)\)", "\n".join(prose))
    assert hosted and all(link.startswith((served_site.base, "https://github.com")) for link in hosted)


EXTERNAL = re.compile(r'<script[^>]*\bsrc="(?:https?:)?//|<link[^>]*\bhref="(?:https?:)?//[^"]*"[^>]*stylesheet'
                      r'|<link[^>]*stylesheet[^>]*\bhref="(?:https?:)?//|import\(\s*["\'](?:https?:)?//|cdnjs')


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("lab", sorted(LABS))
def test_lab_page_loads_nothing_from_other_hosts(built_site, lab, lang):
    page_file = site_path(built_site, lang, f"labs/{lab}/index.html")
    page = page_file.read_text(encoding="utf-8")
    assert EXTERNAL.findall(page) == []
    head, body = page.split("</head>", 1)
    assert "<style" not in body  # the template's CSS left the content ...
    styles = re.findall(r'<style id="notebook-css">(.*?)</style>', head, re.S)
    assert len(styles) == 1 and 5_000 < len(styles[0]) < 40_000  # ... and what the page uses is in <head>


def test_external_script_check_catches_the_template_scripts():
    for tag in ['<script src="https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js"> </script>',
                '<script type="module">const m = (await import("https://cdnjs.example/mermaid.mjs")).default',
                '<link rel="stylesheet" href="//fonts.example/css">']:
        assert EXTERNAL.findall(tag), tag


def test_inline_figures_become_files_beside_the_page(tmp_path):
    png = io.BytesIO()
    Image.new("RGB", (7, 3), "red").save(png, "PNG")
    data = base64.b64encode(png.getvalue()).decode()
    content = f'<p><img alt="a plot" class="" src="data:image/png;base64,{data}"/></p>'
    out = notebook_pages.with_image_files(content, tmp_path / "labs" / "x")
    files = list((tmp_path / "labs" / "x").iterdir())
    assert len(files) == 1 and files[0].read_bytes() == png.getvalue()
    assert out == (f'<p><img alt="a plot" class="" src="{files[0].name}" width="7" height="3" loading="lazy"'
                   ' decoding="async"/></p>')
    sized = notebook_pages.with_image_files(f'<img width="3" src="data:image/png;base64,{data}">', tmp_path)
    assert sized == f'<img width="3" src="{files[0].name}" loading="lazy" decoding="async">'  # its own size kept
    assert notebook_pages.with_image_files("<p>no figure</p>", tmp_path / "none") == "<p>no figure</p>"
    assert not (tmp_path / "none").exists()


def test_png_size_refuses_what_is_not_a_png():
    with pytest.raises(ValueError, match="not a PNG"):
        notebook_pages.png_size(b"GIF89a" + bytes(30))


def test_downloaded_notebooks_run_top_to_bottom(built_site, downloads):
    """The .ipynb files as a reader downloads them, each alone in an empty folder, run cell by cell
    by the pages' runner (pagekit.run, started after the build by tests/conftest.py); zh task1
    and en task3 run, the other language of each holds the same code. (The build itself runs every
    lab in a Jupyter kernel.)"""
    for lab, lang in downloads.LABS.items():
        other = "en" if lang == "zh" else "zh"
        downloaded = site_path(built_site, lang, f"labs/{lab}/{lab}.ipynb")
        twin = site_path(built_site, other, f"labs/{lab}/{lab}.ipynb")
        assert same_code(code_cells(nbformat.read(downloaded, as_version=4)),
                         code_cells(nbformat.read(twin, as_version=4)))
    for lab in downloads.LABS:
        status, text, err = downloads.result(f"{lab}.ipynb")
        assert status == 0, err[-3000:]
        for line in PRINTED[lab]:
            assert line in text
    assert {p.name for p in downloads.files["task1.ipynb"].parent.iterdir()} >= {"digits", "curves.png", "predictions.png"}
    assert {p.name for p in downloads.files["task3.ipynb"].parent.iterdir()} >= {"mlp.pt", "mlp_wrapped.pt"}


# --- the labs' own helpers (snippets/labs.py) ------------------------------------------------------

def test_predict_gives_each_samples_class_and_label_on_the_cpu():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    data, labels = torch.randn(10, 4), torch.arange(10) % 3
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data, labels), batch_size=4)
    predicted, got_labels = predict(model, loader, torch.device("cpu"))
    assert torch.equal(predicted, model(data).argmax(dim=1)) and torch.equal(got_labels, labels)
    assert not model.training


@pytest.mark.parametrize("args, error, message", [
    (("not a model", "loader"), TypeError, "model must be an nn.Module, got str"),
    ((None, [1, 2]), TypeError, "loader must be a DataLoader, got list; wrap a dataset with DataLoader"),
])
def test_predict_rejects_wrong_arguments(args, error, message):
    model = torch.nn.Linear(2, 2) if args[0] is None else args[0]
    with pytest.raises(error, match=re.escape(message)):
        predict(model, args[1], "cpu")


def test_predictions_grid_draws_a_png(tmp_path):
    images = torch.zeros(3, 1, 8, 8)
    path = save_predictions_grid(images, torch.tensor([1, 2, 3]), torch.tensor([1, 2, 4]), tmp_path / "grid.png")
    assert path == tmp_path / "grid.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("images, labels, message", [
    (torch.zeros(8, 8), 1, "images must be a (N, C, H, W) tensor, got (8, 8); stack single images with torch.stack"),
    (torch.zeros(2, 1, 8, 8), 3, "need one label and one prediction per image: 2 images, 3 labels, 2 predictions"),
])
def test_predictions_grid_rejects_mismatched_input(tmp_path, images, labels, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        save_predictions_grid(images, torch.zeros(labels), torch.zeros(2), tmp_path / "x.png")


def test_digit_features_is_a_stratified_split_of_flat_digits():
    X_train, X_val, y_train, y_val = digit_features()
    assert X_train.shape == (1437, 64) and X_val.shape == (360, 64) and X_train.dtype == torch.float32
    assert 0 <= float(X_train.min()) and float(X_train.max()) == 1.0
    assert torch.bincount(y_val).tolist() == [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]


def test_in_memory_keeps_every_sample_as_two_tensors():
    samples = [(torch.full((1, 2, 2), float(i)), i % 3) for i in range(5)]
    data = in_memory(samples)
    assert data.tensors[0].shape == (5, 1, 2, 2) and data.tensors[1].tolist() == [0, 1, 2, 0, 1]
    assert all(torch.equal(data[i][0], samples[i][0]) for i in range(5))


@pytest.mark.parametrize("dataset, error, message", [
    ([], ValueError, "the dataset is empty; check the folder it reads"),
    ([(Image.new("L", (2, 2)), 0)], TypeError, "the dataset gives Image images, not tensors; give it a transform"),
])
def test_in_memory_rejects_what_it_cannot_stack(dataset, error, message):
    with pytest.raises(error, match=re.escape(message)):
        in_memory(dataset)


def test_image_alts_are_put_back_image_by_image():
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from hooks.notebook_pages import _NO_ALT, with_image_alts

    png = {"image/png": "iVBOR"}
    nb = new_notebook(cells=[new_code_cell(outputs=[
        new_output("display_data", data=png, metadata={"image/png": {"alt": 'a "curve" <plot>'}}),
        new_output("stream", text="x\n"),
        new_output("display_data", data=png)])])
    body = f"<img {_NO_ALT} src=1><p>x</p><img {_NO_ALT} src=2>"
    assert with_image_alts(body, nb) == f'<img alt="a &quot;curve&quot; &lt;plot&gt;" src=1><p>x</p><img {_NO_ALT} src=2>'
    assert with_image_alts(body + f"<img {_NO_ALT}>", nb) == body + f"<img {_NO_ALT}>"  # no 1:1 match: unchanged


def test_a_cells_printed_lines_become_one_output_however_they_were_flushed(tmp_path):
    """Two builds write the same lab pages: the kernel may send a cell's lines in one message or
    several (timing), and notebook_pages.execute_in coalesces them into one output."""
    code = "import sys, time\nprint('a'); sys.stdout.flush(); time.sleep(0.2)\nprint('b')"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    notebook_pages.execute_in(tmp_path, nb, "", allow_errors=False)
    assert [(o.output_type, o.text) for o in nb.cells[0].outputs] == [("stream", "a\nb\n")]


def test_a_build_that_converts_no_notebook_imports_no_converter(tmp_path):
    """pagekit/jupyter_plugin.py: the `notebooks` plugin of mkdocs.yml is mkdocs-jupyter's, loaded with
    nbconvert and jupytext left out until a notebook is converted (about 0.7 s of a warm build); the site's
    wrapped converter (hooks/notebook_pages.py) is the one the plugin calls, and imports them and converts."""
    import sys

    lab = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)", id="cell")])  # the same bytes each time
    nbformat.write(lab, tmp_path / "lab.ipynb")
    program = f"""
import importlib.metadata, importlib.util, sys
plugin = importlib.metadata.entry_points(group="mkdocs.plugins")["notebooks"].load()
spec = importlib.util.spec_from_file_location("notebook_pages", {str(ROOT / "hooks" / "notebook_pages.py")!r})
spec.loader.exec_module(importlib.util.module_from_spec(spec))
import mkdocs_jupyter.plugin
assert plugin is mkdocs_jupyter.plugin.Plugin, plugin
assert mkdocs_jupyter.plugin.convert.nb2html.__module__ == "notebook_pages", "the plugin calls the unwrapped converter"
print([name for name in ("nbconvert", "jupytext.formats") if name in sys.modules])  # a stand-in has no submodules
body = mkdocs_jupyter.plugin.convert.nb2html("lab.ipynb", execute=False)
print("6</span>" in body and "nbconvert" in sys.modules, mkdocs_jupyter.plugin.jupytext.reads("1 + 1", fmt="py").nbformat)
"""
    done = remembered([sys.executable, "-c", program], cwd=tmp_path,  # the notebook by its name: the same command
                      depends=[tmp_path / "lab.ipynb", ROOT / "hooks" / "notebook_pages.py", ROOT / "pagekit"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "True 4"], done.stdout
