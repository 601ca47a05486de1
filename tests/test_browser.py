"""The reader's experience, in a real browser (Playwright driving Debian's Chromium).

The site is built once, with SITE_URL set to a local server that serves it the way a
static host does (the nearest 404.html for a missing path). Pages are discovered from
docs/ and mkdocs.yml's i18n languages, never listed by hand, and the discovered set
must equal what the build produced. For every page in every language: it loads with
no console error, no failed request and no third-party request; its language switcher
lands on the same page in the other language and leads back; its code blocks have copy
buttons; a notebook page offers its download; at a desktop and at a phone width it fits
(no sideways scrolling, wide tables scroll in their own box); at the desktop width every
code block fits its column, and no code runs under its copy buttons. Search finds Chinese
and English terms.

Loading a page is what takes the time, so a page is loaded once for what is checked on
it: its layout is measured at one width, then at the other after a resize; the formula
and notebook-download tests read what the page check read; a lab page is read with its
own notebook CSS and then, in place, with the template's full CSS; and the searches run
one after another in one page per language, opened once.

Without Chromium these tests are skipped with the reason; with REQUIRE_BROWSER=1 (CI)
they fail instead.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest
import yaml

from pagekit.run import RUN_CACHE, environment, reads_back

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGE_SUFFIXES = (".md", ".ipynb")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
# (language, query, page whose source is docs/<lang>/<source>): what a learner types, in their
# own words and inflections, and the page that must come FIRST, in their language. Drawn from each
# chapter's headings and from the glossary (docs/<lang>/glossary.md); where two chapters have a
# heading that holds the term, the one whose heading is the term comes first (mixed precision:
# training, not losses' "Mixed precision: BCELoss under autocast"), and multi-gpu, which goes over
# other chapters' topics on several GPUs, comes after their own chapter (checkpoints: saving).
SEARCHES = [
    # English: inflections, identifiers, glossary terms, questions a reader has
    ("en", "install torch with CUDA", "environment.md"),
    ("en", "CUDA toolkit environment variables", "environment.md"),
    ("en", "switching the CUDA toolkit", "environment.md"),
    ("en", "CUDA_VISIBLE_DEVICES", "environment.md"),
    ("en", "device report", "environment.md"),
    ("en", "pick_device", "environment.md"),
    ("en", "nvidia-smi CUDA version", "environment.md"),
    ("en", "autograd", "autograd.md"),
    ("en", "accumulate gradients over micro-batches", "autograd.md"),
    ("en", "gradient accumulation", "autograd.md"),
    ("en", "micro-batch", "autograd.md"),
    ("en", "leaf tensors and grad_fn", "autograd.md"),
    ("en", "leaf tensor", "autograd.md"),
    ("en", "retain_grad", "autograd.md"),
    ("en", "detach shares storage", "autograd.md"),
    ("en", "freezing parameters", "autograd.md"),
    ("en", "requires_grad", "autograd.md"),
    ("en", "write a Dataset subclass", "data.md"),
    ("en", "num_workers main guard", "data.md"),
    ("en", "ImageFolder", "data.md"),
    ("en", "DataLoader", "data.md"),
    ("en", "pin_memory", "data.md"),
    ("en", "random transforms in workers", "data.md"),
    ("en", "showing a batch", "data.md"),
    ("en", "pad_sequence", "data.md"),
    ("en", "WeightedRandomSampler", "data.md"),
    ("en", "persistent_workers", "data.md"),
    ("en", "cross-correlation", "layers.md"),
    ("en", "pooling", "layers.md"),
    ("en", "convolution output size", "layers.md"),
    ("en", "stride", "layers.md"),
    ("en", "depthwise convolution", "layers.md"),
    ("en", "channels_last", "layers.md"),
    ("en", "adaptive average pooling", "layers.md"),
    ("en", "initialisation", "init.md"),
    ("en", "initialization", "init.md"),
    ("en", "xavier", "init.md"),
    ("en", "kaiming", "init.md"),
    ("en", "calculate_gain", "init.md"),
    ("en", "why not all zeros", "init.md"),
    ("en", "losses", "losses.md"),
    ("en", "loss function", "losses.md"),
    ("en", "cross-entropy", "losses.md"),
    ("en", "label smoothing", "losses.md"),
    ("en", "BCEWithLogitsLoss", "losses.md"),
    ("en", "class weights", "losses.md"),
    ("en", "focal loss", "losses.md"),
    ("en", "pos_weight", "losses.md"),
    ("en", "training", "training.md"),
    ("en", "trained", "training.md"),
    ("en", "zero_grad", "training.md"),
    ("en", "mixed precision", "training.md"),
    ("en", "gradient clipping", "training.md"),
    ("en", "learning-rate scheduler", "training.md"),
    ("en", "epoch", "training.md"),
    ("en", "train mode and eval mode", "training.md"),
    ("en", "reproducibility", "training.md"),
    ("en", "nn.ModuleList", "containers.md"),
    ("en", "containers", "containers.md"),
    ("en", "nn.Sequential", "containers.md"),
    ("en", "ModuleDict", "containers.md"),
    ("en", "ParameterList", "containers.md"),
    ("en", "plain list pitfall", "containers.md"),
    ("en", "saving", "saving.md"),
    ("en", "saved", "saving.md"),
    ("en", "checkpoint", "saving.md"),
    ("en", "checkpoints", "saving.md"),
    ("en", "resume training", "saving.md"),
    ("en", "map_location", "saving.md"),
    ("en", "state_dict", "saving.md"),
    ("en", "weights_only", "saving.md"),
    ("en", "safetensors", "saving.md"),
    ("en", "meta device", "saving.md"),
    ("en", "mmap", "saving.md"),
    ("en", "AOTInductor", "saving.md"),
    ("en", "activation checkpointing", "training.md"),
    ("en", "profiler", "training.md"),
    ("en", "graph break", "training.md"),
    ("en", "recompilation", "training.md"),
    ("en", "TF32", "training.md"),
    ("en", "DataParallel", "multi-gpu.md"),
    ("en", "torchrun", "multi-gpu.md"),
    ("en", "DDP", "multi-gpu.md"),
    ("en", "DistributedDataParallel", "multi-gpu.md"),
    ("en", "SyncBatchNorm", "multi-gpu.md"),
    ("en", "DistributedSampler", "multi-gpu.md"),
    ("en", "no_sync", "multi-gpu.md"),
    ("en", "SkipAhead", "multi-gpu.md"),
    ("en", "module prefix", "multi-gpu.md"),
    # Chinese: terms typed without spaces (cut into jieba's words), mixed with identifiers
    ("zh", "安装 CUDA 版本", "environment.md"),
    ("zh", "切换 CUDA 工具包", "environment.md"),
    ("zh", "CUDA_VISIBLE_DEVICES", "environment.md"),
    ("zh", "设备报告", "environment.md"),
    ("zh", "选择设备", "environment.md"),
    ("zh", "pick_device", "environment.md"),
    ("zh", "自动求导", "autograd.md"),
    ("zh", "梯度累加", "autograd.md"),
    ("zh", "微批量", "autograd.md"),
    ("zh", "detach 共享存储", "autograd.md"),
    ("zh", "叶子张量", "autograd.md"),
    ("zh", "计算图", "autograd.md"),
    ("zh", "冻结参数", "autograd.md"),
    ("zh", "反向传播", "autograd.md"),
    ("zh", "自定义数据集", "data.md"),
    ("zh", "图片文件夹", "data.md"),
    ("zh", "数据加载", "data.md"),
    ("zh", "DataLoader", "data.md"),
    ("zh", "多进程读取", "data.md"),
    ("zh", "随机变换", "data.md"),
    ("zh", "显示一个批量", "data.md"),
    ("zh", "pad_sequence", "data.md"),
    ("zh", "采样器", "data.md"),
    ("zh", "互相关", "layers.md"),
    ("zh", "池化", "layers.md"),
    ("zh", "卷积输出尺寸公式", "layers.md"),
    ("zh", "步幅", "layers.md"),
    ("zh", "分组卷积", "layers.md"),
    ("zh", "自适应平均池化", "layers.md"),
    ("zh", "多通道", "layers.md"),
    ("zh", "参数初始化", "init.md"),
    ("zh", "xavier", "init.md"),
    ("zh", "Kaiming 初始化", "init.md"),
    ("zh", "默认初始化", "init.md"),
    ("zh", "对称性", "init.md"),
    ("zh", "交叉熵", "losses.md"),
    ("zh", "标签平滑", "losses.md"),
    ("zh", "损失函数", "losses.md"),
    ("zh", "类别权重", "losses.md"),
    ("zh", "软标签", "losses.md"),
    ("zh", "BCEWithLogitsLoss", "losses.md"),
    ("zh", "训练循环", "training.md"),
    ("zh", "验证准确率", "training.md"),
    ("zh", "zero_grad", "training.md"),
    ("zh", "混合精度", "training.md"),
    ("zh", "梯度裁剪", "training.md"),
    ("zh", "学习率调度器", "training.md"),
    ("zh", "训练模式与评估模式", "training.md"),
    ("zh", "可复现", "training.md"),
    ("zh", "模型容器", "containers.md"),
    ("zh", "ModuleList", "containers.md"),
    ("zh", "nn.Sequential", "containers.md"),
    ("zh", "普通列表的陷阱", "containers.md"),
    ("zh", "替换一层", "containers.md"),
    ("zh", "断点续训", "saving.md"),
    ("zh", "检查点", "saving.md"),
    ("zh", "map_location", "saving.md"),
    ("zh", "保存 state_dict", "saving.md"),
    ("zh", "state_dict", "saving.md"),
    ("zh", "weights_only", "saving.md"),
    ("zh", "分享权重", "saving.md"),
    ("zh", "内存映射", "saving.md"),
    ("zh", "meta 设备", "saving.md"),
    ("zh", "激活检查点", "training.md"),
    ("zh", "性能分析器", "training.md"),
    ("zh", "重新编译", "training.md"),
    ("zh", "预热", "training.md"),
    ("zh", "TF32", "training.md"),
    ("zh", "图中断", "training.md"),       # jieba alone: 图 中断 (hooks/search_lang.py keeps the glossary's terms whole)
    ("zh", "损失缩放", "training.md"),
    ("zh", "异步执行", "training.md"),
    ("zh", "常驻内存", "saving.md"),
    ("zh", "进程组", "multi-gpu.md"),
    ("zh", "微批量", "autograd.md"),
    ("zh", "数据并行", "multi-gpu.md"),
    ("zh", "DataParallel", "multi-gpu.md"),
    ("zh", "多卡训练", "multi-gpu.md"),
    ("zh", "分布式数据并行", "multi-gpu.md"),
    ("zh", "去掉前缀", "multi-gpu.md"),
    ("zh", "SyncBatchNorm", "multi-gpu.md"),
    ("zh", "no_sync", "multi-gpu.md"),
    ("zh", "SkipAhead", "multi-gpu.md"),
]

pytestmark = pytest.mark.browser


# ---------------------------------------------------------------- pages, from the sources

class _TolerantLoader(yaml.SafeLoader):
    """Reads mkdocs.yml, ignoring its !ENV / !relative / !!python tags."""


_TolerantLoader.add_multi_constructor("", lambda loader, suffix, node: None)
_TolerantLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


@functools.cache
def languages() -> tuple[tuple[str, str], ...]:
    """(locale, URL prefix) for each built language, default (at the site root) first."""
    cfg = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_TolerantLoader)
    i18n = next(p["i18n"] for p in cfg["plugins"] if isinstance(p, dict) and "i18n" in p)
    langs = [lang for lang in i18n["languages"] if lang.get("build", True)]
    langs.sort(key=lambda lang: not lang.get("default", False))
    return tuple((lang["locale"], "" if lang.get("default") else f"{lang['locale']}/") for lang in langs)


@dataclass(frozen=True)
class Page:
    lang: str
    source: str  # relative to docs/<lang>/, e.g. "labs/task1.ipynb"
    path: str  # URL path, e.g. "/en/layers/"

    @property
    def is_notebook(self) -> bool:
        return self.source.endswith(".ipynb")


def _url_path(prefix: str, source: str) -> str:
    stem = source.rsplit(".", 1)[0]
    stem = stem[: -len("index")] if stem == "index" or stem.endswith("/index") else f"{stem}/"
    return f"/{prefix}{stem}"


def _sources(lang: str) -> set[str]:
    base = DOCS / lang
    return {p.relative_to(base).as_posix() for p in base.rglob("*") if p.suffix in PAGE_SUFFIXES}


@functools.cache
def all_pages() -> tuple[Page, ...]:
    """Every page of every language; a language lacking a page falls back to the default's."""
    default = languages()[0][0]
    return tuple(
        Page(lang, source, _url_path(prefix, source))
        for lang, prefix in languages()
        for source in sorted(_sources(lang) | _sources(default))
    )


def page_of(lang: str, source: str) -> Page:
    return next(p for p in all_pages() if p.lang == lang and p.source == source)


# ---------------------------------------------------------------- browser and site

def _need(reason: str):
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


# Debian's headless shell (package chromium-headless-shell): Chromium's Blink and V8 without the browser's
# own UI, which cost these tests about a fifth more CPU (77 -> 61 CPU-s for this file, issue 20's note). Its
# /usr/bin script runs it without exec, so the binary itself is launched.
HEADLESS_SHELL = Path("/usr/lib/chromium/chromium-headless-shell")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = (os.environ.get("CHROMIUM") or (str(HEADLESS_SHELL) if HEADLESS_SHELL.is_file() else None)
            or shutil.which("chromium") or shutil.which("chromium-browser"))
    if not path:
        _need("Debian's Chromium is not installed "
              "(apt-get install chromium chromium-headless-shell fonts-wqy-microhei fonts-dejavu-extra)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _need("the playwright package is not installed (pip install -r requirements.txt)")
    return path


@pytest.fixture(scope="session")
def site(served_site):
    """The one build of this test session (tests/conftest.py), served on a loopback port."""
    return served_site


@dataclass
class Seen:
    """A page as read once loaded (_page_facts), and what went wrong while it loaded."""

    facts: dict
    problems: list[str]
    code: list[dict] | None = None  # its code blocks at CODE_WIDTH (_CODE_JS), once measured


@dataclass
class Tab:
    """One browser page, reused test after test, with what went wrong since `reset`."""

    page: object
    site: object  # tests/conftest.py Site
    problems: list[str] = field(default_factory=list)
    pending: set = field(default_factory=set)
    seen: dict[str, Seen] = field(default_factory=dict)  # by path: each page as last read here

    def reset(self):
        self.problems.clear()

    def front(self):
        """Make this the tab on show: Chromium paints a tab behind another only now and then, so
        Playwright's waits for a steady element (a scroll, a click) take seconds there."""
        self.page.bring_to_front()

    def goto(self, path: str, status: int = 200):
        self.front()
        response = self.page.goto(self.site.url(path), wait_until="load")
        assert response is not None and response.status == status, f"{path}: HTTP {response and response.status}"
        self.settle()
        return response

    def settle(self, limit_s: float = 5.0):
        """Wait until the page's XHR/fetch requests (they may outlive `load`) are answered."""
        deadline = time.monotonic() + limit_s
        while self.pending and time.monotonic() < deadline:
            self.page.wait_for_timeout(20)

    def assert_clean(self, what: str, allow: tuple[str, ...] = ()):
        _assert_clean(self.problems, what, allow)


def _assert_clean(problems: list[str], what: str, allow: tuple[str, ...] = ()):
    problems = [p for p in problems if not any(a in p for a in allow)]
    assert not problems, f"{what}:\n  " + "\n  ".join(problems)


@pytest.fixture(scope="session")
def browser_context(chromium_path):
    """One Chromium for the session; its pages share one context (and so its HTTP cache)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        chromium.close()


def _open_tab(browser_context, site) -> Tab:
    """A new browser page, watched for what goes wrong."""
    page = browser_context.new_page()
    page.set_default_timeout(15_000)
    tab = Tab(page, site)
    own = site.base  # "http://127.0.0.1:PORT/"

    def on_request(request):
        if request.resource_type in ("xhr", "fetch"):
            tab.pending.add(request)
        if request.url.startswith(("http:", "https:")) and not request.url.startswith(own):
            tab.problems.append(f"third-party request: {request.url}")

    def on_done(request):
        tab.pending.discard(request)

    def on_failed(request):
        tab.pending.discard(request)
        if request.failure != "net::ERR_ABORTED":  # cancelled by the next navigation
            tab.problems.append(f"failed request: {request.url} ({request.failure})")

    def on_response(response):
        if response.status >= 400:
            tab.problems.append(f"HTTP {response.status}: {response.url}")

    page.on("request", on_request)
    page.on("requestfinished", on_done)
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    page.on("console", lambda m: m.type in ("error", "assert") and tab.problems.append(
        f"console.{m.type}: {m.text} ({m.location.get('url', '')})"))
    page.on("pageerror", lambda e: tab.problems.append(f"page error: {e}"))
    return tab


@pytest.fixture(scope="session")
def tab(browser_context, site) -> Tab:
    """The browser page that every test but the searches uses, one after another."""
    return _open_tab(browser_context, site)


# ---------------------------------------------------------------- the site holds what we test

def test_every_built_page_is_covered(site):
    """The discovered pages are exactly the pages the build wrote, so every test below covers all."""
    built = set()
    for html in site.root.rglob("*.html"):
        rel = html.relative_to(site.root).as_posix()
        if rel.startswith(("assets/", "search/")) or html.name == "404.html":
            continue
        built.add("/" + rel[: -len("index.html")] if html.name == "index.html" else "/" + rel)
    assert built == {p.path for p in all_pages()}
    assert {lang for lang, _ in languages()} == {"zh", "en"}


# ---------------------------------------------------------------- every page, every language

def _page_facts(tab) -> dict:
    return tab.page.evaluate("""async () => {
    return {
        type: document.contentType,
        lang: document.documentElement.lang,
        h1: [...document.querySelectorAll('article h1')].map(h => h.textContent.trim()),
        description: document.querySelector('meta[name=description]')?.content ?? '',
        canonical: document.querySelector('link[rel=canonical]')?.href,
        alternates: Object.fromEntries([...document.querySelectorAll('link[rel=alternate][hreflang]')]
            .map(l => [l.hreflang, l.getAttribute('href')])),
        // code blocks (Markdown fences, notebook input cells) without a copy control
        uncopyable: [...document.querySelectorAll('article div.highlight pre, article div.highlight-ipynb pre')]
            .filter(pre => !pre.closest('div.highlight, .CodeMirror, .jp-InputArea')
                ?.querySelector('button.md-code__button[data-md-type=copy], clipboard-copy'))
            .map(pre => pre.textContent.trim().slice(0, 60)),
        downloads: [...document.querySelectorAll('a[download]')].map(a => a.href),
        notebooks: [...document.querySelectorAll('a[download][href$=".ipynb"]')].map(a => a.href),
        images: [...document.querySelectorAll('article img')].map(i => i.src).filter(s => !s.startsWith('data:')),
        // every picture, lazy ones loaded now, decodes at the size its width/height attributes promise
        brokenImages: (await Promise.all([...document.querySelectorAll('article img')].map(async (i) => {
            i.loading = 'eager';
            const ok = await i.decode().then(() => i.naturalWidth > 0
                && (!i.hasAttribute('width') || +i.getAttribute('width') === i.naturalWidth)
                && (!i.hasAttribute('height') || +i.getAttribute('height') === i.naturalHeight), () => false);
            return ok ? null : (i.alt || i.src.slice(0, 40));
        }))).filter(Boolean),
        math: {
            formulas: document.querySelectorAll('.arithmatex').length,
            // MathML the browser lays out: each <math> has a box of its own, taller than a line for a fraction
            typeset: [...document.querySelectorAll('.arithmatex > math')]
                .filter(m => m.getBoundingClientRect().width > 0).length,
            tall: [...document.querySelectorAll('.arithmatex > math[display=block]')]
                .map(m => m.getBoundingClientRect().height),
            // a stretchy fence beside a fraction: its height over the fraction's (a math font stretches it)
            fences: [...document.querySelectorAll('.arithmatex > math[display=block] mo[stretchy=true]')]
                .filter(mo => mo.parentElement.querySelector(':scope > mfrac'))
                .map(mo => mo.getBoundingClientRect().height
                     / mo.parentElement.querySelector(':scope > mfrac').getBoundingClientRect().height),
            scripts: [...document.scripts].map(s => s.src).filter(s => /katex|math\\.js/.test(s)),
            raw: [...document.querySelectorAll('.arithmatex')].filter(e => /\\\\[(\\[]/.test(e.textContent))
                .map(e => e.textContent),
        },
    };
}""")


def _read(tab, page: Page) -> Seen:
    """Read the page loaded in the tab, and keep what was read for the other tests of the page."""
    tab.seen[page.path] = Seen(_page_facts(tab), list(tab.problems))
    return tab.seen[page.path]


def _seen(tab, page: Page) -> Seen:
    """The page as test_page_in_every_language read it; or, where that did not run, loaded now."""
    if page.path not in tab.seen:
        tab.reset()
        tab.goto(page.path)
        _read(tab, page)
    return tab.seen[page.path]


def _check_page(tab, page: Page):
    tab.assert_clean(f"{page.path} (from docs/{page.lang}/{page.source})")
    facts = _read(tab, page).facts
    assert facts["lang"] == page.lang
    assert len(facts["h1"]) == 1 and facts["h1"][0], f"{page.path}: expected one titled h1, got {facts['h1']}"
    assert facts["description"].strip(), f"{page.path}: empty meta description"
    assert facts["canonical"] == tab.site.url(page.path)
    # hreflang: absolute, one per language, each the same page in that language
    expected = {lang: tab.site.url(page_of(lang, page.source).path) for lang, _ in languages()}
    assert facts["alternates"] == expected, f"{page.path}: hreflang alternates"
    assert facts["uncopyable"] == [], f"{page.path}: code blocks without a copy button"
    assert facts["brokenImages"] == [], f"{page.path}: images that do not decode (or not at their stated size)"
    for src in facts["images"] + facts["downloads"]:
        assert tab.page.request.get(src).status == 200, f"{page.path}: broken image or download {src}"


def _language_link(tab, lang: str):
    return tab.page.locator(f".md-header__option .md-select a.md-select__link[hreflang={lang}]").first


def _switch_language(tab, target: Page):
    """Pick `target`'s language in the header's language menu, as a reader does."""
    tab.page.locator(".md-header__option .md-select").first.hover(force=True)
    # The menu slides open in 250 ms, and a reader waits for it: end the slide at once. Then
    # nothing moves, and Playwright need not wait for that, nor look at what is on top where
    # it clicks (force): a click that missed the link would not lead to its page (asserted).
    tab.page.evaluate("() => document.querySelectorAll('.md-select__inner')"
                      ".forEach(menu => menu.getAnimations().forEach(a => a.finish()))")
    link = _language_link(tab, target.lang)
    href = link.evaluate("a => a.href")
    with tab.page.expect_navigation(wait_until="load"):
        link.click(force=True)
    tab.settle()
    assert tab.page.url == tab.site.url(target.path), f"the language menu led to {tab.page.url}"
    assert tab.page.url == href, f"the language menu's link to {href} led to {tab.page.url}"


WIDTHS = (1280, 390)  # a desktop and a phone; the first is the tab's own
# Where code must fit: the desktop, with the navigation and the table of contents beside the
# column (688 px wide, from 1220 px up); on a phone a code block scrolls in its own box.
CODE_WIDTH = WIDTHS[0]

_LAYOUT_JS = """() => {
    const article = document.querySelector('article');
    const width = article.getBoundingClientRect().width;
    const wide = [...article.querySelectorAll('table')].map(t => t.closest('.md-typeset__scrollwrap') || t)
        .filter(box => box.getBoundingClientRect().width > width + 1).map(box => box.textContent.slice(0, 40));
    // an identifier in a table is one line: never broken mid-word
    const broken = [...article.querySelectorAll('table code')].filter(c => !c.closest('.tpn-errata'))  // quoted lines wrap there
        .filter(c => getComputedStyle(c).whiteSpace !== 'nowrap' || c.getClientRects().length > 1)
        .map(c => c.textContent);
    return {wide, broken, overflow: document.documentElement.scrollWidth - window.innerWidth};
}"""


def _set_width(tab, width: int):
    if tab.page.viewport_size["width"] != width:
        tab.page.set_viewport_size({"width": width, "height": 900})
        # let what watches the width see the new one: media query and resize listeners run
        # before the next frame's animation callbacks, resize observers after them
        tab.page.evaluate("() => new Promise(done => requestAnimationFrame(() => setTimeout(done)))")


def _check_layout(tab, page: Page):
    """The loaded page at each width, the one it is at first (one resize, not a reload: the
    same CSS lays it out again): no console error, no table wider than its column (a wide
    table scrolls in its own box), no identifier in a table broken across lines, no
    sideways page. It is left at the last width. At CODE_WIDTH its code blocks are measured
    too, for test_code_fits_its_column and test_no_code_runs_under_the_copy_buttons."""
    for width in sorted(WIDTHS, key=lambda w: w != tab.page.viewport_size["width"]):
        _set_width(tab, width)
        facts = tab.page.evaluate(_LAYOUT_JS)
        if width == CODE_WIDTH and page.path in tab.seen:
            tab.seen[page.path].code = tab.page.evaluate(_CODE_JS)
        tab.settle()
        tab.assert_clean(f"{page.path} at {width} px")
        assert not (facts["wide"] or facts["broken"] or facts["overflow"] > 0), \
            f"{page.path} does not fit {width} px: {facts}"


@pytest.mark.parametrize("source", sorted({p.source for p in all_pages()}))
def test_page_in_every_language(tab, source: str):
    """Open the page, check it and its layout at each width; switch to each other language with
    the menu (at the phone width, where the first page was left), check that page and its
    layout, and see that its menu leads back to the first page."""
    first, *others = [p for p in all_pages() if p.source == source]
    try:
        tab.reset()
        tab.goto(first.path)
        _check_page(tab, first)
        _check_layout(tab, first)
        for page in others:
            if tab.page.url != tab.site.url(first.path):
                tab.reset()
                tab.goto(first.path)  # with a third language: back to the page the menu starts from
            tab.reset()
            _switch_language(tab, page)
            _check_page(tab, page)
            _check_layout(tab, page)
            # where a link of the menu leads is its address (the switch above checks that)
            back = _language_link(tab, first.lang).evaluate("a => a.href")
            assert back == tab.site.url(first.path), f"{page.path}: the language menu leads back to {back}"
    finally:
        _set_width(tab, WIDTHS[0])


@pytest.mark.parametrize("start, target, heading", [
    ("/en/training/#mixed-precision", "/training/", "混合精度"),                   # a ## section
    ("/data/#子进程里的随机变换", "/en/data/", "Random transforms in workers"),  # a ### section
])
def test_switching_language_keeps_the_readers_section(tab, start, target, heading):
    """The sections' ids are in each language's words; the switch carries the section's position
    (overrides/assets/javascripts/section.js) and the other page opens at the same section."""
    from urllib.parse import unquote

    tab.reset()
    tab.page.goto("about:blank")  # a fresh load, not a jump within the page the last test left
    tab.goto(start)
    lang = "zh" if target.startswith("/") and not target.startswith("/en/") else "en"
    tab.page.locator(".md-header__option .md-select").first.hover(force=True)
    tab.page.evaluate("() => document.querySelectorAll('.md-select__inner')"
                      ".forEach(menu => menu.getAnimations().forEach(a => a.finish()))")
    with tab.page.expect_navigation(wait_until="load"):
        _language_link(tab, lang).click(force=True)
    tab.settle()
    url = unquote(tab.page.url)
    assert url.split("#")[0] == tab.site.url(target), url
    facts = tab.page.evaluate("""() => {
        const h = document.getElementById(decodeURIComponent(location.hash.slice(1)));
        return h && {text: h.textContent.replace('¶', '').trim(), top: h.getBoundingClientRect().top};
    }""")
    assert facts and facts["text"] == heading and 0 <= facts["top"] < 200, (url, facts)
    tab.assert_clean(f"{start} -> {target}")


# On load: the layout shifts so far (`skipped`: those of elements in a block the browser may skip), and whether
# the article's last paragraph is drawn or skipped (content-visibility: auto, extra.css) while the top of the
# page is in the window.
_FIRST_SCREEN_JS = """() => new Promise(done => {
    let shift = 0, skipped = 0;
    const skippable = (node) => { for (let el = node?.nodeType === 1 ? node : node?.parentElement; el; el = el.parentElement)
        if (getComputedStyle(el).contentVisibility === 'auto') return true; return false; };
    new PerformanceObserver(list => list.getEntries().filter(e => !e.hadRecentInput).forEach(e => {
        shift += e.value;
        if (e.sources.some(s => skippable(s.node))) skipped += e.value;
    })).observe({type: 'layout-shift', buffered: true});
    requestAnimationFrame(() => setTimeout(() => done({shift, skipped,
        lastDrawn: [...document.querySelectorAll('article.md-typeset > p > :first-child, .jp-Cell p > *')].at(-1)
            .checkVisibility({contentVisibilityAuto: true})})));
})"""


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", ["/layers/", "/en/layers/", "/labs/task1/", "/en/labs/task3/"])
def test_a_long_page_lays_out_its_first_screen_at_once_and_skips_the_rest(tab, path, width):
    """Text far below the window (a lab: its cells from the sixth) is not laid out on load (the blocking
    time Lighthouse measured), and nothing on the first screen moves: its text and a lab's first code
    cells are laid out at once, not drawn at a placeholder height first (a lab's page is drawn before
    it is all parsed: 0.008-0.010 at 1280 px), and the header's search is shown from the first paint
    (it moved the language menu: 0.0007 on every page)."""
    tab.reset()
    try:
        _set_width(tab, width)
        tab.page.goto("about:blank")
        tab.goto(path)
        facts = tab.page.evaluate(_FIRST_SCREEN_JS)
        assert facts["skipped"] == 0 and not facts["lastDrawn"], (path, width, facts)
        assert facts["shift"] < 0.0005, (path, width, facts)
        tab.assert_clean(path)
    finally:
        _set_width(tab, WIDTHS[0])


@pytest.mark.parametrize("path", ["/errata/", "/en/errata/"])
def test_the_errata_read_at_both_widths_without_scrolling_sideways(tab, path):
    """Five columns that wrap at 1280 px; a card per row at 390 px, each cell named; nothing in
    a table scrolls sideways at either width."""
    tab.reset()
    tab.goto(path)
    try:
        for width in WIDTHS:
            _set_width(tab, width)
            facts = tab.page.evaluate("""() => [...document.querySelectorAll('.tpn-errata table')].map(t => {
                const box = t.closest('.md-typeset__scrollwrap') || t.parentElement;
                const td = t.querySelector('tbody td:nth-child(3)');
                return {sideways: box.scrollWidth - box.clientWidth, rows: t.querySelectorAll('tbody tr').length,
                        label: getComputedStyle(td, '::before').content, display: getComputedStyle(td).display};
            })""")
            assert facts and all(f["rows"] > 5 and f["sideways"] <= 1 for f in facts), (path, width, facts)
            cards = width < 720
            assert all((f["display"] == "block") == cards for f in facts), (path, width, facts)
            assert all((f["label"] not in ("none", "normal")) == cards for f in facts), (path, width, facts)
        tab.assert_clean(path)
    finally:
        _set_width(tab, WIDTHS[0])


# ---------------------------------------------------------------- code blocks at the desktop width

# Every code block of the article (Python, shell, outputs, a GPU's output; the folded boxes
# opened while measured, then closed again): its kind, its first line, the scroll and client
# widths of its <pre> and <code>, and the text under its copy buttons (a text box is under a
# button where it meets the button over more than half its height).
_CODE_JS = """() => {
    const closed = [...document.querySelectorAll('article details:not([open])')];
    closed.forEach(d => d.open = true);
    const blocks = [...document.querySelectorAll('article div.highlight')].map((block, i) => {
        const pre = block.querySelector('pre'), code = pre?.querySelector('code') || pre;
        if (!pre) return null;
        const kind = block.classList.contains('tpn-gpu') ? 'GPU output' : block.classList.contains('tpn-output')
            ? 'output' : (block.className.match(/language-(\\w+)/) || [null, 'code'])[1];
        const buttons = [...block.querySelectorAll('.md-code__button')].map(b => b.getBoundingClientRect())
            .filter(b => b.width && b.height);
        const lowest = Math.max(...buttons.map(b => b.bottom));
        const under = [], walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT), range = document.createRange();
        for (let node; buttons.length && (node = walker.nextNode());) {
            if (!node.data.trim()) continue;
            range.selectNodeContents(node);
            const boxes = [...range.getClientRects()];
            if (boxes.length && boxes[0].top > lowest) break;
            if (boxes.some(r => buttons.some(b => r.right > b.left + 1 && r.left < b.right
                    && Math.min(r.bottom, b.bottom) - Math.max(r.top, b.top) > r.height / 2)))
                under.push(node.data.trim().split('\\n')[0].slice(-30));
        }
        return {n: i + 1, kind, first: code.textContent.split('\\n')[0].slice(0, 50),
                pre: [pre.scrollWidth, pre.clientWidth], code: [code.scrollWidth, code.clientWidth], under};
    });
    closed.forEach(d => d.open = false);
    return blocks.filter(Boolean);
}"""


def _code_blocks(tab, page: Page) -> list[dict]:
    """The page's code blocks at CODE_WIDTH, as test_page_in_every_language measured them; or,
    where it did not, measured now."""
    seen = _seen(tab, page)
    if seen.code is None:
        if tab.page.url != tab.site.url(page.path):
            tab.reset()
            tab.goto(page.path)
        _set_width(tab, CODE_WIDTH)
        seen.code = tab.page.evaluate(_CODE_JS)
    return seen.code


def _block(page: Page, block: dict) -> str:
    return f"{page.path} block {block['n']} ({block['kind']}, {block['first']!r})"


CODE_PAGES = [pytest.param(p, id=p.path) for p in all_pages()]  # the labs' cells are chapter blocks too


@pytest.mark.parametrize("page", CODE_PAGES)
def test_code_fits_its_column(tab, page: Page):
    """At the desktop width every code block shows its lines whole: neither its <pre> nor its
    <code> scrolls sideways (extra.css sets the code font so that 88 characters, ruff's limit,
    fit; an output's long line wraps)."""
    wide = []
    for block in _code_blocks(tab, page):
        over = [f"{tag} scrollWidth {scroll} > clientWidth {client} (+{scroll - client} px)"
                for tag, (scroll, client) in (("<pre>", block["pre"]), ("<code>", block["code"])) if scroll > client]
        if over:
            wide.append(f"{_block(page, block)}: {'; '.join(over)}")
    assert not wide, f"{len(wide)} code blocks wider than the column at {CODE_WIDTH} px:\n  " + "\n  ".join(wide)


@pytest.mark.parametrize("page", CODE_PAGES)
def test_no_code_runs_under_the_copy_buttons(tab, page: Page):
    """The copy buttons sit at the end of a block's first line: that line ends before them (a
    Python block has two, and its first line at most about 82 characters; an output's first
    line wraps before its one)."""
    covered = [f"{_block(page, b)}: {b['under']}" for b in _code_blocks(tab, page) if b["under"]]
    assert not covered, f"code under the copy buttons at {CODE_WIDTH} px:\n  " + "\n  ".join(covered)


# ---------------------------------------------------------------- search

# How many times the page fetched its language's search index; whether the results show Material's placeholder
# (its worker built the index and searched the empty box).
_INDEX_JS = """() => ({fetched: performance.getEntriesByType('resource')
        .filter(e => new URL(e.name).pathname.endsWith('/search/search_index.json')).length,
    ready: document.querySelector('.md-search-result__meta').textContent.trim()
        === JSON.parse(document.getElementById('__config').textContent).translations['search.result.placeholder']})"""


def _open_search(tab, path: str):
    """Load the page at `path` in the search tab and click into its search box, unless done."""
    if tab.page.url != tab.site.url(path):
        tab.reset()
        tab.goto(path)
        tab.page.locator("input.md-search__input").click()
        # Once its index is built, Material searches what the box holds (nothing) and shows the
        # placeholder. Its answers show with the query last typed: one to an earlier query, shown
        # with this one's, would read "no matching documents". Type once that is answered.
        tab.page.wait_for_function(f"() => ({_INDEX_JS})().ready")
        tab.assert_clean(f"{path}, opened to search from")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_search_index_is_fetched_when_the_reader_turns_to_the_search(tab, width):
    """overrides/main.html: a page load fetches no search index (0.4 MB, and a lunr index built from it);
    the search box getting the focus does (a click on the desktop, the search button on a phone), and
    the search is ready a moment later."""
    try:
        _set_width(tab, width)
        tab.reset()
        tab.goto("/en/layers/")
        assert tab.page.evaluate(_INDEX_JS) == {"fetched": 0, "ready": False}
        if width < 960:  # Material shows the box in the header from 60em up; below it, a button
            tab.page.locator("label.md-header__button[for=__search]").click()
        else:
            tab.page.locator("input.md-search__input").click()
        tab.page.wait_for_function(f"() => ({_INDEX_JS})().ready")
        assert tab.page.evaluate(_INDEX_JS)["fetched"] == 1
        tab.page.keyboard.press("Escape")
        tab.assert_clean(f"searching from /en/layers/ at {width} px")
    finally:
        _set_width(tab, WIDTHS[0])


def test_a_page_opened_from_a_result_fetches_the_index_and_highlights_the_words(tab):
    """Material highlights a result's words (`?h=`) with its index's settings: that page fetches it at load."""
    tab.reset()
    tab.goto("/en/training/?h=precision")
    tab.page.wait_for_selector("article mark[data-md-highlight]")
    marked = tab.page.eval_on_selector_all("article mark[data-md-highlight]", "marks => marks.map(m => m.textContent)")
    assert marked and {word.lower() for word in marked} == {"precision"}, marked
    assert tab.page.evaluate(_INDEX_JS)["fetched"] == 1
    tab.assert_clean("/en/training/?h=precision")


def _search(tab, query: str) -> list[tuple[str, str]]:
    """Put `query` in the open search box and send the key event Material searches on (its query is
    the box's value at each `keyup`), in one round trip; each result link's path and the words it asks
    the page to highlight (its `h` parameter), in order."""
    tab.front()
    return tab.page.evaluate(_SEARCH_JS, query)


# Empty the results (Material shows each answer of its search worker in place of the one before), type,
# and wait for the answer (a result, or "no matching documents"): each link's path and `h` (the words
# the page highlights when opened from the results), in order. The same query again is not searched
# again (Material skips an unchanged value): its answer is the one on screen.
_SEARCH_JS = """(query) => new Promise((done, fail) => {
    const box = document.querySelector('input.md-search__input'), results = document.querySelector('.md-search-result');
    const answered = () => results.querySelector('.md-search-result__item')
        || /没有找到|No matching/.test(results.querySelector('.md-search-result__meta')?.textContent);
    const paths = () => [...results.querySelectorAll('.md-search-result__item a.md-search-result__link')]
        .map(a => new URL(a.href)).map(url => [url.pathname, url.searchParams.get('h')]);
    if (box.value === query && answered()) return done(paths());
    results.querySelectorAll('.md-search-result__list, .md-search-result__meta').forEach(el => el.replaceChildren());
    const watch = new MutationObserver(() => answered() && (watch.disconnect(), done(paths())));
    watch.observe(results, {childList: true, subtree: true, characterData: true});
    setTimeout(() => fail(new Error('no answer from the search in 15 s')), 15000);
    box.value = query;
    box.dispatchEvent(new KeyboardEvent('keyup', {key: 'End', bubbles: true}));
})"""


@pytest.fixture(scope="session")
def search_tabs(browser_context, site):
    """A tab of its own per language, opened once and kept on its search page: a search does not
    need a fresh page, only an empty box."""
    tabs = {}

    def get(lang: str) -> Tab:
        if lang not in tabs:
            tabs[lang] = _open_tab(browser_context, site)
        return tabs[lang]
    return get


@functools.cache
def glossary_terms(lang: str) -> frozenset[str]:
    """The terms of docs/<lang>/glossary.md in that language (its first column in English, its
    second in Chinese)."""
    column = 0 if lang == "en" else 1
    rows = re.findall(r"^\|(.+)\|\s*$", (DOCS / lang / "glossary.md").read_text(encoding="utf-8"), re.M)
    return frozenset(row.split("|")[column].strip() for row in rows[2:])  # past the header and its rule


def _highlighted(word: str, highlight: list[str]) -> bool:
    """Whether a typed word is among the highlighted ones: Chinese character by character, English
    as its stem (a prefix of the word but for a last y made i: "entropy" -> "entropi")."""
    if re.search(r"[\u4e00-\u9fff]", word):
        return set(word) <= set("".join(highlight))
    return any(word.startswith(h) or (len(h) > 3 and word.startswith(h[:-1])) for h in highlight)


def test_the_searches_cover_every_chapter_in_every_language():
    """At least 40 queries per language, and each chapter (a page under the nav's Task sections) the
    first result of several in each language."""
    from pagekit.project import CHAPTERS

    for lang, _ in languages():
        queries = [(query, source) for code, query, source in SEARCHES if code == lang]
        assert len(queries) >= 40, f"{lang}: {len(queries)} queries"
        for chapter in CHAPTERS:
            assert sum(source == chapter.page for _, source in queries) >= 4, f"{lang}: {chapter.page}"


@pytest.mark.parametrize("lang,query,source", SEARCHES, ids=[f"{lang}-{q}" for lang, q, _ in SEARCHES])
def test_search_puts_the_page_first_in_the_readers_language(search_tabs, lang, query, source):
    """Searching from a page in one language: the first result is the expected page in that language,
    and no result is the other language's (each language has its own index, hooks/search_lang.py).
    The first result's link highlights what was found on its page (Material's `?h=`), and a glossary
    term typed as it stands is highlighted whole, every word of it ("混合精度", not "混合")."""
    tab = search_tabs(lang)
    _open_search(tab, page_of(lang, "training.md").path)
    tab.reset()
    found = _search(tab, query)
    paths = [path for path, _ in found]
    expected = page_of(lang, source).path
    prefix = dict(languages())[lang]
    others = [f"/{p}" for code, p in languages() if p and code != lang]
    assert found, f"searching {query!r} found nothing"
    assert paths[0] == expected, f"searching {query!r}: first result {paths[0]}, expected {expected} (all: {paths[:5]})"
    assert all(path.startswith(f"/{prefix}") and not path.startswith(tuple(others)) for path in paths), \
        f"searching {query!r} in {lang} found pages of another language: {paths}"
    highlight = (found[0][1] or "").split()
    assert highlight, f"searching {query!r}: the first result's link highlights nothing (h={found[0][1]!r})"
    if query in glossary_terms(lang):
        missed = [w for w in re.split(r"[\s\-]+", query.lower()) if not _highlighted(w, highlight)]
        assert not missed, f"searching {query!r}: the first result highlights {highlight}, not {missed}"
    tab.assert_clean(f"searching {query!r}")


# ---------------------------------------------------------------- labs

def _notebook_pages():
    pages = [p for p in all_pages() if p.is_notebook]
    if not pages:
        return [pytest.param(None, marks=pytest.mark.skip(reason="no lab notebook (docs/*/**/*.ipynb) yet"),
                             id="no-notebooks")]
    return [pytest.param(p, id=p.path) for p in pages]


@pytest.mark.parametrize("page", _notebook_pages())
def test_lab_page_offers_its_notebook(tab, page: Page):
    seen = _seen(tab, page)
    assert seen.facts["type"] == "text/html", f"{page.path} is not a rendered page"
    links = seen.facts["notebooks"]
    assert links, f"{page.path}: no notebook download link"
    notebook = tab.page.request.get(links[0])
    assert notebook.status == 200, f"{links[0]}: HTTP {notebook.status}"
    assert "cells" in json.loads(notebook.body()), f"{links[0]} is not a notebook"
    _assert_clean(seen.problems, page.path)


# The computed style (all properties but custom ones, whose effect shows in the properties that
# use them, and what ::before and ::after draw) of one element per kind in the article: elements
# with the same tags and classes from <article> down, and the same first/last place among their
# siblings, match the same rules. Hashed in the page; with `detail`, the text for those indices.
_STYLES_JS = """(detail) => {
    const text = (el) => {
        const cs = getComputedStyle(el);
        let s = '';
        for (const p of cs) if (!p.startsWith('--')) s += `${p}: ${cs.getPropertyValue(p)};\\n`;
        for (const pseudo of ['::before', '::after']) {
            const ps = getComputedStyle(el, pseudo);
            s += `${pseudo} content: ${ps.content}; display: ${ps.display};\\n`;
        }
        return s;
    };
    const hash = (s) => { let h = 0; for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0; return h; };
    const where = (el) => { const p = []; for (; el && el.tagName !== 'ARTICLE'; el = el.parentElement)
        p.unshift(el.tagName.toLowerCase() + (el.getAttribute('class') ? '.' + el.getAttribute('class').trim().split(/\\s+/).join('.') : '')
                  + (el.previousElementSibling ? '' : ':first') + (el.nextElementSibling ? '' : ':last'));
        return p.join(' > '); };
    const kinds = new Map();
    for (const el of document.querySelectorAll('article *')) { const w = where(el); if (!kinds.has(w)) kinds.set(w, el); }
    const els = [...kinds.values()];
    return detail ? detail.map(i => [where(els[i]), text(els[i])]) : els.map(el => hash(text(el)));
}"""


@functools.cache
def _template_page(lang: str, source: str) -> str:
    """The notebook as mkdocs-jupyter's converter writes it, before the site's hooks (not run)."""
    import mkdocs_jupyter.convert
    return mkdocs_jupyter.convert.nb2html(str(DOCS / lang / source), execute=False)


def _full_notebook_css() -> str:
    """The CSS nbconvert's template writes into a notebook page (the same for every notebook)."""
    first = next(p for p in all_pages() if p.is_notebook)
    return "\n".join(re.findall(r"<style[^>]*>(.*?)</style>", _template_page(first.lang, first.source), re.S))


# Put the template's full notebook CSS in place of the page's own (hooks/notebook_css.py's part
# of it): the same elements, styled again. A style change starts the transitions of the changed
# properties; end them, so that each property reads at its new value.
_FULL_CSS_JS = """(css) => {
    const styles = document.querySelectorAll('style#notebook-css');
    if (styles.length !== 1) return false;
    styles[0].textContent = css;
    document.getAnimations().forEach(a => a.finish());
    return true;
}"""


def _read_both_ways(tab, page: Page, script: str, pruned_arg, full_arg) -> tuple:
    """Load the page and evaluate script with its own notebook CSS, then, in the same page, with
    the template's full CSS: (script(pruned_arg), script(full_arg))."""
    tab.goto(page.path)
    tab.page.add_style_tag(content=".jp-Cell { content-visibility: visible !important }")  # every cell laid out
    pruned = tab.page.evaluate(script, pruned_arg)
    swapped = tab.page.evaluate(_FULL_CSS_JS, _full_notebook_css())
    assert swapped, f"{page.path}: no <style id=notebook-css> in the page"
    return pruned, tab.page.evaluate(script, full_arg)


@pytest.mark.parametrize("page", _notebook_pages())
def test_lab_page_looks_the_same_with_the_full_notebook_css(tab, lab_view, page: Page):
    """hooks/notebook_css.py keeps about 3% of the template's CSS: the article must have the same
    computed style as with all of it, element for element."""
    view = lab_view(page)
    _assert_clean(view.problems, page.path)
    pruned, full = view.styles
    assert len(pruned) == len(full) > 50, f"{page.path}: {len(pruned)} vs {len(full)} kinds of element"
    differ = [i for i, (a, b) in enumerate(zip(pruned, full)) if a != b][:3]
    if differ:
        tab.reset()
        shown = []
        for (_, with_pruned), (where, with_full) in zip(*_read_both_ways(tab, page, _STYLES_JS, differ, differ)):
            full_only, pruned_only = (set(a.splitlines()) - set(b.splitlines()) for a, b in
                                      ((with_full, with_pruned), (with_pruned, with_full)))
            lines = [f"full:   {line}" for line in sorted(full_only)] + [f"pruned: {line}" for line in sorted(pruned_only)]
            shown.append(f"{where}:\n    " + "\n    ".join(lines[:10]))
        pytest.fail(f"{page.path}: pruned notebook CSS changes {len(differ)}+ elements\n" + "\n".join(shown))


# Each code cell as runs of text in one look (colour, font, background, decoration), and its
# box: spans that change nothing on screen do not show. With `originals`, each <pre>'s content
# is first replaced by the converter's own (the same text, every token in its span).
_CODE_LOOK_JS = """(originals) => [...document.querySelectorAll('article .highlight-ipynb pre')].map((pre, i) => {
    if (originals) {  // into the <code> a lab's cell has as a chapter's block (hooks/notebook_pages.py)
        const before = pre.textContent, target = pre.querySelector(':scope > code') || pre;
        target.innerHTML = originals[i].replace(/^<span><\\/span>/, '');
        if (pre.textContent !== before) return {error: `cell ${i + 1}: the converter's code differs`};
    }
    // the background on screen: the first one not transparent, from the text's element up
    const shown = (el) => { for (; el; el = el.parentElement) { const bg = getComputedStyle(el).backgroundColor;
        if (bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') return bg; } return 'none'; };
    const runs = [], walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
    for (let node; (node = walker.nextNode());) {
        const cs = getComputedStyle(node.parentElement);
        const look = [cs.color, shown(node.parentElement), cs.fontFamily, cs.fontSize, cs.fontWeight, cs.fontStyle,
                      cs.textDecorationLine, cs.letterSpacing].join(' | ');
        if (runs.length && runs.at(-1)[1] === look) runs.at(-1)[0] += node.data; else runs.push([node.data, look]);
    }
    // laid out as on screen: a block never shown is not (extra.css: content-visibility), and reads 0 x 0
    const block = pre.closest('.highlight');
    block.style.contentVisibility = 'visible';
    const box = pre.getBoundingClientRect(), size = [box.width, box.height, pre.scrollWidth, pre.scrollHeight];
    block.style.contentVisibility = '';
    return {box: size, runs};
})"""


def _converter_cells(page: Page) -> list[str]:
    """The HTML of each code cell as the converter writes it (every token in its span)."""
    return re.findall(r'<div class="highlight-ipynb[^"]*"><pre>(.*?)</pre>', _template_page(page.lang, page.source), re.S)


@dataclass
class LabView:
    """A lab page as the two lab look tests read it, with its own notebook CSS and with the
    template's full CSS (and then the converter's code cells): one load, read both ways."""

    styles: tuple[list, list]  # _STYLES_JS's hashes: pruned, full
    code: tuple[list, list]  # _CODE_LOOK_JS's cells: built, converter's
    problems: list[str]  # what went wrong while it loaded


# Both readings at once; the style first, since the code's with the converter's cells puts
# those cells in the page.
_LAB_VIEW_JS = f"(originals) => [({_STYLES_JS})(null), ({_CODE_LOOK_JS})(originals)]"


def _lab_view_key(tab, page: Page) -> str:
    """What a LabView is made from: the built page (the session's address left out) and the files beside it,
    the site's stylesheets and scripts, the notebook, the installed packages (its converter), the browser
    and the scripts that read the page."""
    digest = hashlib.sha256(repr((environment(), tab.page.context.browser.version, _LAB_VIEW_JS, _FULL_CSS_JS,
                                  inspect.getsource(_read_both_ways))).encode())
    folder = tab.site.root / page.path.strip("/")
    for file in sorted([*folder.iterdir(), *(tab.site.root / "assets").rglob("*")]):
        if file.is_file():
            digest.update(file.name.encode() + b"\0" + file.read_bytes().replace(tab.site.base.encode(), b""))
    digest.update((DOCS / page.lang / page.source).read_bytes())
    return digest.hexdigest()[:24]


@pytest.fixture(scope="session")
def lab_view(tab):
    """lab_view(page): the LabView of a lab page, read once for both tests below (loading the
    page and reading its style take longer than either comparison), and remembered in .cache/runs/
    while what it is made from is the same (`_lab_view_key`; TPN_RUN_CACHE=0 reads it again): 2.4-4 s
    a page."""
    @functools.cache
    def view(page: Page) -> LabView:
        stored = RUN_CACHE / f"lab-view-{_lab_view_key(tab, page)}.json"
        if reads_back() and stored.is_file():
            return LabView(**json.loads(stored.read_text(encoding="utf-8")))
        tab.reset()
        (pruned_styles, built), (full_styles, converted) = _read_both_ways(
            tab, page, _LAB_VIEW_JS, None, _converter_cells(page))
        read = LabView((pruned_styles, full_styles), (built, converted), list(tab.problems))
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_text(json.dumps(asdict(read)), encoding="utf-8")
        return read
    return view


@pytest.mark.parametrize("page", _notebook_pages())
def test_lab_code_looks_the_same_as_the_converters(lab_view, page: Page):
    """hooks/notebook_css.py replaces code spans no stylesheet styles by their text: every code
    cell must show the same text in the same colours and fonts, in a box of the same size, as
    the converter's own cell (every token in its span) under the template's full CSS."""
    view = lab_view(page)
    _assert_clean(view.problems, page.path)
    built, converted = view.code  # converted: one for each of the converter's code cells
    assert len(built) == len(converted) > 0, f"{page.path}: {len(built)} code cells, the converter wrote {len(converted)}"
    for i, (ours, theirs) in enumerate(zip(built, converted), 1):
        assert "error" not in theirs, theirs.get("error")
        assert ours["box"] == theirs["box"], f"{page.path} code cell {i}: box {ours['box']} != {theirs['box']}"
        first = next((a, b) for a, b in zip(ours["runs"] + [None], theirs["runs"] + [None]) if a != b) \
            if ours["runs"] != theirs["runs"] else None
        assert first is None, f"{page.path} code cell {i}: first different run:\n  built:     {first[0]}\n  converter: {first[1]}"


# A lab's code cell, a token in it, its output's label and box, and what a chapter has there; and
# the prompts ("In [1]:") a reader would see.
_LOOK_JS = """() => {
    const style = (sel, props) => { const el = document.querySelector('article ' + sel); if (!el) return null;
        const cs = getComputedStyle(el), box = el.getBoundingClientRect();
        return Object.fromEntries(props.map(p => [p, cs.getPropertyValue(p)]).concat([['width', Math.round(box.width)]])); };
    const code = ['font-size', 'font-family', 'color', 'background-color', 'line-height', 'padding-left'];
    return {
        code: style('div.language-python.highlight pre > code', code),
        keyword: style('div.language-python.highlight pre > code .kn', ['color', 'font-weight', 'font-style']),
        label: style('.tpn-output > .filename', ['font-size', 'font-family', 'font-weight', 'border-left-color']),
        label_text: document.querySelector('article .tpn-output > .filename')?.textContent,
        output: style('.tpn-output pre > code', code.concat(['border-left-width', 'white-space'])),
        prompts: [...document.querySelectorAll('.jp-InputPrompt, .jp-OutputPrompt')]
            .filter(e => e.getClientRects().length && e.textContent.trim()).length,
        article: Math.round(document.querySelector('article').getBoundingClientRect().width),
    };
}"""


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("lang", [lang for lang, _ in languages()])
def test_a_lab_looks_like_a_chapter(tab, lang, width):
    """The labs follow the chapters' look (hooks/notebook_pages.py, extra.css): no "In [1]:"
    prompts, code cells in the chapters' font, colours and width, outputs in the chapters'
    labelled box; the same computed style as the chapter whose code the lab runs, at both widths."""
    seen = {}
    for source in ("labs/task1.ipynb", "training.md"):
        tab.reset()
        tab.goto(page_of(lang, source).path)
        _set_width(tab, width)
        seen[source] = tab.page.evaluate(_LOOK_JS)
        tab.assert_clean(f"{source} at {width} px")
    lab, chapter = seen["labs/task1.ipynb"], seen["training.md"]
    assert lab["prompts"] == 0, f"{lang} lab at {width} px shows {lab['prompts']} prompts"
    for part in ("code", "keyword", "label", "output"):
        assert lab[part] is not None and lab[part] == chapter[part], f"{lang} {part} at {width} px: lab {lab[part]}, chapter {chapter[part]}"
    assert lab["label_text"] == chapter["label_text"] == ("输出" if lang == "zh" else "Output")


# ---------------------------------------------------------------- 404

@pytest.mark.parametrize("lang,prefix", languages(), ids=[lang for lang, _ in languages()])
def test_missing_page_shows_the_404_in_its_language(tab, lang, prefix):
    """A missing page under a language's folder gets that language's 404 (the nearest 404.html):
    all in that language, linking its home, and the other languages' homes by their own names."""
    tab.reset()
    missing = f"/{prefix}no-such-page/"
    tab.goto(missing, status=404)
    tab.assert_clean(f"the 404 page at {missing}", allow=(f"HTTP 404: {tab.site.url(missing)}",
                                                          "status of 404 (Not Found)"))
    facts = tab.page.evaluate("""() => ({
        lang: document.documentElement.lang,
        sections: [...document.querySelectorAll('article section[lang]')].map(s => s.lang),
        title: document.querySelector('article h1')?.textContent.trim(),
        home: document.querySelector('article a.tpn-home')?.href,
        others: Object.fromEntries([...document.querySelectorAll('article a[lang]')].map(a => [a.lang, a.href])),
        text: [...document.querySelectorAll('article p')].map(p => p.textContent).join(' '),
    })""")
    assert facts["lang"] == lang and facts["sections"] == [lang]
    assert facts["title"] == {"zh": "404：页面不存在", "en": "404: page not found"}[lang]
    assert facts["home"] == tab.site.url(f"/{prefix}")
    assert facts["others"] == {code: tab.site.url(f"/{p}") for code, p in languages() if code != lang}
    names = {"zh": "中文", "en": "English"}
    words = facts["text"]
    for code in facts["others"]:
        words = words.replace(names[code], "")
    if lang == "zh":
        assert not re.search(r"[A-Za-z]{3,}", words), words
    else:
        assert not re.search(r"[\u4e00-\u9fff]", words), words


# ---------------------------------------------------------------- math

MATH_PAGES = ["layers.md", "init.md", "losses.md"]


@pytest.mark.parametrize("lang", [lang for lang, _ in languages()])
@pytest.mark.parametrize("source", MATH_PAGES)
def test_formulas_render_as_math(tab, lang, source):
    """pymdownx.arithmatex + hooks/formulas.py: every formula is MathML the browser lays out, with
    no math script on the page; a displayed fraction is taller than a line of text, and the brackets
    around it stretch to its height (a math font in extra.css's list: DejaVu Math on this machine)."""
    page = page_of(lang, source)
    seen = _seen(tab, page)
    facts = seen.facts["math"]
    assert facts["formulas"] > 0 and facts["typeset"] == facts["formulas"], facts
    assert facts["raw"] == [] and facts["scripts"] == [], facts
    assert all(height > 30 for height in facts["tall"]), facts
    assert all(ratio > 0.8 for ratio in facts["fences"]), facts  # the floor brackets span the fraction
    _assert_clean(seen.problems, page.path)


# ---------------------------------------------------------------- dark scheme

_CONTRAST_JS = """() => {
    const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => [r, g, b].map(v => v / 255)
        .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
        .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0);
    const background = (el) => {
        for (; el; el = el.parentElement) {
            const c = rgb(getComputedStyle(el).backgroundColor);
            if (c.length === 3 || c[3] > 0) return c;
        }
        return [255, 255, 255];
    };
    const low = {};
    for (const el of document.querySelectorAll('article pre span, article pre code, article .tpn-downloads a, article a:not(.headerlink)')) {  // ¶ shows on hover only
        if (!el.textContent.trim() || !el.getClientRects().length) continue;
        const style = getComputedStyle(el), fg = rgb(style.color), bg = background(el);
        const alpha = fg.length > 3 ? fg[3] : 1;
        const mixed = fg.slice(0, 3).map((v, i) => v * alpha + bg[i] * (1 - alpha));
        const [a, b] = [lum(mixed), lum(bg)].sort((x, y) => y - x);
        const ratio = (a + 0.05) / (b + 0.05);
        if (ratio < 4.5) low[`${el.className || el.tagName} ${style.color} on rgb(${bg})`] = ratio.toFixed(2);
    }
    return {scheme: document.body.dataset.mdColorScheme, low};
}"""


@pytest.fixture(scope="session")
def dark_tab(browser_context, site) -> Tab:
    """A tab of its own with the OS in dark mode (switching one tab back and forth costs a restyle)."""
    dark = _open_tab(browser_context, site)
    dark.page.emulate_media(color_scheme="dark")
    return dark


@pytest.mark.parametrize("lang", [lang for lang, _ in languages()])
@pytest.mark.parametrize("source", ["index.md", "layers.md", "training.md", "multi-gpu.md", "labs/task1.ipynb"])
def test_code_and_links_keep_their_contrast_in_the_dark_scheme(dark_tab, lang, source):
    """With the OS in dark mode the site is dark (Material's slate) and every code colour, link and
    download button keeps WCAG AA contrast (4.5:1) on its own background (extra.css)."""
    page = page_of(lang, source)
    dark_tab.reset()
    dark_tab.goto(page.path)
    facts = dark_tab.page.evaluate(_CONTRAST_JS)
    dark_tab.assert_clean(page.path)
    assert facts["scheme"] == "slate", f"{page.path}: the OS asks for dark, the page is {facts['scheme']}"
    assert facts["low"] == {}, f"{page.path}: under 4.5:1 in the dark scheme: {facts['low']}"


# ---------------------------------------------------------------- copy as a runnable program

@pytest.mark.parametrize("path", ["/layers/", "/en/training/"])
def test_the_runnable_copy_button_puts_the_blocks_program_on_the_clipboard(tab, path):
    """A block's second copy button copies its program from runnable.json (the file that
    tests/test_runnable.py runs alone), and Material's dialog says it is copied."""
    tab.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=tab.site.base.rstrip("/"))
    tab.reset()
    tab.goto(path)
    button = tab.page.locator(".tpn-runnable:visible").nth(3)
    button.scroll_into_view_if_needed()
    button.click()
    tab.page.wait_for_selector(".md-dialog--active")
    copied = tab.page.evaluate("navigator.clipboard.readText()")
    programs = json.loads((tab.site.root / path.strip("/") / "runnable.json").read_text(encoding="utf-8"))
    assert copied == programs[int(button.get_attribute("data-runnable"))] and copied.count("\n") > 5
    tab.assert_clean(path)


@pytest.mark.parametrize("path", ["/layers/", "/en/labs/task1/"])
def test_the_copy_button_in_the_html_copies_its_block(tab, path):
    """Each block's copy button is in the page's HTML (hooks/copy_buttons.py), one per block,
    named in the page's language by Material's words, and Material's clipboard handler copies
    that block's code and says so."""
    tab.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=tab.site.base.rstrip("/"))
    tab.reset()
    tab.goto(path)
    facts = tab.page.evaluate("""() => ({
        words: JSON.parse(document.getElementById('__config').textContent).translations,
        counts: [...document.querySelectorAll('article pre')].filter(pre => pre.querySelector(':scope > code'))
            .map(pre => pre.querySelectorAll('button[data-md-type=copy]').length),
        titles: [...new Set([...document.querySelectorAll('button[data-md-type=copy]')].map(b => b.title))],
    })""")
    assert facts["counts"] and set(facts["counts"]) == {1}, f"{path}: copy buttons per block {facts['counts']}"
    assert facts["titles"] == [facts["words"]["clipboard.copy"]]
    button = tab.page.locator("button[data-md-type=copy]:visible").nth(3)
    button.scroll_into_view_if_needed()
    button.click()
    assert tab.page.text_content(".md-dialog--active .md-dialog__inner") == facts["words"]["clipboard.copied"]
    code = button.evaluate("b => b.closest('pre').querySelector(':scope > code').innerText.trimEnd()")
    assert tab.page.evaluate("navigator.clipboard.readText()") == code and code.strip()
    tab.assert_clean(path)
