"""PyTorch API names in a page's prose linked to their documentation (hooks/api_links.py), from the inventory
`generated/api-inventory.json` (`make api-inventory`: every public class and function of the modules below, as
the installed torch and torchvision define them); nothing is fetched at build or test time. `ALIASES` maps the
short names the pages write to full names; a name that resolves to no entry stays plain code.
"""
from __future__ import annotations

import html
import importlib
import inspect
import json
import pkgutil
import re
import warnings
from functools import lru_cache

from pagekit.project import ROOT

INVENTORY = ROOT / "generated" / "api-inventory.json"
TORCH_DOCS = "https://docs.pytorch.org/docs/stable/"
VISION_DOCS = "https://docs.pytorch.org/vision/stable/"

# module -> where its members are documented: "generated" (a page per name:
# generated/<full.name>.html) or the module's page, on which each member is an anchor
# (<page>#<full.name>), as PyTorch's docs/source/*.rst lay them out (autosummary vs autoclass).
MEMBERS = {
    "torch": "generated",
    "torch.nn": "generated",
    "torch.nn.functional": "generated",
    "torch.nn.init": "nn.init.html",
    "torch.nn.utils": "generated",
    "torch.nn.parallel": "generated",
    "torch.utils.data": "data.html",
    "torch.utils.data.distributed": "data.html",
    "torch.amp": "amp.html",
    "torch.autograd": "generated",
    "torch.autograd.functional": "generated",
    "torch.cuda": "generated",
    "torch.accelerator": "generated",
    "torch.distributed": "distributed.html",
    "torch.multiprocessing": "multiprocessing.html",
    "torch.optim": "generated",
    "torch.optim.lr_scheduler": "generated",
    "torch.serialization": "notes/serialization.html",
    "torchvision.datasets": "generated",
    "torchvision.transforms": "generated",
    "torchvision.transforms.v2": "generated",
    "torchvision.models": "generated",
    "torchvision.utils": "generated",
    "torchvision.io": "generated",
}
# The modules themselves, named in prose (`nn.init`, `torch.cuda`): their page.
MODULE_PAGES = {
    "torch.nn": "nn.html", "torch.nn.functional": "nn.functional.html",
    "torch.nn.init": "nn.init.html", "torch.utils.data": "data.html", "torch.amp": "amp.html",
    "torch.autograd": "autograd.html", "torch.cuda": "cuda.html", "torch.optim": "optim.html",
    "torch.distributed": "distributed.html", "torch.multiprocessing": "multiprocessing.html",
    "torch.serialization": "notes/serialization.html", "torch.export": "export.html",
    "torch.distributed.checkpoint": "distributed.checkpoint.html",
    "torch.utils.benchmark": "benchmark_utils.html", "torch.utils.cpp_extension": "cpp_extension.html",
    "torchvision.datasets": "datasets.html", "torchvision.transforms": "transforms.html",
    "torchvision.transforms.v2": "transforms.html", "torchvision.models": "models.html",
}
# Members documented apart from their module's rule (amp.rst documents torch.autocast).
MOVED = {"torch.autocast": "amp.html", "torch.Tensor": "tensors.html"}
# Methods readers call on objects: documented on their class's page (Module) or one page each.
METHODS = {"torch.Tensor": "generated", "torch.nn.Module": "torch.nn.Module",
           "torch.optim.Optimizer": "generated"}

# How the pages write names -> full names. A prefix ends with a dot.
ALIASES = {
    "nn.": "torch.nn.", "F.": "torch.nn.functional.", "v2.": "torchvision.transforms.v2.",
    "transforms.": "torchvision.transforms.", "datasets.": "torchvision.datasets.",
    "dist.": "torch.distributed.", "optim.": "torch.optim.",
    "DataLoader": "torch.utils.data.DataLoader", "Dataset": "torch.utils.data.Dataset",
    "TensorDataset": "torch.utils.data.TensorDataset", "Subset": "torch.utils.data.Subset",
    "random_split": "torch.utils.data.random_split",
    "DistributedSampler": "torch.utils.data.distributed.DistributedSampler",
    "ImageFolder": "torchvision.datasets.ImageFolder",
    "DataParallel": "torch.nn.DataParallel",
    "DistributedDataParallel": "torch.nn.parallel.DistributedDataParallel",
    "Sequential": "torch.nn.Sequential", "ModuleList": "torch.nn.ModuleList",
    "ModuleDict": "torch.nn.ModuleDict", "SyncBatchNorm": "torch.nn.SyncBatchNorm",
    "CrossEntropyLoss": "torch.nn.CrossEntropyLoss", "BCEWithLogitsLoss": "torch.nn.BCEWithLogitsLoss",
    "BCELoss": "torch.nn.BCELoss", "NLLLoss": "torch.nn.NLLLoss", "MSELoss": "torch.nn.MSELoss",
    "L1Loss": "torch.nn.L1Loss", "SmoothL1Loss": "torch.nn.SmoothL1Loss",
    "GradScaler": "torch.amp.GradScaler", "autocast": "torch.autocast",
    "backward": "torch.Tensor.backward", "detach": "torch.Tensor.detach",
    "state_dict": "torch.nn.Module.state_dict", "load_state_dict": "torch.nn.Module.load_state_dict",
    "model.state_dict": "torch.nn.Module.state_dict", "model.eval": "torch.nn.Module.eval",
    "model.train": "torch.nn.Module.train", "model.apply": "torch.nn.Module.apply",
    "optimizer.step": "torch.optim.Optimizer.step", "optimizer.zero_grad": "torch.optim.Optimizer.zero_grad",
}


def _public(module) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_")]
    return sorted(set(names))


def _documented(obj, root: str) -> bool:
    """A class or a function that its package defines (not a module, a constant, a typing alias,
    nor one of the C++ bindings' types, which torch exports but does not document)."""
    if inspect.ismodule(obj) or not (inspect.isclass(obj) or callable(obj)):
        return False
    module = getattr(obj, "__module__", None) or root
    binding = "pybind11" in type(obj).__name__ or module.startswith("torch._C")
    return module.split(".")[0] == root and not binding


def _member(owner, name: str, root: str, method: bool = False):
    """owner.name where it is documented, or None where it is missing, not documented or
    deprecated (reading or inspecting it warns)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj = getattr(owner, name, None)
        ok = obj is not None and (callable(obj) if method else _documented(obj, root))
    return obj if ok and not caught else None


def _address(full: str, where: str, vision: bool) -> str:
    base = VISION_DOCS if vision else TORCH_DOCS
    if where == "generated":
        return f"{base}generated/{full}.html"
    return f"{base}{where}#{full}"


def build() -> dict:
    """The inventory of the installed torch and torchvision: full name -> its documentation."""
    import torch
    import torchvision

    names: dict[str, str] = {}
    for module_name, where in MEMBERS.items():
        module = importlib.import_module(module_name)
        root = module_name.split(".")[0]
        for name in _public(module):
            full = f"{module_name}.{name}"
            if _member(module, name, root) is not None:
                names[full] = _address(full, MOVED.get(full, where), root == "torchvision")
    for cls_name, where in METHODS.items():
        module_name, _, attr = cls_name.rpartition(".")
        cls = getattr(importlib.import_module(module_name), attr)
        for name in _public(cls):
            if _member(cls, name, "torch", method=True) is not None:
                full = f"{cls_name}.{name}"
                names[full] = (_address(full, "generated", False) if where == "generated"
                               else f"{TORCH_DOCS}generated/{where}.html#{full}")
    for module_name, page in MODULE_PAGES.items():
        importlib.import_module(module_name)  # a module the installed packages lack fails here
        names[module_name] = (VISION_DOCS if module_name.startswith("torchvision") else TORCH_DOCS) + page
    return {"torch": torch.__version__.split("+")[0], "torchvision": torchvision.__version__.split("+")[0],
            "names": dict(sorted(names.items()))}


def missing(names) -> list[str]:
    """The full names the installed torch and torchvision lack (a module, or an attribute chain
    from one), in the order given."""
    lacking = []
    for full in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                pkgutil.resolve_name(full)
            except (ImportError, AttributeError):
                lacking.append(full)
    return lacking


def dumps(inventory: dict) -> str:
    return json.dumps(inventory, indent=1, sort_keys=True) + "\n"


@lru_cache(maxsize=1)
def inventory() -> dict[str, str]:
    """The committed inventory: full name -> address."""
    if not INVENTORY.is_file():
        raise FileNotFoundError(f"{INVENTORY.relative_to(ROOT)} is missing: run `make api-inventory`")
    return json.loads(INVENTORY.read_text(encoding="utf-8"))["names"]


def full_name(written: str) -> str:
    """A name as a page writes it (`nn.Conv2d`, `backward()`) -> its full name."""
    if not isinstance(written, str):
        raise TypeError(f"full_name takes the name as a string, not {type(written).__name__}")
    name = written.strip()
    name = name[:-2] if name.endswith("()") else name
    if name in ALIASES and not name.endswith("."):
        return ALIASES[name]
    for prefix, full in ALIASES.items():
        if prefix.endswith(".") and name.startswith(prefix):
            return full + name[len(prefix):]
    return name


def address(written: str) -> str | None:
    """The documentation of a name as a page writes it, or None where the inventory has none."""
    return inventory().get(full_name(written))


_TAG = re.compile(r"<(/?)(a|h[1-6]|pre|code)\b([^>]*)>", re.I)
_CODE = re.compile(r"<code>([^<]*)</code>")


def link(page_html: str) -> tuple[str, list[str]]:
    """The page's HTML with the first mention of each API name in a section (between two
    headings) linked; inline code only, never inside a heading, a link or a code block.
    Returns the HTML and the full names it linked."""
    out, linked, seen = [], [], set()
    depth = {"a": 0, "h": 0, "pre": 0}
    at = 0
    for match in _TAG.finditer(page_html):
        closing, tag = match.group(1) == "/", match.group(2).lower()
        kind = "h" if tag[0] == "h" else tag
        if tag == "code":
            continue
        if kind == "h" and not closing:
            seen = set()  # a new section
        out.append(_link_code(page_html[at:match.start()], depth, seen, linked))
        out.append(match.group(0))
        at = match.end()
        depth[kind] = max(0, depth[kind] + (-1 if closing else 1))
    out.append(_link_code(page_html[at:], depth, seen, linked))
    return "".join(out), linked


def _link_code(text: str, depth: dict[str, int], seen: set[str], linked: list[str]) -> str:
    if any(depth.values()) or "<code>" not in text:
        return text

    def one(match: re.Match) -> str:
        written = html.unescape(match.group(1))
        url = address(written)
        full = full_name(written)
        if url is None or full in seen:
            return match.group(0)
        seen.add(full)
        linked.append(full)
        return f'<a class="tpn-api" href="{html.escape(url)}" title="{html.escape(full)}">{match.group(0)}</a>'

    return _CODE.sub(one, text)
