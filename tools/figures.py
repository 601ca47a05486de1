"""Regenerate every picture the pages show, once per language: `make figures`.

Each snippet module that draws pictures defines `save_figures(out_dir) -> list[Path]` and draws
English words, as the code on the pages does. This writes each picture into docs/assets/img/ as
`<name>.en.png` and `<name>.zh.png`, its words from LABELS in WenQuanYi Micro Hei (`make
browser-deps`; CONTRIBUTING.md says the rest). A word with no translation stops the run, so a new
label in a snippet cannot reach a Chinese page in English.

    python -m tools.figures            # every module
    python -m tools.figures training   # only snippets/training.py

The pictures come from seeded CPU runs: running it twice writes the same bytes.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import pkgutil
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed

from matplotlib import font_manager  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

import snippets  # noqa: E402
from pagekit.project import LANGS

OUT = Path(__file__).resolve().parents[1] / "docs" / "assets" / "img"
SOURCE_LANG = "en"  # the language the snippets draw in
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
CJK_FAMILY = "WenQuanYi Micro Hei"
# Every English word a figure shows, in the other page languages. Terms as in docs/zh/glossary.md.
LABELS = {
    "zh": {
        "train": "训练集",
        "validation": "验证集",
        "epoch": "轮",
        "loss": "损失",
        "cross-entropy loss": "交叉熵损失",
        "accuracy": "准确率",
        "validation accuracy": "验证准确率",
        "best (kept)": "最好的一轮（保留）",
    },
}
_LETTERS = re.compile(r"[A-Za-z]")


def _cjk_family() -> str:
    """Make matplotlib know the CJK font by its path (no font cache rebuild, no rcParams change)."""
    if not CJK_FONT.is_file():
        raise FileNotFoundError(f"{CJK_FONT} is missing: the Chinese figures need it "
                                "(`make browser-deps`, or apt-get install fonts-wqy-microhei)")
    if CJK_FAMILY not in {f.name for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(CJK_FONT))
    return CJK_FAMILY


def translate(fig: Figure, lang: str) -> list[str]:
    """Put `lang`'s words on every text of `fig` that has letters; return the texts it now shows.

    Raises ValueError for a word LABELS has no `lang` translation for.
    """
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    table = LABELS.get(lang, {})
    shown = []
    for text in fig.findobj(Text):
        words = text.get_text()
        if lang != SOURCE_LANG and _LETTERS.search(words):
            if words not in table:
                raise ValueError(f"no {lang} words for the figure text {words!r}: add it to LABELS in "
                                 "tools/figures.py")
            text.set_text(table[words])
            # Latin letters and digits as in the English figure; Chinese from the CJK font
            text.set_fontfamily([*matplotlib.rcParams["font.sans-serif"][:1], _cjk_family()])
        if text.get_text():
            shown.append(text.get_text())
    return shown


@contextlib.contextmanager
def every_language() -> Iterator[Callable[[Path], dict[str, bytes]]]:
    """While inside, each PNG a figure saves is also drawn in every page language.

    Yields `variants(path)`: for a PNG file saved inside (or a copy of one), {lang: PNG bytes};
    the source language's bytes are the file's own.
    """
    drawn: dict[str, dict[str, bytes]] = {}
    original = Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        kwargs.setdefault("format", Path(str(fname)).suffix.lstrip(".") or "png")
        pngs = {}
        drawn_as = [(text, text.get_text(), text.get_fontfamily()) for text in self.findobj(Text)]
        for lang in (SOURCE_LANG, *(lang for lang in LANGS if lang != SOURCE_LANG)):
            for text, words, family in drawn_as:  # each language from the snippet's own words
                text.set_text(words)
                text.set_fontfamily(family)
            translate(self, lang)
            buffer = io.BytesIO()
            original(self, buffer, *args, **kwargs)
            pngs[lang] = buffer.getvalue()
        drawn[hashlib.sha256(pngs[SOURCE_LANG]).hexdigest()] = pngs
        if isinstance(fname, (str, Path)):
            Path(fname).write_bytes(pngs[SOURCE_LANG])
        else:
            fname.write(pngs[SOURCE_LANG])

    def variants(path: Path) -> dict[str, bytes]:
        key = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if key not in drawn:
            raise ValueError(f"{path} was not drawn by a figure saved inside every_language()")
        return drawn[key]

    Figure.savefig = savefig
    try:
        yield variants
    finally:
        Figure.savefig = original


def main(names: list[str], out: Path = OUT) -> int:
    out.mkdir(parents=True, exist_ok=True)
    _cjk_family()  # fail before a long run, not after it
    for info in pkgutil.iter_modules(snippets.__path__):
        if names and info.name not in names:
            continue
        module = importlib.import_module(f"snippets.{info.name}")
        if not hasattr(module, "save_figures"):
            continue
        with tempfile.TemporaryDirectory() as tmp, every_language() as variants:
            for path in module.save_figures(Path(tmp)):
                for lang, png in variants(Path(path)).items():
                    name = Path(path).with_suffix(f".{lang}{Path(path).suffix}").name
                    target = out / name  # training-curves.zh.png
                    target.write_bytes(png)
                    print(f"wrote {target.relative_to(out.parents[2])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
