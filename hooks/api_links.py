"""Names of PyTorch APIs in the prose (`nn.Conv2d`, `DataLoader`, `torch.autocast`) link to their
official documentation, both languages: the first mention in each section, inline code only,
never inside a heading, a link or a code block (pagekit/apilinks.py). The addresses come from
generated/api-inventory.json (`make api-inventory`); the build fetches nothing."""
from __future__ import annotations

from pagekit import apilinks


def on_page_content(html_text, page, config, files):
    html_text, page.api_links = apilinks.link(html_text)
    return html_text
