"""Chapter `multi-gpu`: nn.DataParallel and its `module.` prefix, the four save/load
combinations, removing the prefix safely, strict=False, checkpoints saved on a GPU,
whole pickled models. DDP lives in snippets/ddp_train.py (run with snippets/ddp_run.sh).

Run it as `python -m snippets.multi_gpu` (the page's runnable demos, in page order), or
`python -m snippets.multi_gpu --table > generated/multi-gpu-table.md` (the table on the
pages). Sections marked `--8<-- [start:name]` are shown on docs/{zh,en}/multi-gpu.md,
which is one program: the demo sections of `tour()` use what earlier ones defined. The
demos of the GPU-saved checkpoints (tests/fixtures/gpu-checkpoints/) are functions of
their own, run by tests/test_multi_gpu.py in a folder holding those files.
"""
import contextlib  # for the module's own runner, not shown

# --8<-- [start:imports]
import copy
import os
import pickle
from pathlib import Path

import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

# --8<-- [end:imports]


# --8<-- [start:net]
class Net(nn.Module):
    """The small model of the GPU checkpoints in tests/fixtures/gpu-checkpoints/."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
        self.submodule = nn.Linear(4, 2)  # a name that contains "module"

    def forward(self, x):
        return self.submodule(self.features(x).mean((2, 3)))

# --8<-- [end:net]


# --8<-- [start:four_combinations]
def make(kind: str) -> nn.Module:
    """A fresh Net, plain ("single") or wrapped ("DataParallel")."""
    model = Net()
    return model if kind == "single" else nn.DataParallel(model)


def try_load(target: nn.Module, sd: dict) -> str:
    """What target.load_state_dict(sd) says: its result, or the error."""
    try:
        return str(target.load_state_dict(sd))
    except RuntimeError as err:
        return f"RuntimeError: {err}"

# --8<-- [end:four_combinations]


# --8<-- [start:load_helper]
# --8<-- [start:read_state_dict]
def read_state_dict(source, map_location="cpu") -> dict:
    """A state_dict from a file written by torch.save, or a copy of a dict."""
    if isinstance(source, dict):
        sd = copy.copy(source)  # the caller's dict (and its _metadata) stays as it was
        if hasattr(source, "_metadata"):
            sd._metadata = copy.copy(source._metadata)
        return sd
    if not isinstance(source, (str, os.PathLike)):
        kind = type(source).__name__
        raise TypeError(f"source must be a file path or a state_dict, got {kind}")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint file at '{path}'; check the path and the working directory")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, KeyError, EOFError) as err:
        if "deserialize object on" in str(err):  # a GPU file, map_location=None
            raise  # torch's own message says what to do
        if "Unsupported global" in str(err):
            raise ValueError(
                f"'{path}' holds a pickled object (a whole model?), not a state_dict; "
                "if you trust the file, use torch.load(path, map_location='cpu', "
                "weights_only=False).state_dict()") from err
        raise ValueError(f"'{path}' is not a PyTorch checkpoint; "
                         "pass a file written by torch.save") from err

# --8<-- [end:read_state_dict]


# --8<-- [start:load_flexible]
def load_state_dict_flexible(model: nn.Module, source, map_location="cpu") -> nn.Module:
    """Load a state_dict (a dict, or a file written by torch.save) into model.

    Works whether the weights were saved with or without a DataParallel/DDP
    wrapper, and whether model is wrapped or not. Returns model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}; "
                        "build the model first")
    wrappers = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    target = model.module if isinstance(model, wrappers) else model
    sd = read_state_dict(source, map_location)
    is_dict = isinstance(sd, dict)
    if not (is_dict and all(isinstance(v, torch.Tensor) for v in sd.values())):
        keys = list(sd)[:5] if is_dict else type(sd).__name__
        raise TypeError(f"expected a state_dict (names -> tensors), got {keys}; "
                        "for a training checkpoint pass the model's entry, "
                        "e.g. checkpoint['model']")
    expected = set(target.state_dict())
    if not any(k.startswith("module.") for k in expected):  # not the model's own name
        consume_prefix_in_state_dict_if_present(sd, "module.")
    missing, unexpected = sorted(expected - set(sd)), sorted(set(sd) - expected)
    if missing or unexpected:
        raise ValueError(f"the checkpoint does not fit {type(target).__name__}: "
                         f"missing keys {missing}, unexpected keys {unexpected}; "
                         "was it saved from another model?")
    target.load_state_dict(sd)  # still raises on a shape mismatch
    return model

# --8<-- [end:load_flexible]
# --8<-- [end:load_helper]


# --8<-- [start:saved_devices]
def saved_devices(path) -> list[str]:
    """The device tag of every tensor storage in a checkpoint, read without a GPU."""
    tags = set()

    def stay_on_cpu(storage, location):  # torch.load calls this once per storage
        tags.add(location)
        return storage

    torch.load(path, map_location=stay_on_cpu, weights_only=True)
    return sorted(tags)

# --8<-- [end:saved_devices]


def tour() -> None:
    """The page's runnable blocks in page order, in one namespace."""
    # --8<-- [start:demo_dp]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = Net()
    dp = nn.DataParallel(model).to(device)  # the notes' .cuda() fails without a GPU
    print(dp.module is model)
    print(list(dp.state_dict()))
    out = dp(torch.rand(8, 1, 8, 8, device=device))  # split over the GPUs, gathered
    print(out.shape)
    # --8<-- [end:demo_dp]

    # --8<-- [start:demo_module_attr]
    inner = dp.module  # an attribute: the Net inside, no call
    print(type(inner).__name__, list(inner.state_dict()))
    # --8<-- [end:demo_module_attr]

    # --8<-- [start:demo_save_module]
    torch.save(dp.module.state_dict(), "net.pt")  # the inner model: no prefix
    # --8<-- [end:demo_save_module]

    # --8<-- [start:demo_load_on_cpu]
    sd = torch.load("net.pt", map_location="cpu", weights_only=True)  # on any machine
    plain = Net()
    print(plain.load_state_dict(sd))
    print(torch.equal(plain.submodule.weight, model.submodule.weight.cpu()))
    # --8<-- [end:demo_load_on_cpu]

    with contextlib.suppress(TypeError):  # the page shows this error
        # --8<-- [start:demo_module_call]
        dp.module()  # the notes' model.module(): runs Net.forward with no input
        # --8<-- [end:demo_module_call]

    # --8<-- [start:demo_four_combinations]
    for saved_from in ("single", "DataParallel"):
        sd = make(saved_from).state_dict()
        for loaded_into in ("single", "DataParallel"):
            result = try_load(make(loaded_into), sd)
            print(f"{saved_from} -> {loaded_into}: {result.splitlines()[0]}")
    # --8<-- [end:demo_four_combinations]

    # --8<-- [start:demo_consume_prefix]
    sd = dp.state_dict()  # keys start with "module."
    result = consume_prefix_in_state_dict_if_present(sd, "module.")  # edits sd in place
    print(result)  # None: never write sd = consume_prefix_in_state_dict_if_present(...)
    print(list(sd))
    print(Net().load_state_dict(sd))
    # --8<-- [end:demo_consume_prefix]

    # --8<-- [start:demo_removeprefix]
    clean = {k.removeprefix("module."): v for k, v in dp.state_dict().items()}
    print(list(clean))
    print(Net().load_state_dict(clean))
    # --8<-- [end:demo_removeprefix]

    # --8<-- [start:demo_notes_replace]
    broken = {k.replace("module.", ""): v for k, v in dp.state_dict().items()}
    print(list(broken))
    # --8<-- [end:demo_notes_replace]

    with contextlib.suppress(RuntimeError):  # the page shows this error
        # --8<-- [start:demo_notes_replace_load]
        Net().load_state_dict(broken)
        # --8<-- [end:demo_notes_replace_load]

    # --8<-- [start:demo_strict_false]
    partial = {k: v for k, v in model.state_dict().items() if k.startswith("features.")}
    partial["extra.weight"] = torch.zeros(1)
    result = Net().load_state_dict(partial, strict=False)
    print(result.missing_keys)
    print(result.unexpected_keys)
    # --8<-- [end:demo_strict_false]

    # --8<-- [start:demo_strict_false_trap]
    fresh = Net()
    before = [p.clone() for p in fresh.parameters()]
    result = fresh.load_state_dict(dp.state_dict(), strict=False)
    print(len(result.missing_keys), len(result.unexpected_keys))
    print(all(torch.equal(b, p) for b, p in zip(before, fresh.parameters())))
    # --8<-- [end:demo_strict_false_trap]

    with contextlib.suppress(RuntimeError):  # the page shows this error
        # --8<-- [start:demo_size_mismatch]
        wrong = model.state_dict()
        wrong["submodule.weight"] = torch.zeros(3, 4)
        Net().load_state_dict(wrong, strict=False)  # strict=False does not cover shapes
        # --8<-- [end:demo_size_mismatch]

    # --8<-- [start:demo_helper]
    torch.save(dp.state_dict(), "dp_weights.pt")  # keys start with "module."
    net_from_dp = load_state_dict_flexible(Net(), "dp_weights.pt")
    dp_from_net = load_state_dict_flexible(nn.DataParallel(Net()), "net.pt")
    weight = model.submodule.weight.cpu()
    print(torch.equal(net_from_dp.submodule.weight, weight))
    print(torch.equal(dp_from_net.module.submodule.weight, weight))
    # --8<-- [end:demo_helper]

    # --8<-- [start:demo_helper_errors]
    Path("notes.txt").write_text("not a checkpoint")
    attempts = {
        "missing file": lambda: load_state_dict_flexible(Net(), "missing.pt"),
        "not a checkpoint": lambda: load_state_dict_flexible(Net(), "notes.txt"),
        "another model": lambda: load_state_dict_flexible(nn.Linear(4, 2), "net.pt"),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except (FileNotFoundError, ValueError, TypeError) as err:
            print(f"{name}: {type(err).__name__}: {err}")
    # --8<-- [end:demo_helper_errors]

    # --8<-- [start:demo_saved_devices_cpu]
    print(saved_devices("net.pt"))  # saved from the CPU above
    # --8<-- [end:demo_saved_devices_cpu]


# The demos below read the checkpoints saved on a GPU (tests/fixtures/gpu-checkpoints/)
# from the working directory; tests/test_multi_gpu.py runs each one in a folder holding
# copies of them and compares what it prints with the page.

def demo_saved_devices() -> None:
    # --8<-- [start:demo_saved_devices]
    for name in ("sd_cuda.pt", "sd_cuda1.pt", "sd_dp_cuda.pt"):  # three state_dicts
        print(name, saved_devices(name))
    # --8<-- [end:demo_saved_devices]


def demo_no_map_location() -> None:
    # --8<-- [start:demo_no_map_location]
    torch.load("sd_cuda.pt", weights_only=True)  # a state_dict saved on cuda:0
    # --8<-- [end:demo_no_map_location]


def demo_map_location() -> None:
    # --8<-- [start:demo_map_location]
    sd = torch.load("sd_cuda.pt", map_location="cpu", weights_only=True)
    print({str(t.device) for t in sd.values()})
    print(Net().load_state_dict(sd))
    # --8<-- [end:demo_map_location]


def demo_map_location_dict() -> None:
    # --8<-- [start:demo_map_location_dict]
    # tagged cuda:1: to cuda:0 on a machine with one GPU, to the CPU elsewhere
    target = "cuda:0" if torch.cuda.is_available() else "cpu"
    sd = torch.load("sd_cuda1.pt", map_location={"cuda:1": target}, weights_only=True)
    print(Net().load_state_dict(sd))
    # --8<-- [end:demo_map_location_dict]


def demo_dp_checkpoint_on_cpu() -> None:
    # --8<-- [start:demo_dp_checkpoint_on_cpu]
    sd = torch.load("sd_dp_cuda.pt", map_location="cpu", weights_only=True)
    consume_prefix_in_state_dict_if_present(sd, "module.")
    from_gpu = Net()
    print(from_gpu.load_state_dict(sd))
    print(from_gpu(torch.rand(2, 1, 8, 8)).shape)
    # --8<-- [end:demo_dp_checkpoint_on_cpu]


def demo_whole_default() -> None:
    # --8<-- [start:demo_whole_default]
    torch.load("whole_cuda.pt", map_location="cpu", weights_only=True)  # the default
    # --8<-- [end:demo_whole_default]


def demo_whole_no_class() -> None:
    """Run where `__main__` defines no Net (the page's own program defines it)."""
    # --8<-- [start:demo_whole_no_class]
    torch.load("whole_cuda.pt", map_location="cpu", weights_only=False)  # no Net here
    # --8<-- [end:demo_whole_no_class]


def demo_whole_trusted() -> None:
    """Run where `__main__` defines Net, as the page does."""
    # --8<-- [start:demo_whole_trusted]
    whole = torch.load("whole_cuda.pt", map_location="cpu", weights_only=False)
    print(type(whole).__name__, next(whole.parameters()).device)
    # --8<-- [end:demo_whole_trusted]


def demo_whole_dp() -> None:
    """Run where `__main__` defines Net; ends with the RuntimeError the page shows."""
    # --8<-- [start:demo_whole_dp]
    whole_dp = torch.load("whole_dp_cuda.pt", map_location="cpu", weights_only=False)
    print(whole_dp.device_ids, next(whole_dp.parameters()).device)
    print(whole_dp.module(torch.rand(2, 1, 8, 8)).shape)  # the inner Net works
    whole_dp(torch.rand(2, 1, 8, 8))  # the wrapper wants its parameters on cuda:0
    # --8<-- [end:demo_whole_dp]


# ---- the table of the four combinations (generated/multi-gpu-table.md) ----

# (saved from, loaded into) -> expressions that load `sd` into `target` correctly
FIXES = {
    ("single", "DataParallel"): ["target.module.load_state_dict(sd)"],
    ("DataParallel", "single"): [
        'target.load_state_dict({k.removeprefix("module."): v for k, v in sd.items()})',
        "nn.DataParallel(target).load_state_dict(sd)",
    ],
}
CONSTRUCTORS = {"single": "Net()", "DataParallel": "nn.DataParallel(Net())"}
TABLE_COMMAND = "python -m snippets.multi_gpu --table > generated/multi-gpu-table.md"


def short_error(text: str) -> str:
    """An error's first line, then each key line cut after its first key."""
    first, *rest = text.splitlines()
    cells = [f"`{first}`"]
    for line in rest:
        head, sep, _ = line.strip().partition(", ")
        cells.append(f"`{head}{', …' if sep else ''}`")
    return "<br>".join(cells)


def combination_rows() -> list[dict]:
    """Perform the four loads and every fix; one dict per (saved from, loaded into)."""
    rows = []
    for saved_from in ("single", "DataParallel"):
        torch.manual_seed(0)
        sd = make(saved_from).state_dict()
        for loaded_into in ("single", "DataParallel"):
            result = try_load(make(loaded_into), sd)
            fixes = []
            for code in FIXES.get((saved_from, loaded_into), []):
                names = {"nn": nn, "target": make(loaded_into), "sd": sd}
                fixes.append((code, str(eval(code, names))))
            rows.append({"saved_from": saved_from, "loaded_into": loaded_into,
                         "result": result, "fixes": fixes})
    return rows


def combination_table() -> str:
    """The Markdown table on the pages, made by really loading each combination."""
    lines = ["| `sd = ….state_dict()` | `target =` | `target.load_state_dict(sd)` "
             "| `# fix` | `# fix ⇒` |",
             "| --- | --- | --- | --- | --- |"]
    for row in combination_rows():
        result = row["result"]
        error = result.startswith("RuntimeError")
        shown = short_error(result) if error else f"`{result}`"
        fixes = "<br>".join(f"`{code}`" for code, _ in row["fixes"]) or "—"
        fixed = "<br>".join(f"`{out}`" for _, out in row["fixes"]) or "—"
        lines.append(f"| `{CONSTRUCTORS[row['saved_from']]}` "
                     f"| `{CONSTRUCTORS[row['loaded_into']]}` "
                     f"| {shown} | {fixes} | {fixed} |")
    lines += ["", f"<small>`{TABLE_COMMAND}`</small>"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    if argv == ["--table"]:
        print(combination_table(), end="")
        return
    if argv:
        raise SystemExit(f"unknown arguments {argv}; use none (demos) or --table")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        tour()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
