"""API names in the prose link to PyTorch's documentation from the committed inventory
(pagekit/apilinks.py, generated/api-inventory.json); the built pages are checked in
tests/test_pages.py. The inventory is held to the pinned torch: under another release (the GPU
check, `make matrix`) the tests that compare it with the installed packages skip, saying so."""
from __future__ import annotations

import json

import pytest
import torch
import torchvision

from pagekit import apilinks

COMMITTED = json.loads(apilinks.INVENTORY.read_text(encoding="utf-8"))
SAME_RELEASE = (torch.__version__.split("+")[0], torchvision.__version__.split("+")[0]) == (
    COMMITTED["torch"], COMMITTED["torchvision"])
needs_pinned = pytest.mark.skipif(
    not SAME_RELEASE, reason=f"the inventory lists torch {COMMITTED['torch']}; this is torch {torch.__version__}")


@needs_pinned
def test_the_inventory_is_what_the_installed_torch_and_torchvision_give():
    """`make api-inventory` run again writes the committed file byte for byte."""
    assert apilinks.dumps(apilinks.build()) == apilinks.INVENTORY.read_text(encoding="utf-8")


@needs_pinned
def test_every_name_in_the_inventory_is_in_the_installed_torch():
    assert apilinks.missing(COMMITTED["names"]) == []


def test_a_name_the_torch_lacks_is_found_missing():
    names = ["torch.nn.Conv2d", "torch.nn.NoSuchLayer", "torch.nn.functional", "torchvision.nope.x"]
    assert apilinks.missing(names) == ["torch.nn.NoSuchLayer", "torchvision.nope.x"]


def test_the_inventory_holds_the_names_the_pages_use_with_their_pages():
    names = apilinks.inventory()
    docs = apilinks.TORCH_DOCS
    assert names["torch.nn.Conv2d"] == docs + "generated/torch.nn.Conv2d.html"
    assert names["torch.utils.data.DataLoader"] == docs + "data.html#torch.utils.data.DataLoader"
    assert names["torch.autocast"] == docs + "amp.html#torch.autocast"
    assert names["torch.nn.init.xavier_normal_"] == docs + "nn.init.html#torch.nn.init.xavier_normal_"
    assert names["torchvision.datasets.ImageFolder"] == (
        apilinks.VISION_DOCS + "generated/torchvision.datasets.ImageFolder.html")
    assert names["torch.nn.Module.state_dict"].endswith("torch.nn.Module.html#torch.nn.Module.state_dict")
    assert all(url.startswith(apilinks.TORCH_DOCS) or url.startswith(apilinks.VISION_DOCS)
               for url in names.values())


def test_every_alias_names_an_entry_of_the_inventory():
    names = apilinks.inventory()
    for written, full in apilinks.ALIASES.items():
        assert (full.rstrip(".") if written.endswith(".") else full) in names, written


@pytest.mark.parametrize("written, full", [
    ("nn.Conv2d", "torch.nn.Conv2d"), ("F.conv2d", "torch.nn.functional.conv2d"),
    ("DataLoader", "torch.utils.data.DataLoader"), ("backward()", "torch.Tensor.backward"),
    ("torch.no_grad()", "torch.no_grad"), ("v2.RandomAffine", "torchvision.transforms.v2.RandomAffine"),
    ("corr2d", "corr2d")])
def test_names_as_the_pages_write_them_resolve_to_full_names(written, full):
    assert apilinks.full_name(written) == full


def test_a_name_that_is_not_a_string_is_refused():
    with pytest.raises(TypeError, match="full_name takes the name as a string, not int"):
        apilinks.full_name(3)


def test_only_the_first_mention_in_a_section_outside_headings_links_and_code_blocks_is_linked():
    page = ("<h2 id='a'>Using <code>DataLoader</code></h2><p><code>DataLoader</code> and "
            "<code>DataLoader</code>, <a href='x'><code>nn.Conv2d</code></a>, <code>corr2d</code></p>"
            "<pre><span></span><code>nn.Conv2d(1, 1, 3)</code></pre><p><code>nn.Conv2d</code></p>"
            "<h3>Next</h3><p><code>DataLoader</code></p>")
    linked, names = apilinks.link(page)
    assert names == ["torch.utils.data.DataLoader", "torch.nn.Conv2d", "torch.utils.data.DataLoader"]
    assert "<h2 id='a'>Using <code>DataLoader</code></h2>" in linked
    assert linked.count('class="tpn-api"') == 3
    assert "<a href='x'><code>nn.Conv2d</code></a>" in linked
    assert "<code>nn.Conv2d(1, 1, 3)</code></pre>" in linked
    assert linked.count("<code>corr2d</code>") == 1 and 'title="corr2d"' not in linked
