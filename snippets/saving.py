"""Chapter `saving`: state_dict vs whole model, torch.export, what the file really is,
`weights_only`, full checkpoints that resume training exactly, `.to()` vs `.cuda()`,
and `map_location`.

Run it as `python -m snippets.saving` (or `python snippets/saving.py`); it writes its
files into the current folder. Sections marked `--8<-- [start:name]` are shown, in
this order, on the pages docs/{zh,en}/saving.md.
"""
import contextlib  # for the module's own runner (__main__), not shown
import tempfile

# isort: split
# --8<-- [start:imports]
import argparse
import json
import pickle
import random
import struct
import subprocess
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# --8<-- [end:imports]


# --8<-- [start:net]
class Net(nn.Module):
    """A small classifier for 64 features (a flattened 8x8 digit), with dropout."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(64, 32)
        self.drop = nn.Dropout(p=0.2)
        self.act = nn.ReLU()
        self.out = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.drop(self.hidden(x))))
# --8<-- [end:net]


def demo_state_dict() -> tuple[nn.Module, torch.Tensor]:
    # --8<-- [start:demo_state_dict]
    torch.manual_seed(0)
    model = Net().eval()
    for name, tensor in model.state_dict().items():
        print(f"{name:14} {tuple(tensor.shape)}")
    # --8<-- [end:demo_state_dict]
    # --8<-- [start:demo_load_state_dict]
    torch.save(model.state_dict(), "net_weights.pt")

    fresh = Net().eval()                     # build the model from code first ...
    state = torch.load("net_weights.pt", weights_only=True)
    print(fresh.load_state_dict(state))      # ... then copy the tensors in
    x = torch.randn(2, 64)
    print(torch.equal(fresh(x), model(x)))
    # --8<-- [end:demo_load_state_dict]
    return model, x


def demo_whole_model(model: nn.Module, x: torch.Tensor) -> nn.Module:
    # --8<-- [start:demo_whole_model]
    torch.save(model, "net_whole.pt")        # pickles the object, the class by name
    whole = torch.load("net_whole.pt", weights_only=False)  # only for files you trust
    print(type(whole).__name__, torch.equal(whole(x), model(x)))
    # --8<-- [end:demo_whole_model]
    return whole


# --8<-- [start:run_script]
def run_script(name: str, code: str) -> str:
    """Write `code` to the file `name`, run it in a new Python process, and return
    the last line it printed, or if it failed, its error (the last line of stderr)."""
    Path(name).write_text(code)
    done = subprocess.run([sys.executable, name], capture_output=True, text=True)
    out = done.stdout if done.returncode == 0 else done.stderr  # warnings go to stderr
    return out.strip().splitlines()[-1]
# --8<-- [end:run_script]


def demo_whole_model_needs_class() -> str:
    # --8<-- [start:demo_whole_model_needs_class]
    # another script: it imports torch, but neither defines nor imports Net
    last_line = run_script("without_net.py", (
        "import torch\n"
        "model = torch.load('net_whole.pt', weights_only=False)\n"
    ))
    print(last_line)
    # --8<-- [end:demo_whole_model_needs_class]
    return last_line


def demo_export(model: nn.Module, x: torch.Tensor) -> torch.export.ExportedProgram:
    # --8<-- [start:demo_export]
    model.eval()                             # the graph records dropout switched off
    batch = torch.export.Dim("batch")        # any batch size, not only x's 2
    program = torch.export.export(model, (x,), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, "net.pt2")
    # --8<-- [end:demo_export]
    return program


def demo_export_load(model: nn.Module) -> nn.Module:
    # --8<-- [start:demo_export_load]
    loaded = torch.export.load("net.pt2")    # an ExportedProgram
    print([str(n.target) for n in loaded.graph.nodes if n.op == "call_function"])
    runnable = loaded.module()               # an nn.Module that runs the graph
    x5 = torch.randn(5, 64)
    print(torch.equal(runnable(x5), model(x5)))
    # --8<-- [end:demo_export_load]
    return runnable


def demo_export_without_net(model: nn.Module) -> str:
    # --8<-- [start:demo_export_without_net]
    x3 = torch.randn(3, 64)
    torch.save({"x": x3, "y": model(x3).detach()}, "example.pt")
    last_line = run_script("serve.py", (
        "import torch\n"
        "program = torch.export.load('net.pt2')  # no Net in this script\n"
        "example = torch.load('example.pt', weights_only=True)\n"
        "print(torch.equal(program.module()(example['x']), example['y']))\n"
    ))
    print(last_line)
    # --8<-- [end:demo_export_without_net]
    return last_line


def demo_aoti(model: nn.Module, program: torch.export.ExportedProgram) -> nn.Module:
    # --8<-- [start:demo_aoti]
    path = torch._inductor.aoti_compile_and_package(
        program, package_path="net_aoti.pt2")    # writes and compiles C++
    compiled = torch._inductor.aoti_load_package(path)  # the compiled code, loaded
    x7 = torch.randn(7, 64)                  # the batch stays free, as exported
    print(torch.allclose(compiled(x7), model(x7)))
    # --8<-- [end:demo_aoti]
    return compiled


def demo_extension() -> None:
    # --8<-- [start:demo_extension]
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    names = ["weights.pt", "weights.pth", "weights.pkl"]
    for name in names:
        torch.save(state, name)
    data = [Path(name).read_bytes() for name in names]
    print("identical bytes:", data[0] == data[1] == data[2])
    print("zip archive:", zipfile.is_zipfile("weights.pkl"))
    names = zipfile.ZipFile("weights.pkl").namelist()
    storages = [n for n in names if n.startswith("weights/data/")]
    print("weights/data.pkl" in names, storages)
    # --8<-- [end:demo_extension]
    # --8<-- [start:demo_other_name]
    torch.save(state, "other.pt")            # another name: another folder in the zip
    a, b = zipfile.ZipFile("weights.pt"), zipfile.ZipFile("other.pt")
    same = all(a.read(m) == b.read(m.replace("weights/", "other/", 1))
               for m in a.namelist())
    print("same bytes:", data[0] == Path("other.pt").read_bytes(),
          "| same members:", same)
    # --8<-- [end:demo_other_name]


def demo_not_a_pickle() -> None:
    # --8<-- [start:demo_not_a_pickle]
    with open("weights.pkl", "rb") as f:
        try:
            pickle.load(f)
        except pickle.UnpicklingError as err:
            print("UnpicklingError:", err)
    print(torch.load("weights.pkl", weights_only=True))
    # --8<-- [end:demo_not_a_pickle]


# --8<-- [start:payload]
class Payload:
    """Pickle calls whatever __reduce__ returns when the file is loaded."""

    def __reduce__(self):
        code = "import pathlib; pathlib.Path('pwned.txt').write_text('code ran')"
        return (exec, (code,))
# --8<-- [end:payload]


# --8<-- [start:refusal]
def refusal(err: pickle.UnpicklingError) -> str:
    """The line of torch.load's long weights_only error that names what it refused."""
    line = next(ln for ln in str(err).splitlines() if "Unsupported global" in ln)
    return line.strip().split(" Please")[0]
# --8<-- [end:refusal]


def demo_refuse_payload() -> str:
    # --8<-- [start:demo_refuse_payload]
    torch.save({"weight": torch.zeros(2), "extra": Payload()}, "evil.pt")
    try:
        torch.load("evil.pt", weights_only=True)  # True is the default since torch 2.6
    except pickle.UnpicklingError as err:
        message = str(err)
        print(message.split(".")[0])
        print(refusal(err))
    print("pwned.txt exists:", Path("pwned.txt").exists())
    # --8<-- [end:demo_refuse_payload]
    return message


def demo_safe_globals() -> nn.Module:
    # --8<-- [start:demo_safe_globals]
    torch.save(Net(), "net_whole.pt")
    print(sorted(torch.serialization.get_unsafe_globals_in_checkpoint("net_whole.pt")))
    trusted = [Net, nn.Linear, nn.Dropout, nn.ReLU]
    with torch.serialization.safe_globals(trusted):
        whole = torch.load("net_whole.pt", weights_only=True)
    print(type(whole).__name__)
    # --8<-- [end:demo_safe_globals]
    return whole


def demo_common_refusals() -> None:
    # --8<-- [start:demo_common_refusals]
    args = argparse.Namespace(lr=0.01, epochs=4)   # what argparse gives a script
    best = np.mean([0.91, 0.93])                    # a NumPy scalar, not a float
    for name, value in [("args", args), ("best", best)]:
        torch.save({"model": Net().state_dict(), name: value}, f"with_{name}.pt")
        try:
            torch.load(f"with_{name}.pt", weights_only=True)
        except pickle.UnpicklingError as err:
            print(f"{type(value).__name__}: {refusal(err)}")
    # --8<-- [end:demo_common_refusals]
    # --8<-- [start:demo_allow_namespace]
    with torch.serialization.safe_globals([argparse.Namespace]):
        print(torch.load("with_args.pt", weights_only=True)["args"])
    # --8<-- [end:demo_allow_namespace]
    # --8<-- [start:demo_plain_types]
    torch.save({"model": Net().state_dict(),
                "args": vars(args),                  # a dict of str, float, int
                "best": float(best)}, "plain.pt")   # a Python float
    loaded = torch.load("plain.pt", weights_only=True)
    print(loaded["args"], loaded["best"])
    print(argparse.Namespace(**loaded["args"]))     # back to a Namespace
    # --8<-- [end:demo_plain_types]


def demo_assign_is_not_loading() -> None:
    # --8<-- [start:demo_assign_is_not_loading]
    torch.manual_seed(0)
    model, trained = Net(), Net()
    before = model.hidden.weight.clone()
    model.state_dict = trained.state_dict()  # the notes' "equivalent"
    print("weights unchanged:", torch.equal(model.hidden.weight, before))
    print("type(model.state_dict):", type(model.state_dict).__name__)
    try:
        model.state_dict()
    except TypeError as err:
        print("TypeError:", err)
    # --8<-- [end:demo_assign_is_not_loading]
    # --8<-- [start:demo_load_is_loading]
    model = Net()
    result = model.load_state_dict(trained.state_dict())
    print(result, "|", type(result).__name__,
          result.missing_keys, result.unexpected_keys)
    print("weights loaded:", torch.equal(model.hidden.weight, trained.hidden.weight))
    # --8<-- [end:demo_load_is_loading]


def demo_meta() -> nn.Module:
    # --8<-- [start:demo_meta]
    with torch.device("meta"):               # tensors made here have no data
        skeleton = Net()
    print(skeleton.out.bias)
    # --8<-- [end:demo_meta]
    # --8<-- [start:demo_meta_copy]
    state = torch.load("net_weights.pt", weights_only=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        skeleton.load_state_dict(state)      # copies into tensors that hold nothing
    print(skeleton.out.bias.device, "|", len(caught), "warnings, the first:")
    print(str(caught[0].message).split(". (")[0])
    # --8<-- [end:demo_meta_copy]
    # --8<-- [start:demo_meta_assign]
    print(skeleton.load_state_dict(state, assign=True))
    weight = skeleton.out.weight
    print(weight.device, type(weight).__name__, weight.requires_grad,
          weight.data_ptr() == state["out.weight"].data_ptr())  # the file's tensor
    # --8<-- [end:demo_meta_assign]
    return skeleton


# --8<-- [start:load_big]
def resident_mib() -> float:
    """The memory this process holds in RAM (its resident set size), in MiB."""
    return psutil.Process().memory_info().rss / 2**20


def load_big(build, path, how: str) -> tuple[nn.Module, float]:
    """Build a model with `build()` and load the state_dict at `path` into it the
    way `how` names; return the model and how much resident memory grew, in MiB."""
    if how not in ("copy", "assign", "mmap"):
        raise ValueError(f"how must be 'copy', 'assign' or 'mmap', got {how!r}")
    if isinstance(build, nn.Module) or not callable(build):
        raise TypeError(f"build must be a function that returns the model, "
                        f"got {type(build).__name__}")
    start = resident_mib()
    with torch.device("cpu" if how == "copy" else "meta"):
        model = build()                      # on meta: shapes only, no memory
    state = torch.load(path, weights_only=True, mmap=how == "mmap")
    model.load_state_dict(state, assign=how != "copy")
    return model, resident_mib() - start
# --8<-- [end:load_big]


def demo_load_big() -> dict:
    # --8<-- [start:demo_load_big]
    torch.manual_seed(0)
    torch.save(nn.Linear(4096, 4096).state_dict(), "big.pt")  # 64 MiB of float32
    size = Path("big.pt").stat().st_size / 2**20
    growth = {}
    for how in ["copy", "assign", "mmap"]:
        big, growth[how] = load_big(lambda: nn.Linear(4096, 4096), "big.pt", how)
        print(f"{how:6}: memory grew by {growth[how] / size:.0f} x the file")
        del big                              # free it before the next way
    # --8<-- [end:demo_load_big]
    # --8<-- [start:demo_mmap_touch]
    start = resident_mib()
    big, _ = load_big(lambda: nn.Linear(4096, 4096), "big.pt", "mmap")
    sum(p.sum() for p in big.parameters())  # reads every weight once
    growth["mmap, used"] = resident_mib() - start
    print(f"mmap, every weight read: {growth['mmap, used'] / size:.0f} x the file")
    # --8<-- [end:demo_mmap_touch]
    growth["size"] = size
    return growth


# --8<-- [start:save_sharded]
INDEX = "model.safetensors.index.json"  # the name Hugging Face gives the index


def save_sharded(state: dict, folder, max_shard_bytes: int) -> dict:
    """Write `state` as safetensors shards of at most `max_shard_bytes` each (a
    bigger tensor gets a shard of its own) and an index that maps each name to its
    shard, as Hugging Face lays out a big model. Returns the index."""
    if not (isinstance(max_shard_bytes, int) and max_shard_bytes > 0):
        raise ValueError("max_shard_bytes must be a positive int, "
                         f"got {max_shard_bytes!r}")
    if not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise TypeError("state must map names to tensors, such as model.state_dict()")
    shards, size = [{}], 0
    for name, tensor in state.items():
        if shards[-1] and size + tensor.nbytes > max_shard_bytes:
            shards, size = shards + [{}], 0  # this one would not fit: a new shard
        shards[-1][name], size = tensor, size + tensor.nbytes
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    total = sum(t.nbytes for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": {}}
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, folder / name, metadata={"format": "pt"})
        index["weight_map"].update(dict.fromkeys(shard, name))
    (folder / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index
# --8<-- [end:save_sharded]


# --8<-- [start:load_sharded]
def load_sharded(model: nn.Module, folder) -> list[tuple[str, int]]:
    """Load the shards that `folder`'s index lists into `model` (best built on the
    meta device), one shard at a time, with assign=True. Returns each shard's name
    and how many bytes of tensors it brought."""
    index_file = Path(folder) / INDEX
    if not index_file.is_file():
        raise FileNotFoundError(f"no {INDEX} in '{folder}': save_sharded writes it "
                                "beside the shards")
    weight_map = json.loads(index_file.read_text())["weight_map"]
    missing = sorted(set(model.state_dict()) - set(weight_map))
    unexpected = sorted(set(weight_map) - set(model.state_dict()))
    if missing or unexpected:
        raise ValueError(f"the index does not fit the model: missing {missing}, "
                         f"unexpected {unexpected}")
    brought = []
    for name in sorted(set(weight_map.values())):
        shard = load_file(Path(folder) / name)  # only this shard is read now
        model.load_state_dict(shard, strict=False, assign=True)
        brought.append((name, sum(t.nbytes for t in shard.values())))
    tensors = [*model.named_parameters(), *model.named_buffers()]
    left = [name for name, t in tensors if t.is_meta]
    if left:
        raise ValueError(f"no values for {left} (not in any shard); they are still on "
                         "the meta device: build them after loading, or save them too")
    return brought
# --8<-- [end:load_sharded]


def demo_sharded() -> tuple[dict, nn.Module, nn.Module]:
    # --8<-- [start:demo_sharded]
    torch.manual_seed(0)
    source = Net().eval()
    index = save_sharded(source.state_dict(), "net_sharded", max_shard_bytes=8192)
    print(Path("net_sharded", INDEX).read_text(), end="")
    # --8<-- [end:demo_sharded]
    # --8<-- [start:demo_load_sharded]
    with torch.device("meta"):
        skeleton = Net()
    for name, nbytes in load_sharded(skeleton, "net_sharded"):
        print(f"{name}: {nbytes} bytes")
    x4 = torch.randn(4, 64)
    print(torch.equal(skeleton.eval()(x4), source(x4)))
    # --8<-- [end:demo_load_sharded]
    return index, skeleton, source


# --8<-- [start:rng_states]
def rng_states(loader_generator: torch.Generator | None = None) -> dict:
    """Every random number generator a training run draws from, as plain types
    and tensors, so that torch.load(weights_only=True) accepts them."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),                  # dropout, random init
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (name, key.tolist(), pos, has_gauss, gauss),  # no ndarray
        "python": random.getstate(),                     # a tuple of ints
        "loader": None if loader_generator is None else loader_generator.get_state(),
    }
# --8<-- [end:rng_states]


# --8<-- [start:save_checkpoint]
def save_checkpoint(path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    epoch: int, *, scheduler=None, scaler=None,
                    loader_generator: torch.Generator | None = None) -> None:
    """Everything needed to continue training exactly where it stopped."""
    if not (isinstance(model, nn.Module)
            and isinstance(optimizer, torch.optim.Optimizer)):
        raise TypeError("save_checkpoint needs an nn.Module and a "
                        f"torch.optim.Optimizer, got {type(model).__name__} "
                        f"and {type(optimizer).__name__}")
    torch.save({
        "epoch": epoch,                                  # epochs finished
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),             # Adam's moments, steps, lr
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "scaler": None if scaler is None else scaler.state_dict(),  # loss scale
        "rng": rng_states(loader_generator),
    }, path)
# --8<-- [end:save_checkpoint]


# --8<-- [start:restore_rng]
def restore_rng(checkpoint: dict,
                loader_generator: torch.Generator | None = None):
    """Put the random number generators back where save_checkpoint found them."""
    if not isinstance(checkpoint.get("rng"), dict):
        raise ValueError("the checkpoint has no 'rng' entry, which resuming needs; "
                         "it was not written by save_checkpoint")
    states = checkpoint["rng"]
    torch.set_rng_state(states["torch"].cpu())
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])
    name, key, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.array(key, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(states["python"])
    if loader_generator is not None:
        if states["loader"] is None:
            raise ValueError("the checkpoint holds no DataLoader generator state; "
                             "pass loader_generator= to save_checkpoint, "
                             "or restore without it")
        loader_generator.set_state(states["loader"].cpu())
# --8<-- [end:restore_rng]


# --8<-- [start:load_checkpoint]
def load_checkpoint(path, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    scheduler=None, scaler=None, map_location="cpu") -> dict:
    """Load a state_dict, or a checkpoint dict with a 'model' (or 'state_dict') entry,
    into `model`, and the entries 'optimizer', 'scheduler', 'scaler' into the
    objects given. Returns what the file holds: the caller reads 'epoch', 'rng'."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}; "
                        "build the model first, then load the checkpoint into it")
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError("optimizer must be a torch.optim.Optimizer or None, "
                        f"got {type(optimizer).__name__}")
    checkpoint, state = _read_checkpoint(Path(path), map_location)

    model_state = model.state_dict()
    if set(state) != set(model_state):
        raise ValueError(_key_mismatch_message(list(model_state), list(state)))
    wrong = [f"'{k}': file {tuple(state[k].shape)}, model {tuple(v.shape)}"
             for k, v in model_state.items() if state[k].shape != v.shape]
    if wrong:
        raise ValueError("size mismatch, the checkpoint was made for other layer "
                         f"sizes: {'; '.join(wrong)}")
    model.load_state_dict(state)  # copies into the model's tensors, on their device

    parts = {"optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    for key, part in parts.items():
        if part is not None and checkpoint.get(key) is None:
            raise ValueError(f"'{path}' has no '{key}' entry (a bare state_dict, or "
                             f"saved without {key}=); call load_checkpoint "
                             f"without {key}=")
    for key, part in parts.items():
        if part is not None:
            part.load_state_dict(checkpoint[key])
    return checkpoint
# --8<-- [end:load_checkpoint]


# --8<-- [start:is_torch_file]
# the start of a torch.save(..., _use_new_zipfile_serialization=False) file
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _is_torch_file(path: Path) -> bool:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/data.pkl") for name in archive.namelist())
    with open(path, "rb") as f:
        return f.read(len(_LEGACY_MAGIC)) == _LEGACY_MAGIC
# --8<-- [end:is_torch_file]


# --8<-- [start:read_checkpoint]
def _read_checkpoint(path: Path, map_location) -> tuple[object, dict]:
    """torch.load(weights_only=True) with checks; returns (file content, state_dict)."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at '{path}' "
                                f"(full path: {path.resolve()})")
    if not _is_torch_file(path):
        raise ValueError(f"'{path}' is not a torch.save file (torch.save writes a zip "
                         "archive with a data.pkl inside); check that you passed the "
                         "checkpoint, not another file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"'{path}' holds pickled Python objects, not only tensors (a whole model "
            "saved with torch.save(model)?), so torch.load(weights_only=True) refused "
            "it. Save model.state_dict() instead; only if you trust the file, load it "
            "with torch.load(path, weights_only=False)"
        ) from err
    if isinstance(checkpoint, dict):
        for entry in ("model", "state_dict"):
            if isinstance(checkpoint.get(entry), dict):
                return checkpoint, checkpoint[entry]
        if all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            return checkpoint, checkpoint  # a bare state_dict
        what = f"a dict with keys {list(checkpoint)}"
    else:
        what = type(checkpoint).__name__
    raise ValueError(f"'{path}' holds {what}; expected a state_dict or a checkpoint "
                     "dict with a 'model' or 'state_dict' entry")
# --8<-- [end:read_checkpoint]


# --8<-- [start:key_mismatch_message]
# prefixes that a wrapper puts in front of every key: where each comes from, how
# to save without it, and where to load a plain file instead
WRAPPERS = {
    "module.": ("a DataParallel/DistributedDataParallel wrapper",
                "save model.module.state_dict() next time",
                "load_checkpoint(path, model.module)"),
    "_orig_mod.": ("torch.compile (an OptimizedModule)",
                   "next time save the module you compiled, or compile in place "
                   "with model.compile() (its keys stay plain)",
                   "the module you passed to torch.compile"),
}


def _key_mismatch_message(model_keys: list[str], file_keys: list[str]) -> str:
    def preview(keys: list[str]) -> str:
        more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
        return f"{keys[:4]}{more}"

    in_model, in_file = set(model_keys), set(file_keys)
    missing = [k for k in model_keys if k not in in_file]
    unexpected = [k for k in file_keys if k not in in_model]
    lines = ["the checkpoint's keys do not match the model's:",
             f"  missing (the model has them, the file does not): {preview(missing)}",
             "  unexpected (the file has them, the model does not): "
             f"{preview(unexpected)}"]
    for prefix, (source, save, inner) in WRAPPERS.items():
        if file_keys and all(k.startswith(prefix) for k in file_keys):
            strip = "torch.nn.modules.utils.consume_prefix_in_state_dict_if_present"
            lines.append(f"  hint: every key in the file starts with '{prefix}', so it "
                         f"was saved from {source}; strip the prefix with {strip}"
                         f"(state, '{prefix}'), or {save}")
        elif model_keys and all(k.startswith(prefix) for k in model_keys):
            lines.append(f"  hint: every key of the model starts with '{prefix}' "
                         f"({source}); load into the wrapped model instead: {inner}")
    return "\n".join(lines)
# --8<-- [end:key_mismatch_message]


# --8<-- [start:data_and_build]
def synthetic_data(n: int = 256) -> TensorDataset:
    """64 random features; the label is the position of the largest of the first 10."""
    g = torch.Generator().manual_seed(42)
    X = torch.randn(n, 64, generator=g)
    return TensorDataset(X, X[:, :10].argmax(dim=1))


@dataclass
class Run:
    """What a training run changes as it goes."""
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    generator: torch.Generator                   # the DataLoader's shuffle order
    loader: DataLoader


def build(seed: int, dataset: TensorDataset, epochs: int = 4) -> Run:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=64, shuffle=True, generator=generator)
    return Run(model, optimizer, scheduler, torch.amp.GradScaler("cpu"),
               generator, loader)
# --8<-- [end:data_and_build]


# --8<-- [start:train]
def train(run: Run, epochs: int) -> None:
    run.model.train()
    for _ in range(epochs):
        for xb, yb in run.loader:
            xb = xb * random.uniform(0.9, 1.1)                   # Python's random
            noise = np.random.normal(0.0, 0.05, size=tuple(xb.shape))  # NumPy's
            xb = xb + torch.from_numpy(noise).float()
            run.optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.float16):  # GPU: "cuda"
                loss = F.cross_entropy(run.model(xb), yb)
            run.scaler.scale(loss).backward()    # the loss times the loss scale
            run.scaler.step(run.optimizer)       # unscales, skips inf/nan steps
            run.scaler.update()
        run.scheduler.step()                     # once per epoch
# --8<-- [end:train]


# --8<-- [start:optimizer_tensors]
def optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every tensor in the optimizer's state (Adam: step, exp_avg, exp_avg_sq)."""
    state = optimizer.state_dict()["state"]
    return [t for i in sorted(state) for _, t in sorted(state[i].items())]
# --8<-- [end:optimizer_tensors]


def demo_resume() -> tuple[Run, Run]:
    # --8<-- [start:demo_resume_a]
    data = synthetic_data()
    a = build(seed=0, dataset=data)
    train(a, epochs=4)
    # --8<-- [end:demo_resume_a]
    # --8<-- [start:demo_resume_b]
    b = build(seed=0, dataset=data)
    train(b, epochs=2)
    save_checkpoint("checkpoint.pt", b.model, b.optimizer, epoch=2,
                    scheduler=b.scheduler, scaler=b.scaler,
                    loader_generator=b.generator)
    # --8<-- [end:demo_resume_b]
    # --8<-- [start:demo_resume_c]
    c = build(seed=1, dataset=data)              # another seed: new objects
    checkpoint = load_checkpoint("checkpoint.pt", c.model, c.optimizer,
                                 c.scheduler, c.scaler)
    restore_rng(checkpoint, c.generator)
    train(c, epochs=4 - checkpoint["epoch"])
    # --8<-- [end:demo_resume_c]
    # --8<-- [start:demo_resume_compare]
    weights_a, weights_c = a.model.state_dict(), c.model.state_dict()
    print("weights identical:",
          all(torch.equal(weights_a[k], weights_c[k]) for k in weights_a))
    print("optimizer state identical:",
          all(torch.equal(x, y) for x, y in
              zip(optimizer_tensors(a.optimizer), optimizer_tensors(c.optimizer))))
    print("lr:", a.scheduler.get_last_lr() == c.scheduler.get_last_lr(),
          "| scaler:", a.scaler.state_dict() == c.scaler.state_dict())
    # --8<-- [end:demo_resume_compare]
    return a, c


def demo_load_errors() -> None:
    # --8<-- [start:demo_load_errors]
    Path("notes.txt").write_text("not a checkpoint")
    torch.save(nn.DataParallel(Net()).state_dict(), "from_dp.pt")  # 'module.' keys
    for path in ["missing.pt", "notes.txt", "from_dp.pt"]:
        try:
            load_checkpoint(path, Net())
        except (FileNotFoundError, ValueError) as err:
            print(f"{type(err).__name__}: {err}\n")
    # --8<-- [end:demo_load_errors]


def demo_compiled_prefix() -> None:
    # --8<-- [start:demo_compiled_prefix]
    compiled = torch.compile(Net())              # compiles on the first call only
    print(type(compiled).__name__, list(compiled.state_dict())[:2])
    torch.save(compiled.state_dict(), "compiled.pt")
    try:
        load_checkpoint("compiled.pt", Net())
    except ValueError as err:
        print(str(err).splitlines()[-1])
    load_checkpoint("compiled.pt", compiled)     # into the compiled model: fine
    # --8<-- [end:demo_compiled_prefix]


def demo_safetensors() -> dict:
    # --8<-- [start:demo_safetensors]
    torch.manual_seed(0)
    model = Net()
    save_file(model.state_dict(), "net.safetensors")
    state = load_file("net.safetensors")         # a dict of tensors; no pickle
    fresh = Net()
    print(fresh.load_state_dict(state))
    print(torch.equal(fresh.out.weight, model.out.weight))
    # --8<-- [end:demo_safetensors]
    # --8<-- [start:demo_safetensors_header]
    with open("net.safetensors", "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))  # 8 bytes: the header's length
        header = f.read(size).decode()             # then JSON, then raw bytes
    print(header[:header.index("},") + 1])           # the first tensor's entry
    # --8<-- [end:demo_safetensors_header]
    # --8<-- [start:demo_safetensors_tensors_only]
    try:
        save_file({"weight": torch.zeros(2), "epoch": 3}, "with_epoch.safetensors")
    except ValueError as err:
        print(err)
    save_file({"weight": torch.zeros(2)}, "meta.safetensors",
              metadata={"epoch": "3"})           # metadata: str to str only
    # --8<-- [end:demo_safetensors_tensors_only]
    return state


# --8<-- [start:tied]
class Tied(nn.Module):
    """A language-model head that shares its weight with the embedding."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight         # one tensor, two names
# --8<-- [end:tied]


def demo_safetensors_shared() -> None:
    # --8<-- [start:demo_safetensors_shared]
    try:
        save_file(Tied().state_dict(), "tied.safetensors")
    except RuntimeError as err:
        print(" ".join(str(err).split()).split(": [")[0])  # the first sentence
    # --8<-- [end:demo_safetensors_shared]
    # --8<-- [start:demo_safetensors_save_model]
    torch.manual_seed(0)
    tied = Tied()
    save_model(tied, "tied.safetensors")         # stores the tensor once
    fresh = Tied()
    print(load_model(fresh, "tied.safetensors"))  # (missing, unexpected)
    print(torch.equal(fresh.head.weight, tied.emb.weight),
          fresh.head.weight is fresh.emb.weight)
    # --8<-- [end:demo_safetensors_save_model]


def demo_to_tensor_vs_module() -> None:
    # --8<-- [start:demo_to_tensor]
    t = torch.ones(2)
    t.to(torch.float64)                # returns a NEW tensor, which is thrown away here
    print("tensor after t.to():", t.dtype)
    t = t.to(torch.float64)            # reassign to keep it
    print("after t = t.to():", t.dtype)
    # --8<-- [end:demo_to_tensor]
    # --8<-- [start:demo_to_module]
    layer = nn.Linear(2, 2)
    returned = layer.to(torch.float64)  # a module changes in place ...
    print("module after layer.to():", layer.weight.dtype,
          "| returns itself:", returned is layer)
    # --8<-- [end:demo_to_module]


def demo_device() -> None:
    # --8<-- [start:demo_device]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = Net().to(device)              # in place; the assignment is harmless
    x, y = torch.randn(8, 64), torch.randint(0, 10, (8,))
    x, y = x.to(device), y.to(device)     # tensors: reassign, or they stay put
    loss = F.cross_entropy(model(x), y)
    print(loss.device.type == device.type)
    # --8<-- [end:demo_device]


def demo_map_location() -> None:
    # --8<-- [start:demo_map_location]
    torch.save(nn.Linear(2, 2).state_dict(), "linear.pt")

    def show_location(storage, location):
        print("saved on:", location)     # the device tag stored with each tensor
        return storage                   # keep it where torch.load put it: the CPU

    torch.load("linear.pt", map_location=show_location, weights_only=True)
    # --8<-- [end:demo_map_location]
    # --8<-- [start:demo_map_location_forms]
    for where in ["cpu", torch.device("cpu"), {"cuda:1": "cuda:0"},
                  lambda storage, loc: storage]:
        state = torch.load("linear.pt", map_location=where, weights_only=True)
        print(f"{type(where).__name__:8} -> {state['weight'].device}")
    # --8<-- [end:demo_map_location_forms]


# --8<-- [start:exercise_atomic_save]
def atomic_save(obj, path) -> Path:
    """torch.save into a temporary file beside `path`, renamed over `path` only once
    the save has succeeded: an error while saving leaves the previous file whole."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(obj, tmp)
        tmp.replace(path)  # one step, on the same file system
    finally:
        tmp.unlink(missing_ok=True)  # gone after a failed save too
    return path
# --8<-- [end:exercise_atomic_save]


def exercise_atomic_save() -> dict:
    # --8<-- [start:exercise_atomic_save_check]
    atomic_save({"epoch": 1, "model": Net().state_dict()}, "ckpt.pt")
    try:
        atomic_save({"epoch": 2, "batches": (b for b in range(3))}, "ckpt.pt")
    except TypeError as err:  # pickle cannot save a generator
        print("TypeError:", err)
    print(torch.load("ckpt.pt", weights_only=True)["epoch"],
          sorted(p.name for p in Path().glob("ckpt*")))
    # --8<-- [end:exercise_atomic_save_check]
    return torch.load("ckpt.pt", weights_only=True)


# --8<-- [start:exercise_load_matching]
def load_matching(model: nn.Module, state: dict) -> list[str]:
    """Load the tensors of `state` whose name and shape match the model's; return
    the names left out, whose tensors keep their fresh initialisation."""
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)  # strict=False: some keys missing
    return sorted(set(state) - set(matching))
# --8<-- [end:exercise_load_matching]


def exercise_load_matching() -> tuple[nn.Module, dict, list[str]]:
    # --8<-- [start:exercise_load_matching_check]
    torch.manual_seed(0)
    model = Net()
    model.out = nn.Linear(32, 5)  # a new head: 5 classes instead of 10
    state = torch.load("net_weights.pt", weights_only=True)  # the 10-class model's
    left_out = load_matching(model, state)
    print(left_out)
    print(torch.equal(model.hidden.weight, state["hidden.weight"]))
    # --8<-- [end:exercise_load_matching_check]
    return model, state, left_out


def tour() -> None:
    """The page's demos in order (they write checkpoints: run it in an empty folder)."""
    print("--- demo_state_dict, demo_whole_model, demo_export")
    model, x = demo_state_dict()
    demo_whole_model(model, x)
    demo_whole_model_needs_class()
    demo_export(model, x)
    demo_export_load(model)
    demo_export_without_net(model)
    demo_aoti(model, torch.export.load("net.pt2"))  # C++: tens of seconds
    demo_meta()
    demo_load_big()
    demo_sharded()
    for demo in (demo_extension, demo_not_a_pickle, demo_refuse_payload,
                 demo_safe_globals, demo_common_refusals,
                 demo_assign_is_not_loading, demo_resume,
                 demo_load_errors, demo_compiled_prefix, demo_safetensors,
                 demo_safetensors_shared, demo_to_tensor_vs_module, demo_device,
                 demo_map_location, exercise_atomic_save, exercise_load_matching):
        print(f"--- {demo.__name__}")
        demo()


if __name__ == "__main__":  # in a temporary folder: the demos write checkpoints
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        tour()
