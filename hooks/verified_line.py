"""Under each chapter's title, one line in the page's language: where the page last ran.

From the same data as the home page's table (pagekit/reports.py): the torch version pinned in
requirements.txt, which CI runs every block on (CPU), or, when generated/gpu-report.json holds a
`make gpu-check` run, that run's torch and GPU too; and the date of the page's last commit.
Runs after hooks/pages.py, so the line sits right under the H1, above the "how to run" box.

The site's own date is a commit's too: SOURCE_DATE_EPOCH, which MkDocs reads for the sitemap's
<lastmod> dates and the sitemap.xml.gz header, is set to the last commit's time when not set
already, so that two builds of one commit are byte-identical on different days.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mkdocs.plugins import event_priority

from pagekit import reports
from pagekit.page import TITLE, is_chapter
from pagekit.project import ROOT, pins

WORDS = {
    "zh": {"cpu": "最近一次运行：CPU（CI）· torch {torch}", "gpu": "；GPU · {gpu} · torch {torch} · {date}",
           "date": "；本页最后提交于 {date}", "none": "；尚未在 GPU 上运行"},
    "en": {"cpu": "Last ran on: CPU (CI) · torch {torch}", "gpu": "; GPU · {gpu} · torch {torch} · {date}",
           "date": "; page last committed {date}", "none": "; not yet run on a GPU"},
}


def _commit_date(path: Path) -> str:
    done = subprocess.run(["git", "log", "-1", "--format=%cs", "--", str(path)], cwd=ROOT,
                          capture_output=True, text=True)
    return done.stdout.strip() or "—"  # a page not committed yet


def on_config(config):
    if "SOURCE_DATE_EPOCH" not in os.environ:
        done = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True, text=True)
        if done.stdout.strip():  # not in a git checkout: MkDocs takes today's date
            os.environ["SOURCE_DATE_EPOCH"] = done.stdout.strip()
    return config


def line(lang: str, source: Path) -> str:
    words = WORDS.get(lang, WORDS["en"])
    pinned = pins()
    report = reports.load_report()
    text = words["cpu"].format(torch=pinned.get("torch", "?"))
    if report.get("status") == "ran":
        text += words["gpu"].format(gpu=reports.gpu_label(report), torch=report["torch"], date=report["date"])
    else:
        text += words["none"]
    return text + words["date"].format(date=_commit_date(source))


@event_priority(-50)  # after hooks/pages.py has put its box under the title
def on_page_markdown(markdown, page, config, files):
    src = Path(page.file.abs_src_path or "")
    if src.suffix != ".md" or not is_chapter(markdown):
        return markdown
    title = TITLE.search(markdown)
    if not title:
        return markdown
    lang = config.theme["language"]
    note = f'<p class="tpn-verified" markdown>{line(lang, src)}</p>'
    return markdown[:title.end()] + "\n\n" + note + "\n" + markdown[title.end():]
