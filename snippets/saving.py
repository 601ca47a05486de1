"""Chapter `saving`: state_dict vs whole model, torch.export, what the file really is,
`weights_only`, full checkpoints that resume training exactly, `.to()` vs `.cuda()`,
and `map_location`.

Run it as `python -m snippets.saving` (or `python snippets/saving.py`); it writes its
files into the current folder. Sections marked `--8<-- [start:name]` are shown, in
this order, on the pages docs/{zh,en}/saving.md.
"""
# --8<-- [start:imports]
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F
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
    the last line it printed (an error's last line is the error itself)."""
    Path(name).write_text(code)
    done = subprocess.run([sys.executable, name], capture_output=True, text=True)
    return (done.stdout + done.stderr).strip().splitlines()[-1]
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


def demo_extension() -> None:
    # --8<-- [start:demo_extension]
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    names = ["weights.pt", "weights.pth", "weights.pkl"]
    for name in names:
        torch.save(state, name)
    data = [Path(name).read_bytes() for name in names]
    print("identical bytes:", data[0] == data[1] == data[2])
    print("zip archive:", zipfile.is_zipfile("weights.pkl"))
    print(zipfile.ZipFile("weights.pkl").namelist()[:3])
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


def demo_refuse_payload() -> str:
    # --8<-- [start:demo_refuse_payload]
    torch.save({"weight": torch.zeros(2), "extra": Payload()}, "evil.pt")
    try:
        torch.load("evil.pt", weights_only=True)  # True is the default since torch 2.6
    except pickle.UnpicklingError as err:
        message = str(err)
        print(message.split(".")[0])
        print(next(line.strip().split(" Please")[0] for line in message.splitlines()
                   if "Unsupported global" in line))
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


# --8<-- [start:save_checkpoint]
def save_checkpoint(path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    epoch: int, loader_generator: torch.Generator | None = None):
    """Everything needed to continue training exactly where it stopped."""
    if not (isinstance(model, nn.Module)
            and isinstance(optimizer, torch.optim.Optimizer)):
        raise TypeError("save_checkpoint needs an nn.Module and a "
                        f"torch.optim.Optimizer, got {type(model).__name__} "
                        f"and {type(optimizer).__name__}")
    cuda = torch.cuda.is_available()
    loader = loader_generator
    torch.save({
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),     # Adam's moments, step counts, lr
        "torch_rng": torch.get_rng_state(),      # dropout, random init
        "cuda_rng": torch.cuda.get_rng_state_all() if cuda else [],
        "loader_rng": None if loader is None else loader.get_state(),  # shuffle order
    }, path)
# --8<-- [end:save_checkpoint]


# --8<-- [start:restore_rng]
def restore_rng(checkpoint: dict, loader_generator: torch.Generator | None = None):
    """Put the random number generators back where save_checkpoint found them."""
    if "torch_rng" not in checkpoint:
        raise ValueError("this checkpoint has no RNG state; "
                         "it was not written by save_checkpoint")
    torch.set_rng_state(checkpoint["torch_rng"].cpu())
    if checkpoint.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in checkpoint["cuda_rng"]])
    if loader_generator is not None:
        if checkpoint.get("loader_rng") is None:
            raise ValueError("the checkpoint holds no DataLoader generator state; "
                             "pass loader_generator= to save_checkpoint, "
                             "or restore without it")
        loader_generator.set_state(checkpoint["loader_rng"].cpu())
# --8<-- [end:restore_rng]


# --8<-- [start:load_checkpoint]
def load_checkpoint(path, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None,
                    map_location="cpu") -> dict:
    """Load a state_dict, or a checkpoint dict with a 'model' (or 'state_dict') entry,
    into `model`, and the 'optimizer' entry into `optimizer` if one is given.
    Returns what the file holds, so the caller can read 'epoch' or the RNG states."""
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

    if optimizer is not None:
        if "optimizer" not in checkpoint:
            raise ValueError(f"'{path}' has no 'optimizer' entry (it is a bare "
                             "state_dict or a weights-only checkpoint); call "
                             "load_checkpoint without optimizer=")
        optimizer.load_state_dict(checkpoint["optimizer"])
    return checkpoint
# --8<-- [end:load_checkpoint]


# --8<-- [start:is_torch_file]
# how a file starts that torch.save(..., _use_new_zipfile_serialization=False) wrote
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
    if file_keys and all(k.startswith("module.") for k in file_keys):
        lines.append("  hint: every key in the file starts with 'module.', so it was "
                     "saved from a DataParallel/DistributedDataParallel wrapper; strip "
                     "the prefix with torch.nn.modules.utils."
                     "consume_prefix_in_state_dict_if_present(state, 'module.') "
                     "or save model.module.state_dict() next time")
    elif model_keys and all(k.startswith("module.") for k in model_keys):
        lines.append("  hint: every key of the model starts with 'module.' (a "
                     "DataParallel/DDP wrapper); load into the wrapped model instead: "
                     "load_checkpoint(path, model.module)")
    return "\n".join(lines)
# --8<-- [end:key_mismatch_message]


# --8<-- [start:data_and_build]
def synthetic_data(n: int = 256) -> TensorDataset:
    """64 random features; the label is the position of the largest of the first 10."""
    g = torch.Generator().manual_seed(42)
    X = torch.randn(n, 64, generator=g)
    return TensorDataset(X, X[:, :10].argmax(dim=1))


def build(seed: int, dataset: TensorDataset):
    """A model, its optimizer and a shuffling loader with its own generator."""
    torch.manual_seed(seed)
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=64, shuffle=True, generator=generator)
    return model, optimizer, generator, loader
# --8<-- [end:data_and_build]


# --8<-- [start:train]
def train(model, optimizer, loader, epochs: int) -> None:
    model.train()
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            optimizer.step()
# --8<-- [end:train]


# --8<-- [start:optimizer_tensors]
def optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every tensor in the optimizer's state (Adam: step, exp_avg, exp_avg_sq)."""
    state = optimizer.state_dict()["state"]
    return [t for i in sorted(state) for _, t in sorted(state[i].items())]
# --8<-- [end:optimizer_tensors]


def demo_resume() -> tuple:
    # --8<-- [start:demo_resume_a]
    data = synthetic_data()
    model_a, opt_a, _, loader_a = build(seed=0, dataset=data)
    train(model_a, opt_a, loader_a, epochs=4)
    # --8<-- [end:demo_resume_a]
    # --8<-- [start:demo_resume_b]
    model_b, opt_b, gen_b, loader_b = build(seed=0, dataset=data)
    train(model_b, opt_b, loader_b, epochs=2)
    save_checkpoint("checkpoint.pt", model_b, opt_b, epoch=2, loader_generator=gen_b)
    # --8<-- [end:demo_resume_b]
    # --8<-- [start:demo_resume_c]
    model_c, opt_c, gen_c, loader_c = build(seed=1, dataset=data)  # another seed
    checkpoint = load_checkpoint("checkpoint.pt", model_c, opt_c)
    restore_rng(checkpoint, gen_c)
    train(model_c, opt_c, loader_c, epochs=4 - checkpoint["epoch"])
    # --8<-- [end:demo_resume_c]
    # --8<-- [start:demo_resume_compare]
    weights_a, weights_c = model_a.state_dict(), model_c.state_dict()
    print("weights identical:",
          all(torch.equal(weights_a[k], weights_c[k]) for k in weights_a))
    print("optimizer state identical:",
          all(torch.equal(a, c) for a, c in
              zip(optimizer_tensors(opt_a), optimizer_tensors(opt_c))))
    # --8<-- [end:demo_resume_compare]
    return model_a, opt_a, model_c, opt_c


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


if __name__ == "__main__":
    print("--- demo_state_dict, demo_whole_model, demo_export")
    model, x = demo_state_dict()
    demo_whole_model(model, x)
    demo_whole_model_needs_class()
    demo_export(model, x)
    demo_export_load(model)
    demo_export_without_net(model)
    for demo in (demo_extension, demo_not_a_pickle, demo_refuse_payload,
                 demo_safe_globals, demo_assign_is_not_loading, demo_resume,
                 demo_load_errors, demo_to_tensor_vs_module, demo_device,
                 demo_map_location):
        print(f"--- {demo.__name__}")
        demo()
