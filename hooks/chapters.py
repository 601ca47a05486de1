"""Chapter pages: where they last ran, how to run them, their outputs labelled, their downloads.

A chapter is a page with Python blocks. Under its title, in the page's language: one line on where
it last ran (the pinned torch CI runs on, the last GPU run, the page's last commit), then how to
run it; each expected-output fence is labelled 输出 / Output (class `tpn-output`); and the page is
written next to itself as <slug>.py and <slug>.ipynb (pagekit/export.py), plus its front matter's
`downloads:` (CONTRIBUTING.md, "Downloads"), linked with words by overrides/main.html. On a zh
page the code's comments and docstrings are Chinese, in its blocks and downloads (pagekit/comments.py).
"""
from __future__ import annotations

import functools
import html
import json
import os
import subprocess
from pathlib import Path

import nbformat
from mkdocs.plugins import event_priority

from pagekit import colab, comments, export, memo, reports
from pagekit.compare import code_sha, mask
from pagekit.page import MARKER, TITLE, expand, is_chapter, parse_page
from pagekit.project import DEFAULT_LANG, LANGS, ROOT, pins

RUN_NOTE = {
    "zh": ('<div class="admonition tip" data-search-exclude="1" markdown>\n'
           '<p class="admonition-title">怎样运行本章</p>\n\n'
           "本页的代码块是一个完整的程序：在一个空文件夹里按顺序运行（像 notebook 的单元格一样），"
           "后面的代码块会用到前面定义的函数和变量。每个代码块下面标着“输出”的是它真实的运行结果。"
           "也可以下载整章：{links}。装好项目 `requirements.txt` 里的包就能从头运行到尾。\n</div>"),
    "en": ('<div class="admonition tip" data-search-exclude="1" markdown>\n'
           '<p class="admonition-title">How to run this chapter</p>\n\n'
           "The blocks on this page are one program: run them in order in an empty folder, as "
           "a notebook's cells, since later blocks use what earlier ones define. Under each block, "
           "\"Output\" is what it really printed. Or download the whole chapter: {links}. With the "
           "project's `requirements.txt` installed, either runs top to bottom.\n</div>"),
}
# For a chapter whose program starts worker processes (a block marked multiprocess).
SPAWN_NOTE = {
    "zh": ("\n\n本章会启动 worker 进程。Windows 和 macOS 用 spawn 方式启动它们（Linux 从 Python 3.14 起默认用 "
           "forkserver，效果相同）：每个 worker 都会重新导入你的脚本。下载的脚本已经照此写好：导入、函数和类放在顶层，"
           '其余代码都在 `if __name__ == "__main__":` 之下。在这些系统上请运行脚本；在 notebook 里，'
           "worker 无法加载 notebook 中定义的类，用到 worker 的单元格会报错，把 `num_workers` 设为 0 即可。"),
    "en": ("\n\nThis chapter starts worker processes. Windows and macOS start them by spawn (Linux, from "
           "Python 3.14, by forkserver, with the same effect): each worker imports your script again. The "
           "downloaded script is written for that: imports, functions and classes at the top level, everything "
           'else under `if __name__ == "__main__":`. On those systems run the script; in a notebook the '
           "workers cannot load classes defined in the notebook, so the cells that use workers fail there: "
           "set `num_workers` to 0."),
}
VARIES = {"zh": "这段输出因机器而异：", "en": "This output differs between machines: "}
GPU_LABEL = {"zh": "在 {gpu} 上的输出 · torch {torch} · {date}", "en": "Output on {gpu} · torch {torch} · {date}"}


_GPU_RUN: dict = {}  # the committed report and its outputs, read once per build (on_pre_build empties it)


def gpu_run() -> tuple[dict, dict[tuple[str, str], str]]:
    """The committed `make gpu-check` report, and what each block printed in it by page and the block's
    code (its fingerprint: a block whose code changed since that run shows no GPU output)."""
    if not _GPU_RUN:
        report = reports.load_report()
        outputs = {(Path(test["id"].split("::")[0]).name, block["code_sha"]): block["output"]
                   for test in report.get("tests", []) for block in test.get("blocks", []) if block.get("code_sha")}
        _GPU_RUN.update(report=report, outputs=outputs)
    return _GPU_RUN["report"], _GPU_RUN["outputs"]


def _gpu_box(block, lang: str, page: str, english: dict[str, str] | None = None) -> str:
    """The GPU run's output of this block, in a box of its own, where it differs from the CPU's.
    `english`: a zh block's code -> the code that ran (its comments in English)."""
    report, outputs = gpu_run()
    if report.get("status") != "ran" or block.expected is None:
        return ""
    # a zh page's fence holds its translated code: the code that ran is the English
    code = (english or {}).get(block.source.rstrip("\n")) or export.block_code(block)
    got = outputs.get((page, code_sha(code)))
    if got is None or mask(got) == mask(block.expected):
        return ""
    label = GPU_LABEL[lang].format(gpu=reports.gpu_label(report), torch=report["torch"], date=report["date"])
    text = html.escape(mask(got).rstrip("\n"), quote=False)
    return (f'\n\n<div class="language-text highlight tpn-output tpn-gpu" data-search-exclude="1">'
            f'<span class="filename">{html.escape(label)}</span><pre><span></span><code>{text}\n</code></pre></div>')


LAST_RAN = {
    "zh": {"cpu": "最近一次运行：CPU（CI）· torch {torch}", "gpu": "；GPU · {gpu} · torch {torch} · {date}",
           "date": "；本页最后提交于 {date}", "none": "；尚未在 GPU 上运行"},
    "en": {"cpu": "Last ran on: CPU (CI) · torch {torch}", "gpu": "; GPU · {gpu} · torch {torch} · {date}",
           "date": "; page last committed {date}", "none": "; not yet run on a GPU"},
}


@functools.cache  # read once per build (on_pre_build clears it)
def _commit_dates() -> dict[str, str]:
    """docs/<lang>/<page> -> the date of its last commit, from one `git log` for every page, newest first."""
    done = subprocess.run(["git", "log", "--format=date %cs", "--name-only", "--", "docs"], cwd=ROOT,
                          capture_output=True, text=True)
    dates, date = {}, ""
    for line in done.stdout.splitlines():
        if line.startswith("date "):
            date = line[5:]
        elif line:
            dates.setdefault(line, date)
    return dates


def last_ran(lang: str, source: Path) -> str:
    """Where the page last ran: the pinned torch (CI, CPU), the committed GPU run, its last commit."""
    words = LAST_RAN.get(lang, LAST_RAN["en"])
    report = reports.load_report()
    text = words["cpu"].format(torch=pins().get("torch", "?"))
    if report.get("status") == "ran":
        text += words["gpu"].format(gpu=reports.gpu_label(report), torch=report["torch"], date=report["date"])
    else:
        text += words["none"]
    rel = source.resolve().relative_to(ROOT).as_posix() if source.is_absolute() else source.as_posix()
    return text + words["date"].format(date=_commit_dates().get(rel) or "—")  # "—": a page not committed yet


def on_config(config):
    """SOURCE_DATE_EPOCH (MkDocs' sitemap dates) is the last commit's time, so that two builds of one
    commit are byte-identical on different days."""
    if "SOURCE_DATE_EPOCH" not in os.environ:
        done = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True, text=True)
        if done.stdout.strip():  # not in a git checkout: MkDocs takes today's date
            os.environ["SOURCE_DATE_EPOCH"] = done.stdout.strip()
    return config


LINK_WORDS = {"zh": ("下载 Notebook", "下载脚本"), "en": ("Download notebook", "Download script")}
# The second copy button of a Python block: the block with the earlier blocks it needs (pagekit.runnable)
RUNNABLE_WORDS = {"zh": ("复制为可运行的程序（这一段单独就能运行）", "复制为可运行的程序（连同它用到的前面 {n} 段代码）",
                         "复制为可运行的程序（连同它用到的前面 {n} 段代码）"),
                  "en": ("Copy as a runnable program (this block runs on its own)",
                         "Copy as a runnable program (with the earlier block it needs)",
                         "Copy as a runnable program (with the {n} earlier blocks it needs)")}
_PYTHON_BLOCK = '<div class="language-python highlight"><pre>'
RUNNABLE_FILE = "runnable.json"


def _lang(config) -> str:
    language = config.theme["language"]
    return language if language in LANGS else DEFAULT_LANG


def on_post_build(config):
    memo.save()


def on_pre_build(config):
    memo.load()
    _commit_dates.cache_clear()  # `mkdocs serve`: a commit may have come since
    expand.cache_clear()  # `mkdocs serve` rebuilds in one process after a snippet changed
    _GPU_RUN.clear()  # ... or after `make gpu-check` wrote a new report
    comments.clear_caches()  # ... or a translation of its comments (snippets/<module>.zh.yml)


def on_page_markdown(markdown, page, config, files):
    src = Path(page.file.src_uri)
    page.chapter_downloads, page.runnable, page.nested_outputs, page.colab_url = [], [], {}, None
    if src.suffix != ".md" or not is_chapter(markdown):  # the home page's shell block: its comments too
        return comments.page_in_language(markdown, _lang(config)) if src.suffix == ".md" else markdown
    lang, slug = _lang(config), src.stem
    site_url = config.site_url or "https://example.invalid/"
    # made for a stand-in address, then moved to this build's: the tests' builds (a new port each) read them too
    url = export.page_address(export.ANY_SITE, lang, DEFAULT_LANG, src.name)
    lang_base = export.page_address(export.ANY_SITE, lang, DEFAULT_LANG, "index.md")
    checkpoints = {f.name: f for f in sorted((ROOT / page.meta["checkpoints"]).glob("*.pt"))} \
        if "checkpoints" in page.meta else {}
    made = export.chapter_files(markdown, url, lang_base, str(src), lang, slug)
    markdown = with_not_run_notes(markdown, lang, checkpoints)
    page.chapter_files = {name: made[name].replace(export.ANY_SITE, site_url) for name in (f"{slug}.ipynb", f"{slug}.py")}
    for rel in page.meta.get("downloads", []):
        # the file itself on the English page; its comments and docstrings in the page's language
        page.chapter_files[Path(rel).name] = comments.file_in_language(rel, lang)
    page.checkpoint_files = checkpoints
    # the chapter's notebook in Colab, opened from the repository (notebooks/<lang>/<slug>.ipynb)
    page.colab_url = colab.colab_url(config.repo_url, lang, slug)
    words = LINK_WORDS[lang]
    page.chapter_downloads = [(f"{slug}.ipynb", words[0]), (f"{slug}.py", words[1])]
    page.chapter_downloads += [(name, name) for name in list(page.chapter_files)[2:]]
    links = "、".join if lang == "zh" else ", ".join
    note = RUN_NOTE[lang].format(links=links(f'<a href="{name}" download>{text}</a>' for name, text in page.chapter_downloads[:2]))
    page.runnable = made["runnable"]
    if made["spawns"]:
        note = note.replace("\n</div>", SPAWN_NOTE[lang] + "\n</div>")
    # comments and docstrings in the page's language: the fences hold the translated code
    english = made["english"]
    markdown = comments.page_in_language(markdown, lang)
    markdown = labelled_outputs(markdown, "输出" if lang == "zh" else "Output", VARIES[lang],
                                lambda block: _gpu_box(block, lang, src.name, english), page.nested_outputs)
    title = TITLE.search(markdown)
    if title:
        verified = f'<p class="tpn-verified" markdown>{last_ran(lang, Path(page.file.abs_src_path or src))}</p>'
        markdown = markdown[:title.end()] + "\n\n" + verified + "\n\n" + note + "\n" + markdown[title.end():]
    return markdown


def with_not_run_notes(markdown: str, lang: str, checkpoints: dict[str, Path]) -> str:
    """Above each block outside the page's program (marked skip), why, and what to do, in words
    (pagekit.export.not_run); the GPU checkpoints it reads as links to their downloads."""
    def link(name: str) -> str:
        code = f"<code>{html.escape(name)}</code>"
        return f'<a href="{html.escape(name)}" download>{code}</a>' if name in checkpoints else code

    lines = markdown.split("\n")
    for block in reversed(parse_page(markdown)):
        if not (block.is_python and block.mark("skip")):
            continue
        at = block.lineno - 2  # the opening fence
        while at > 0 and MARKER.match(lines[at - 1].strip()):
            at -= 1
        lines[at:at] = [f'<p class="tpn-not-run" data-search-exclude="1">{export.not_run(block, lang, link)}</p>', ""]
    return "\n".join(lines)


def labelled_outputs(markdown: str, label: str, varies_label: str = "", extra=lambda block: "",
                     nested: dict[str, str] | None = None) -> str:
    """Each expected-output fence as the HTML Material gives a titled text fence, plus the class
    tpn-output; written here, not by Pygments, which has nothing to colour in program output.
    Under the output of a block marked `varies`, its reason, in words.

    An indented fence sits inside an admonition (an exercise's `??? success` solution), where
    Markdown would wrap raw HTML in a paragraph and read the output as Markdown: it becomes a
    placeholder paragraph at its indentation, and `nested` (placeholder -> HTML) gets the box,
    which `with_nested_outputs` puts in the page's HTML."""
    lines = markdown.split("\n")
    for block in reversed(parse_page(markdown)):
        if block.expected_span is None:
            continue
        first, last = block.expected_span
        fence = lines[first]
        indent = fence[:len(fence) - len(fence.lstrip())]
        text = html.escape(block.expected.rstrip("\n"), quote=False)
        varies = block.mark("varies")
        note = (f'\n\n<p class="tpn-varies"><em>{varies_label}{html.escape(varies.reason, quote=False)}</em></p>'
                if varies else "")
        box = (f'<div class="language-text highlight tpn-output" data-search-exclude="1"><span class="filename">{label}</span>'
               f"<pre><span></span><code>{text}\n</code></pre></div>{extra(block)}{note}")
        if not indent:
            lines[first:last] = [box]
        elif nested is not None:
            key = f"tpnnestedoutput{len(nested)}"
            nested[key] = box
            lines[first - 1:last] = [indent + key]
    return "\n".join(lines)


def with_nested_outputs(html_text: str, nested: dict[str, str], where: str = "page") -> str:
    """The output boxes `labelled_outputs` left as placeholders inside admonitions, in place."""
    for key, box in nested.items():
        if html_text.count(f"<p>{key}</p>") != 1:
            raise ValueError(f"{where}: the output box {key} is not one paragraph of the page's HTML")
        html_text = html_text.replace(f"<p>{key}</p>", box)
    return html_text


def on_page_content(html_text, page, config, files):
    """Each Python block of a chapter gets its "copy as a runnable program" button, in the block's
    order on the page. The programs are in runnable.json beside the page (written with the
    downloads), fetched on the first click by overrides/assets/javascripts/runnable.js: in the
    HTML they would double the size of a long chapter."""
    html_text = with_nested_outputs(html_text, getattr(page, "nested_outputs", {}), page.file.src_uri)
    programs = getattr(page, "runnable", [])
    parts = html_text.split(_PYTHON_BLOCK)
    if not programs:
        return html_text
    if len(parts) - 1 != len(programs):
        raise ValueError(f"{page.file.src_uri}: {len(parts) - 1} Python blocks in the HTML, {len(programs)} on the page")
    words = RUNNABLE_WORDS[_lang(config)]
    texts: list[str] = []
    out = [parts[0]]
    for found, part in zip(programs, parts[1:]):
        button = ""
        if found is not None:
            chosen, text = found
            title = html.escape(words[min(len(chosen), 2)].format(n=len(chosen)))
            button = (f'<button class="md-code__button tpn-runnable" title="{title}" aria-label="{title}" '
                      f'data-runnable="{len(texts)}" data-blocks="{len(chosen)}"></button>')
            texts.append(text)
        out.append(_PYTHON_BLOCK + button + part)
    page.chapter_files[RUNNABLE_FILE] = json.dumps(texts, ensure_ascii=False)
    return "".join(out)


# Words in the page chrome that come from a library in English only: the heading permalink's
# tooltip (Python-Markdown's toc). (The lab cells' own copy button is gone: they have Material's,
# in the page's language, as the chapters' blocks do; hooks/notebook_pages.py.)
CHROME = {"zh": {'title="Permanent link"': 'title="永久链接"'}}


@event_priority(-100)  # after mkdocs-jupyter has copied a lab's .ipynb next to its page
def on_post_page(output, page, config):
    for english, own in CHROME.get(_lang(config), {}).items():
        output = output.replace(english, own)
    if page.file.src_uri.endswith(".ipynb"):
        _hosted_links_in_lab(page, config)
    files = getattr(page, "chapter_files", {})
    if files:
        folder = Path(config.site_dir) / Path(page.file.dest_uri).parent
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        for name, path in getattr(page, "checkpoint_files", {}).items():
            (folder / name).write_bytes(path.read_bytes())
    return output


def _hosted_links_in_lab(page, config) -> None:
    """The lab notebook a reader downloads links to the hosted site, not to `../../init/`."""
    path = Path(config.site_dir) / Path(page.file.dest_uri).parent / Path(page.file.src_uri).name
    if not path.is_file():
        return
    site_url = config.site_url or "https://example.invalid/"
    lang = _lang(config)
    lang_base = export.page_address(site_url, lang, DEFAULT_LANG, "index.md")
    url = lang_base + page.url.removeprefix(f"{lang}/") if lang != DEFAULT_LANG else site_url + page.url
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = export.hosted_links(cell.source, url, lang_base)
    nbformat.write(nb, path)
