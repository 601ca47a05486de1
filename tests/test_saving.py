"""Each claim of the saving chapter, asserted."""
import importlib.util
import inspect
import json
import os
import pickle
import re
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from pagekit.compare import torch_release
from pagekit.project import ROOT
from pagekit.run import remembered
from snippets import saving as S

TORCH_RELEASE = torch_release()  # (2, 14)
CPU_ONLY = pytest.mark.skipif(torch.cuda.is_available(), reason="shows CPU-only behaviour; a GPU is present")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def with_device_tag(src: Path, dst: Path, tag: str) -> Path:
    """Copy a CPU checkpoint, rewriting its device tag to `tag` ('cuda:0' is what torch.save
    writes for tensors on the first GPU). Lets a CPU machine see what a GPU-saved file does."""
    old = b"X\x03\x00\x00\x00cpu"  # pickle BINUNICODE 'cpu'
    new = b"X" + len(tag).to_bytes(4, "little") + tag.encode()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                assert old in data
                data = data.replace(old, new)
            zout.writestr(info.filename, data)
    return dst


# --- state_dict vs whole model ---------------------------------------------------------

def test_state_dict_round_trip(in_tmp):
    model, x = S.demo_state_dict()
    assert list(model.state_dict()) == ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    fresh = S.Net().eval()
    result = fresh.load_state_dict(torch.load("net_weights.pt", weights_only=True))
    assert type(result).__name__ == "_IncompatibleKeys" and result._fields == ("missing_keys", "unexpected_keys")
    assert repr(result) == "<All keys matched successfully>"
    assert torch.equal(fresh(x), model(x))


def test_dropout_has_no_state_so_it_is_not_in_the_state_dict():
    assert not any(k.startswith("drop") or k.startswith("act") for k in S.Net().state_dict())


def test_whole_model_pickles_the_class_by_module_path(in_tmp):
    mod = types.ModuleType("saving_test_models")
    exec("from torch import nn\n"
         "class Tiny(nn.Module):\n"
         "    def __init__(self):\n"
         "        super().__init__()\n"
         "        self.fc = nn.Linear(2, 2)\n"
         "    def forward(self, x):\n"
         "        return self.fc(x)\n", mod.__dict__)
    sys.modules["saving_test_models"] = mod
    try:
        torch.save(mod.Tiny(), "tiny.pt")
        assert type(torch.load("tiny.pt", weights_only=False)).__name__ == "Tiny"
        del mod.Tiny  # the module exists but the class is gone (renamed, moved)
        with pytest.raises(AttributeError, match="Can't get attribute 'Tiny' on <module 'saving_test_models'"):
            torch.load("tiny.pt", weights_only=False)
    finally:
        del sys.modules["saving_test_models"]
    with pytest.raises(ModuleNotFoundError, match="No module named 'saving_test_models'"):
        torch.load("tiny.pt", weights_only=False)
    with zipfile.ZipFile("tiny.pt") as z:  # only the name is stored, not the code
        pkl = z.read("tiny/data.pkl")
    assert b"saving_test_models" in pkl and b"Tiny" in pkl and b"self.fc(x)" not in pkl


def test_whole_model_loads_when_trusted(in_tmp):
    model, x = S.demo_state_dict()
    whole = S.demo_whole_model(model, x)
    assert isinstance(whole, S.Net) and whole is not model
    assert torch.equal(whole(x), model(x))


def test_whole_model_file_loads_only_where_its_class_is(in_tmp, monkeypatch):
    """Issue 14: a pickled whole model is no way to ship a model without its code."""
    net_source = inspect.getsource(S.Net)
    monkeypatch.setattr(S.Net, "__module__", "__main__")  # as when the page defines Net
    monkeypatch.setattr(sys.modules["__main__"], "Net", S.Net, raising=False)
    torch.save(S.Net(), "net_whole.pt")
    assert S.demo_whole_model_needs_class() == (
        "AttributeError: Can't get attribute 'Net' on <module '__main__' from "
        f"'{in_tmp / 'without_net.py'}'>")
    with_class = ("import torch\nfrom torch import nn\n\n" + net_source
                  + "\nprint(type(torch.load('net_whole.pt', weights_only=False)).__name__)\n")
    assert S.run_script("with_net.py", with_class) == "Net"


def test_run_script_returns_the_last_printed_line(in_tmp):
    assert S.run_script("two.py", "print('first')\nprint('last')\n") == "last"
    assert S.run_script("fails.py", "raise KeyError('x')\n") == "KeyError: 'x'"


# --- torch.export: shipping a model without its code ----------------------------------

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import os
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("export"))
    try:
        torch.manual_seed(0)
        model, x = S.Net().eval(), torch.randn(2, 64)
        S.demo_export(model, x)
        return model, x, torch.export.load("net.pt2"), Path.cwd()
    finally:
        os.chdir(cwd)


def test_exported_program_gives_the_same_outputs(exported, monkeypatch):
    model, x, loaded, folder = exported
    monkeypatch.chdir(folder)
    assert isinstance(loaded, torch.export.ExportedProgram)
    runnable = S.demo_export_load(model)
    assert isinstance(runnable, nn.Module)
    for batch in (1, 2, 5, 17):  # Dim("batch"): any batch size
        xb = torch.randn(batch, 64)
        assert torch.equal(runnable(xb), model(xb))
        assert torch.equal(runnable(xb), runnable(xb))  # dropout is off in the graph


def test_exported_graph_holds_operators_and_dropout_as_it_ran(exported, capsys):
    model, x, loaded, _ = exported
    ops = [str(n.target) for n in loaded.graph.nodes if n.op == "call_function"]
    assert ops == ["aten.linear.default", "aten.dropout.default", "aten.relu.default",
                   "aten.linear.default"]
    dropout = next(n for n in loaded.graph.nodes if str(n.target) == "aten.dropout.default")
    assert dropout.args[1:] == (0.2, False)  # p, train: recorded in eval mode
    in_train_mode = torch.export.export(S.Net().train(), (x,))
    dropout = next(n for n in in_train_mode.graph.nodes if "dropout" in str(n.target))
    assert dropout.args[1:] == (0.2, True)


def test_export_without_dynamic_shapes_accepts_only_the_example_batch(exported):
    model, x, _, _ = exported
    fixed = torch.export.export(model, (x,)).module()
    assert torch.equal(fixed(x), model(x))
    if TORCH_RELEASE == (2, 6):  # the page gives torch 2.6's words too
        error, words = RuntimeError, r"Expected input at \*args\[0\]\.shape\[0\] to be equal to 2, but got 5"
    else:
        error, words = AssertionError, r"Guard failed: x.size\(\)\[0\] == 2"
    with pytest.raises(error, match=words):
        fixed(torch.randn(5, 64))


def test_exported_file_loads_in_a_script_without_the_class(exported, monkeypatch):
    model, _, _, folder = exported
    monkeypatch.chdir(folder)
    monkeypatch.delenv("PYTHONPATH", raising=False)  # `snippets` cannot be imported there
    assert S.demo_export_without_net(model) == "True"
    torch.save(model, "whole_from_snippets.pt")  # the same model, pickled: refused there
    assert S.run_script("whole.py", "import torch\ntorch.load('whole_from_snippets.pt', "
                                    "weights_only=False)\n") == \
        "ModuleNotFoundError: No module named 'snippets'"


def test_onnx_export_builds_on_torch_export_and_needs_onnxscript(in_tmp):
    # the page: the default since torch 2.9; torch 2.6 still defaults to the TorchScript exporter
    assert inspect.signature(torch.onnx.export).parameters["dynamo"].default is (TORCH_RELEASE >= (2, 9))
    if importlib.util.find_spec("onnxscript") is not None:
        pytest.skip("onnxscript is installed here")
    with pytest.raises(ModuleNotFoundError, match="onnxscript"):
        torch.onnx.export(S.Net().eval(), (torch.randn(2, 64),), "net.onnx", dynamo=True)  # as on the page


# The page's skipped AOTInductor block, as the `exported` fixture and the test did it in-process: export, compile
# (C++: 8-10 s here), load, compare. Printed as JSON: what the block printed, the batches the package ran, and
# the package's files.
_AOTI = """
import contextlib, io, json, zipfile
import torch
from snippets import saving as S
torch.manual_seed(0)
model, x = S.Net().eval(), torch.randn(2, 64)
with contextlib.redirect_stdout(io.StringIO()):
    S.demo_export(model, x)
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    compiled = S.demo_aoti(model, torch.export.load("net.pt2"))
batches = {}
for batch in (1, 5):  # the batch dimension stayed free
    xb = torch.randn(batch, 64)
    batches[batch] = [list(compiled(xb).shape), torch.allclose(compiled(xb), model(xb))]
with zipfile.ZipFile("net_aoti.pt2") as z:  # C++ source and the library compiled from it
    names = z.namelist()
print(json.dumps({"printed": printed.getvalue(), "batches": batches, "names": names}))
"""


@pytest.mark.slow
def test_aoti_package_runs_the_exported_program(tmp_path):
    """In a fresh interpreter, remembered (pagekit.run.remembered) until a snippet, torch or the engine changes."""
    done = remembered([sys.executable, "-c", _AOTI], cwd=tmp_path, depends=[ROOT / "snippets"],
                      env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["printed"] == "True\n"
    assert facts["batches"] == {"1": [[1, 10], True], "5": [[5, 10], True]}
    names = facts["names"]
    assert any(n.endswith(".so") for n in names) and any(n.endswith(".cpp") for n in names)
    assert any("/aotinductor/" in n for n in names)


@pytest.mark.cuda
@pytest.mark.slow
def test_aoti_package_of_a_gpu_export_runs_on_the_gpu(in_tmp):
    """The page: a model exported with its weights and example inputs on a GPU gives a
    package of GPU kernels."""
    torch.manual_seed(0)
    model, x = S.Net().eval().cuda(), torch.randn(2, 64, device="cuda")
    program = torch.export.export(model, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    path = torch._inductor.aoti_compile_and_package(program, package_path="net_cuda.pt2")
    compiled = torch._inductor.aoti_load_package(path)
    x5 = torch.randn(5, 64, device="cuda")
    out = compiled(x5)
    assert out.device.type == "cuda"
    assert torch.allclose(out.cpu(), model(x5).cpu(), rtol=1e-3, atol=1e-4)

def test_notes_E28_aoti_api_and_its_cpp_loader_ship_with_torch():
    assert "package_path" in inspect.signature(torch._inductor.aoti_compile_and_package).parameters
    assert callable(torch._inductor.aoti_load_package)
    header = (Path(torch.__file__).parent / "include/torch/csrc/inductor/aoti_package"
              / "model_package_loader.h")
    assert "class TORCH_API AOTIModelPackageLoader" in header.read_text()
    assert "namespace torch::inductor" in header.read_text()


def test_notes_E28_executorch_onnx_and_onnx_runtime_are_not_installed_here():
    """The page shows no ExecuTorch or ONNX code because it cannot run it here."""
    for module in ("executorch", "onnx", "onnxscript", "onnxruntime"):
        if importlib.util.find_spec(module) is not None:
            pytest.fail(f"{module} is installed now: show and run its code on the saving page")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_page_no_longer_sells_a_whole_model_as_a_way_to_hide_code(lang):
    page = (Path(__file__).parents[1] / "docs" / lang / "saving.md").read_text()
    assert "should not need its code" not in page and "不想让使用者接触模型代码" not in page
    assert "torch.export.save" in page and "torch.export.load" in page and "ONNX" in page


# --- E20: the extension -------------------------------------------------------------------

def test_notes_E20_extension_changes_nothing_in_the_file(in_tmp):
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    names = ["weights.pt", "weights.pth", "weights.pkl"]
    for name in names:
        torch.save(state, name)
    blobs = {Path(n).read_bytes() for n in names}
    assert len(blobs) == 1  # byte-for-byte identical: torch.save output is deterministic
    for name in names:
        assert zipfile.is_zipfile(name)
        assert torch.equal(torch.load(name, weights_only=True)["w"], state["w"])


def test_notes_E20_the_file_stem_names_the_folder_inside_the_zip(in_tmp):
    state = {"w": torch.arange(6.0)}
    torch.save(state, "weights.pt")
    torch.save(state, "other.pt")
    a, b = zipfile.ZipFile("weights.pt"), zipfile.ZipFile("other.pt")
    assert all(m.startswith("weights/") for m in a.namelist())
    assert [m.replace("weights/", "other/", 1) for m in a.namelist()] == b.namelist()
    assert Path("weights.pt").read_bytes() != Path("other.pt").read_bytes()
    assert all(a.read(m) == b.read(m.replace("weights/", "other/", 1)) for m in a.namelist())


def test_extension_page_demo_output(in_tmp, capsys):
    S.demo_extension()
    out = capsys.readouterr().out
    assert "identical bytes: True" in out and "same bytes: False | same members: True" in out


def test_notes_E20_pkl_is_not_a_plain_pickle(in_tmp):
    torch.save({"w": torch.ones(2)}, "weights.pkl")
    assert Path("weights.pkl").read_bytes()[:1] == b"P"  # zip's 'PK' starts with pickle's PERSID opcode
    with open("weights.pkl", "rb") as f, pytest.raises(pickle.UnpicklingError) as err:
        pickle.load(f)
    assert str(err.value) == ("A load persistent id instruction was encountered,\n"
                              "but no persistent_load function was specified.")


def test_legacy_format_is_not_a_plain_pickle_either(in_tmp):
    torch.save({"w": torch.ones(2)}, "legacy.pkl", _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile("legacy.pkl")
    with open("legacy.pkl", "rb") as f:
        assert pickle.load(f) == 0x1950A86A20F9469CFC6C  # only torch's magic number
    assert torch.equal(torch.load("legacy.pkl", weights_only=True)["w"], torch.ones(2))


# --- E21: weights_only -------------------------------------------------------------------

def test_notes_E21_default_load_refuses_code_and_runs_nothing(in_tmp):
    torch.save({"weight": torch.zeros(2), "extra": S.Payload()}, "evil.pt")
    with pytest.raises(pickle.UnpicklingError) as err:
        torch.load("evil.pt")  # the default: weights_only=True since torch 2.6, no warning
    message = str(err.value)
    assert message.startswith("Weights only load failed.")
    # torch 2.6 names the function by its module, "GLOBAL builtins.exec", as the page says
    assert re.search(r"Unsupported global: GLOBAL (builtins\.)?exec was not an allowed global by default\.", message)
    assert "In PyTorch 2.6, we changed the default value of the `weights_only` argument" in message
    assert not Path("pwned.txt").exists()


def test_weights_only_false_runs_the_payload(in_tmp):
    torch.save({"weight": torch.zeros(2), "extra": S.Payload()}, "evil.pt")
    loaded = torch.load("evil.pt", weights_only=False)
    assert Path("pwned.txt").read_text() == "code ran"  # the file ran code while loading
    assert loaded["extra"] is None and torch.equal(loaded["weight"], torch.zeros(2))


def test_refuse_payload_page_demo(in_tmp, capsys):
    S.demo_refuse_payload()
    exec_name = "builtins.exec" if TORCH_RELEASE == (2, 6) else "exec"  # the page says both
    assert capsys.readouterr().out.splitlines() == [
        "Weights only load failed",
        f"WeightsUnpickler error: Unsupported global: GLOBAL {exec_name} was not an allowed global by default.",
        "pwned.txt exists: False",
    ]


def test_notes_E21_whole_model_refused_by_default(in_tmp):
    torch.save(S.Net(), "net_whole.pt")
    with pytest.raises(pickle.UnpicklingError) as err:
        torch.load("net_whole.pt")
    assert "Unsupported global: GLOBAL snippets.saving.Net was not an allowed global by default" in str(err.value)
    # the fix it names: torch 2.6 writes the bare class name, safe_globals([Net])
    assert re.search(r"torch\.serialization\.safe_globals\(\[(snippets\.saving\.)?Net\]\)", str(err.value))


def test_safe_globals_lists_and_allows_the_needed_classes(in_tmp):
    whole = S.demo_safe_globals()
    assert isinstance(whole, S.Net)
    assert sorted(torch.serialization.get_unsafe_globals_in_checkpoint("net_whole.pt")) == [
        "snippets.saving.Net", "torch.nn.modules.activation.ReLU",
        "torch.nn.modules.dropout.Dropout", "torch.nn.modules.linear.Linear"]
    with torch.serialization.safe_globals([S.Net]):  # one class short: Linear is refused next
        with pytest.raises(pickle.UnpicklingError, match="GLOBAL torch.nn.modules.linear.Linear"):
            torch.load("net_whole.pt", weights_only=True)


def test_add_safe_globals_is_process_wide(in_tmp):
    torch.save(S.Net(), "net_whole.pt")
    saved = torch.serialization.get_safe_globals()
    try:
        torch.serialization.add_safe_globals([S.Net, nn.Linear, nn.Dropout, nn.ReLU])
        assert isinstance(torch.load("net_whole.pt", weights_only=True), S.Net)
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)
    with pytest.raises(pickle.UnpicklingError):
        torch.load("net_whole.pt", weights_only=True)


def test_full_checkpoint_loads_with_weights_only(in_tmp):
    model = S.Net()
    opt = torch.optim.Adam(model.parameters())
    S.save_checkpoint("c.pt", model, opt, epoch=3, loader_generator=torch.Generator())
    ckpt = torch.load("c.pt", weights_only=True)  # only tensors, numbers, strings, dicts
    assert ckpt["epoch"] == 3 and set(ckpt) == {"epoch", "model", "optimizer", "scheduler", "scaler", "rng"}


# --- E26: assigning is not loading -----------------------------------------------------

def test_notes_E26_assigning_state_dict_loads_nothing():
    torch.manual_seed(0)
    model, trained = S.Net(), S.Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.state_dict = trained.state_dict()  # the notes' line
    assert all(torch.equal(p, before[k]) for k, p in model.named_parameters())
    assert type(model.state_dict).__name__ == "OrderedDict"
    with pytest.raises(TypeError) as err:
        model.state_dict()
    assert str(err.value) == "'collections.OrderedDict' object is not callable"
    assert callable(S.Net().state_dict)  # only that one instance is broken


def test_assign_page_demo(capsys):
    S.demo_assign_is_not_loading()
    assert capsys.readouterr().out.splitlines() == [
        "weights unchanged: True",
        "type(model.state_dict): OrderedDict",
        "TypeError: 'collections.OrderedDict' object is not callable",
        "<All keys matched successfully> | _IncompatibleKeys [] []",
        "weights loaded: True",
    ]


# --- E27: big checkpoints: meta, assign=True, mmap=True, shards -----------------------

def test_notes_E27_a_meta_model_has_no_data_and_copying_into_it_does_nothing(in_tmp, capsys):
    torch.manual_seed(0)
    torch.save(S.Net().state_dict(), "net_weights.pt")
    with torch.device("meta"):
        skeleton = S.Net()
    assert all(p.is_meta for p in skeleton.parameters())
    state = torch.load("net_weights.pt", weights_only=True)
    with pytest.warns(UserWarning, match="which is a no-op") as caught:
        result = skeleton.load_state_dict(state)
    assert repr(result) == "<All keys matched successfully>"
    assert len(caught) == len(state) == 4  # one warning per tensor
    assert all(p.is_meta for p in skeleton.parameters())  # nothing was copied


def test_notes_E27_assign_makes_the_loaded_tensors_the_parameters(in_tmp, capsys):
    S.demo_state_dict()
    skeleton = S.demo_meta()
    out = capsys.readouterr().out.splitlines()[-6:]
    assert out == [
        "Parameter containing:",
        "tensor(..., device='meta', size=(10,), requires_grad=True)",
        "meta | 4 warnings, the first:",
        "for hidden.weight: copying from a non-meta parameter in the checkpoint to a meta "
        "parameter in the current model, which is a no-op",
        "<All keys matched successfully>",
        "cpu Parameter True True",
    ]
    state = torch.load("net_weights.pt", weights_only=True)
    for name, tensor in skeleton.state_dict().items():
        assert tensor.device.type == "cpu" and torch.equal(tensor, state[name])


def test_assign_keeps_requires_grad_and_shares_memory_copy_does_not():
    torch.manual_seed(0)
    state = S.Net().state_dict()
    with torch.device("meta"):
        skeleton = S.Net()
    skeleton.out.weight.requires_grad_(False)  # e.g. a frozen layer
    skeleton.load_state_dict(state, assign=True)
    assert isinstance(skeleton.out.weight, nn.Parameter)
    assert skeleton.out.weight.requires_grad is False and skeleton.hidden.weight.requires_grad
    assert all(skeleton.state_dict()[k].data_ptr() == v.data_ptr() for k, v in state.items())
    torch.manual_seed(1)
    other = S.Net().state_dict()
    copied = S.Net()
    copied.load_state_dict(other)  # without assign: values copied into its own tensors
    assert not any(copied.state_dict()[k].data_ptr() == v.data_ptr() for k, v in other.items())
    with torch.no_grad():
        other["out.bias"].add_(1.0)
    assert not torch.equal(copied.out.bias, other["out.bias"])


class WithBuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.register_buffer("scale", torch.ones(2), persistent=False)  # not in state_dict


def test_a_non_persistent_buffer_stays_on_meta_and_load_sharded_names_it(in_tmp):
    source = WithBuffer()
    assert list(source.state_dict()) == ["fc.weight", "fc.bias"]
    with torch.device("meta"):
        skeleton = WithBuffer()
    skeleton.load_state_dict(source.state_dict(), assign=True)
    assert skeleton.scale.is_meta and not skeleton.fc.weight.is_meta
    S.save_sharded(source.state_dict(), "shards", max_shard_bytes=1000)
    with torch.device("meta"):
        skeleton = WithBuffer()
    with pytest.raises(ValueError, match=r"no values for \['scale'\] \(not in any shard\)"):
        S.load_sharded(skeleton, "shards")


@pytest.fixture(scope="module")
def big_growth(tmp_path_factory):
    import os
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("big"))
    try:
        return S.demo_load_big(), Path.cwd()
    finally:
        os.chdir(cwd)


def test_notes_E27_memory_copy_twice_assign_once_mmap_nothing_until_used(big_growth):
    """RSS growth, in multiples of the 64 MiB file (Linux, this machine's allocator)."""
    growth, _ = big_growth
    size = growth["size"]
    assert 64 <= size < 64.1
    assert 1.9 < growth["copy"] / size < 2.1
    assert 0.9 < growth["assign"] / size < 1.1
    assert growth["mmap"] / size < 0.05
    assert 0.9 < growth["mmap, used"] / size < 1.1


def test_mmap_reads_only_the_tensors_used(big_growth, monkeypatch):
    _, folder = big_growth
    monkeypatch.chdir(folder)
    size = Path("big.pt").stat().st_size / 2**20
    start = S.resident_mib()
    state = torch.load("big.pt", weights_only=True, mmap=True)
    state["bias"].sum()
    assert (S.resident_mib() - start) / size < 0.05  # the 16 KiB bias, not the 64 MiB weight
    state["weight"].sum()
    assert (S.resident_mib() - start) / size > 0.9


def test_mmap_is_copy_on_write_the_file_stays(in_tmp):
    torch.save({"w": torch.zeros(1024)}, "w.pt")
    state = torch.load("w.pt", weights_only=True, mmap=True)
    state["w"].add_(1.0)  # like a training step on an assigned parameter
    assert state["w"].sum().item() == 1024
    assert torch.load("w.pt", weights_only=True)["w"].sum().item() == 0


def test_load_big_rejects_bad_arguments(in_tmp):
    with pytest.raises(ValueError, match="how must be 'copy', 'assign' or 'mmap', got 'fast'"):
        S.load_big(S.Net, "x.pt", "fast")
    with pytest.raises(TypeError, match="build must be a function that returns the model, got Net"):
        S.load_big(S.Net(), "x.pt", "copy")


def test_load_big_builds_the_model_on_meta_only_when_assigning(in_tmp):
    torch.save(S.Net().state_dict(), "net.pt")
    devices = []

    def build():
        devices.append(torch.empty(0).device.type)  # the device in force while building
        return S.Net()

    for how in ("copy", "assign", "mmap"):
        model, _ = S.load_big(build, "net.pt", how)
        assert not any(p.is_meta for p in model.parameters())
    assert devices == ["cpu", "meta", "meta"]


def test_save_sharded_writes_the_hugging_face_layout(in_tmp, capsys):
    import json

    from safetensors import safe_open
    index, skeleton, source = S.demo_sharded()
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert sorted(p.name for p in Path("net_sharded").iterdir()) == names + ["model.safetensors.index.json"]
    assert json.loads(Path("net_sharded/model.safetensors.index.json").read_text()) == index
    state = source.state_dict()
    assert index["metadata"]["total_size"] == sum(t.nbytes for t in state.values()) == 9640
    assert index["weight_map"] == {"hidden.weight": names[0], "hidden.bias": names[1],
                                   "out.weight": names[1], "out.bias": names[1]}
    for name in names:
        with safe_open(f"net_sharded/{name}", framework="pt") as f:
            assert f.metadata() == {"format": "pt"}
            keys = list(f.keys())
            assert sum(f.get_tensor(k).nbytes for k in keys) <= 8192
            assert all(torch.equal(f.get_tensor(k), state[k]) for k in keys)
    out = capsys.readouterr().out.splitlines()
    assert out[-3:] == [f"{names[0]}: 8192 bytes", f"{names[1]}: 1448 bytes", "True"]
    assert all(torch.equal(skeleton.state_dict()[k], v) for k, v in state.items())


def test_save_sharded_gives_a_bigger_tensor_a_shard_of_its_own(in_tmp):
    state = S.Net().state_dict()
    index = S.save_sharded(state, "small", max_shard_bytes=200)  # hidden.weight: 8192 bytes
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) == 4 and shards[-1] == "model-00004-of-00004.safetensors"
    assert len(set(index["weight_map"].values())) == len(index["weight_map"])


def test_load_sharded_reads_one_shard_at_a_time(in_tmp, monkeypatch):
    torch.manual_seed(0)
    source = S.Net()
    S.save_sharded(source.state_dict(), "net_sharded", max_shard_bytes=8192)
    read, held = [], []
    real_load_file = S.load_file

    def load_file(path):
        shard = real_load_file(path)
        read.append(Path(path).name)
        held.append(sum(t.nbytes for t in shard.values()))
        return shard

    monkeypatch.setattr(S, "load_file", load_file)
    with torch.device("meta"):
        skeleton = S.Net()
    brought = S.load_sharded(skeleton, "net_sharded")
    assert read == [name for name, _ in brought] and len(read) == 2
    assert held == [n for _, n in brought] == [8192, 1448]
    assert max(held) < sum(held) == 9640
    assert all(torch.equal(skeleton.state_dict()[k], v) for k, v in source.state_dict().items())


def test_a_meta_model_of_40_gb_costs_no_memory():
    start = S.resident_mib()
    with torch.device("meta"):
        huge = nn.Linear(100_000, 100_000)  # 10^10 float32 numbers: 40 GB on a real device
    assert huge.weight.shape == (100_000, 100_000) and huge.weight.is_meta
    assert S.resident_mib() - start < 16  # MiB, of 40 GB: a few lazy initialisations at most


def test_load_sharded_into_a_cpu_model_replaces_and_frees_its_tensors(in_tmp):
    import gc
    import weakref
    torch.manual_seed(0)
    source = S.Net()
    S.save_sharded(source.state_dict(), "net_sharded", max_shard_bytes=8192)
    model = S.Net()  # built on the CPU: random weights
    old = [weakref.ref(p) for p in model.parameters()]
    S.load_sharded(model, "net_sharded")
    gc.collect()
    assert all(ref() is None for ref in old)  # the random weights are gone
    assert all(torch.equal(model.state_dict()[k], v) for k, v in source.state_dict().items())

def test_sharded_helpers_reject_what_they_cannot_use(in_tmp):
    with pytest.raises(ValueError, match="max_shard_bytes must be a positive int, got 0"):
        S.save_sharded(S.Net().state_dict(), "x", max_shard_bytes=0)
    with pytest.raises(TypeError, match="state must map names to tensors"):
        S.save_sharded({"epoch": 3}, "x", max_shard_bytes=100)
    with pytest.raises(FileNotFoundError, match="no model.safetensors.index.json in 'empty': "
                                                 "save_sharded writes it beside the shards"):
        S.load_sharded(S.Net(), "empty")
    S.save_sharded(S.Net().state_dict(), "net_sharded", max_shard_bytes=8192)
    with pytest.raises(ValueError, match=r"the index does not fit the model: missing \['fc.bias', "
                                         r"'fc.weight'\], unexpected \['hidden.bias'"):
        S.load_sharded(WithBuffer(), "net_sharded")


# --- resuming training ---------------------------------------------------------------

@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    import os
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("resume"))
    try:
        return S.demo_resume()
    finally:
        os.chdir(cwd)


def test_resume_gives_bit_identical_weights(resumed):
    a, c = resumed
    for (name, x), (_, y) in zip(a.model.state_dict().items(), c.model.state_dict().items()):
        assert torch.equal(x, y), name


def test_resume_gives_bit_identical_optimizer_state(resumed):
    a, c = resumed
    x, y = a.optimizer.state_dict(), c.optimizer.state_dict()
    assert x["param_groups"] == y["param_groups"]
    assert x["state"].keys() == y["state"].keys()
    for i in x["state"]:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(x["state"][i][key], y["state"][i][key]), (i, key)
    assert x["state"][0]["step"].item() == 4 * 4  # 256 samples / 64 per batch, 4 epochs


def test_resume_restores_the_scheduler_and_the_scaler(resumed):
    a, c = resumed
    assert a.scheduler.state_dict() == c.scheduler.state_dict()
    assert c.scheduler.last_epoch == 4 and c.scheduler.get_last_lr() == a.scheduler.get_last_lr()
    assert a.scaler.state_dict() == c.scaler.state_dict()
    assert c.scaler.state_dict()["_growth_tracker"] == 16  # steps since the scale last changed


def test_cpu_grad_scaler_is_enabled_and_warns_nothing():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scaler = torch.amp.GradScaler("cpu")
    assert scaler.is_enabled() and scaler.get_scale() == 65536.0


def test_the_resume_demo_trains_in_float16_where_the_scaler_does_something(monkeypatch):
    """The scaler is kept where it matters: under float16 autocast, scaling changes the result;
    in a float32 loop it multiplies and divides by a power of two and changes nothing."""
    seen = []
    real_ce = S.F.cross_entropy
    monkeypatch.setattr(S.F, "cross_entropy", lambda out, y: seen.append(out.dtype) or real_ce(out, y))
    data = S.synthetic_data()
    scaled, plain = S.build(seed=0, dataset=data), S.build(seed=0, dataset=data)
    S.train(scaled, epochs=2)
    plain.scaler = torch.amp.GradScaler("cpu", enabled=False)
    S.train(plain, epochs=2)
    assert set(seen) == {torch.float16}                         # the forward pass runs in float16
    assert not all(torch.equal(p, q) for p, q in zip(scaled.model.parameters(), plain.model.parameters()))

    def float32_run(enabled: bool):
        run = S.build(seed=0, dataset=data)
        scaler = torch.amp.GradScaler("cpu", enabled=enabled)
        for xb, yb in run.loader:
            run.optimizer.zero_grad()
            scaler.scale(S.F.cross_entropy(run.model(xb), yb)).backward()
            scaler.step(run.optimizer)
            scaler.update()
        return run.model
    assert all(torch.equal(p, q) for p, q in zip(float32_run(True).parameters(), float32_run(False).parameters()))


@pytest.mark.parametrize("lang, words", [("en", ("Do not copy it as a recipe for training on a CPU", "bfloat16")),
                                         ("zh", ("不要把它当作在 CPU 上训练的写法照抄", "bfloat16"))])
def test_the_page_says_the_scaler_is_there_for_the_checkpoint_not_for_cpu_training(lang, words):
    text = (Path(__file__).resolve().parents[1] / "docs" / lang / "saving.md").read_text(encoding="utf-8")
    paragraph = next(line for line in text.splitlines() if line.startswith("`train` "))
    assert all(w in paragraph for w in words) and "float16" in paragraph
    assert "runs the same code without a warning" not in text


def test_training_really_changed_the_weights(resumed):
    a, _ = resumed
    fresh = S.build(seed=0, dataset=S.synthetic_data())
    assert not torch.equal(a.model.hidden.weight, fresh.model.hidden.weight)


def test_checkpoint_holds_every_part_and_loads_with_weights_only(in_tmp):
    run = S.build(seed=0, dataset=S.synthetic_data(64))
    S.train(run, epochs=2)
    S.save_checkpoint("c.pt", run.model, run.optimizer, epoch=2, scheduler=run.scheduler,
                      scaler=run.scaler, loader_generator=run.generator)
    ckpt = torch.load("c.pt", weights_only=True)
    assert set(ckpt) == {"epoch", "model", "optimizer", "scheduler", "scaler", "rng"}
    assert set(ckpt["rng"]) == {"torch", "cuda", "numpy", "python", "loader"}
    assert ckpt["epoch"] == 2 and ckpt["scheduler"]["last_epoch"] == 2


@pytest.mark.parametrize("part", ["scheduler", "scaler", "torch", "numpy", "python", "loader"])
def test_resume_without_a_part_is_not_identical(in_tmp, resumed, part):
    a, _ = resumed
    data = S.synthetic_data()
    b = S.build(seed=0, dataset=data)
    S.train(b, epochs=2)
    S.save_checkpoint("c.pt", b.model, b.optimizer, epoch=2, scheduler=b.scheduler,
                      scaler=b.scaler, loader_generator=b.generator)
    c = S.build(seed=1, dataset=data)
    ckpt = S.load_checkpoint("c.pt", c.model, c.optimizer,
                             None if part == "scheduler" else c.scheduler,
                             None if part == "scaler" else c.scaler)
    if part in ("torch", "numpy", "python", "loader"):
        fresh = S.rng_states(c.generator)  # what a fresh start (seed=1) would use
        ckpt["rng"][part] = fresh[part]
    S.restore_rng(ckpt, c.generator)
    S.train(c, epochs=2)
    if part == "scaler":  # the loss scale is a power of two: only its bookkeeping differs
        assert a.scaler.state_dict()["_growth_tracker"] == 16
        assert c.scaler.state_dict()["_growth_tracker"] == 8
    else:
        assert not torch.equal(a.model.hidden.weight, c.model.hidden.weight)


def test_numpy_rng_state_round_trips_as_plain_types(in_tmp):
    import numpy as np
    np.random.seed(3)
    states = S.rng_states()
    torch.save(states, "rng.pt")
    expected = np.random.rand(3)
    np.random.seed(99)
    S.restore_rng({"rng": torch.load("rng.pt", weights_only=True)})
    assert (np.random.rand(3) == expected).all()
    assert isinstance(states["numpy"][1], list) and len(states["numpy"][1]) == 624


def test_restore_rng_rejects_what_it_cannot_restore(in_tmp):
    model = S.Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    S.save_checkpoint("c.pt", model, opt, epoch=0)  # no loader generator
    ckpt = torch.load("c.pt", weights_only=True)
    with pytest.raises(ValueError, match="holds no DataLoader generator state; pass loader_generator="):
        S.restore_rng(ckpt, torch.Generator())
    with pytest.raises(ValueError, match="has no 'rng' entry, which resuming needs"):
        S.restore_rng({"model": {}})


@pytest.mark.parametrize("key", ["optimizer", "scheduler", "scaler"])
def test_load_checkpoint_names_the_missing_entry_the_resume_needs(in_tmp, key):
    model = S.Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    S.save_checkpoint("no_parts.pt", model, opt, epoch=1)  # saved without scheduler/scaler
    torch.save(model.state_dict(), "bare.pt")
    parts = {"optimizer": opt,
             "scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=1),
             "scaler": torch.amp.GradScaler("cpu")}
    for path in (["bare.pt"] if key == "optimizer" else ["bare.pt", "no_parts.pt"]):
        with pytest.raises(ValueError, match=rf"^'{path}' has no '{key}' entry .* "
                                             rf"call load_checkpoint without {key}=$"):
            S.load_checkpoint(path, S.Net(), **{key: parts[key]})
    assert S.load_checkpoint("no_parts.pt", S.Net(), opt)["epoch"] == 1


# --- weights_only refuses what people commonly save -----------------------------------

def test_common_refusals_page_demo(in_tmp, capsys):
    S.demo_common_refusals()
    assert capsys.readouterr().out.splitlines() == [
        "Namespace: WeightsUnpickler error: Unsupported global: GLOBAL argparse.Namespace "
        "was not an allowed global by default.",
        "float64: WeightsUnpickler error: Unsupported global: GLOBAL "
        "numpy._core.multiarray.scalar was not an allowed global by default.",
        "Namespace(lr=0.01, epochs=4)",
        "{'lr': 0.01, 'epochs': 4} 0.92",
        "Namespace(lr=0.01, epochs=4)",
    ]


def test_namespace_and_numpy_scalar_are_refused_and_the_message_names_the_fix(in_tmp):
    import argparse

    import numpy as np
    torch.save({"args": argparse.Namespace(lr=0.1)}, "a.pt")
    torch.save({"best": np.float64(0.5)}, "b.pt")
    for path, name in [("a.pt", "argparse.Namespace"), ("b.pt", "numpy._core.multiarray.scalar")]:
        with pytest.raises(pickle.UnpicklingError) as err:
            torch.load(path, weights_only=True)
        message = str(err.value)
        assert message.startswith("Weights only load failed.")
        # torch 2.6 writes the bare name there (add_safe_globals([Namespace]))
        named = rf"\[({re.escape(name)}|{re.escape(name.rsplit('.', 1)[1])})\]"
        assert re.search(rf"torch\.serialization\.add_safe_globals\({named}\)", message)
        assert re.search(rf"torch\.serialization\.safe_globals\({named}\)", message)
    torch.serialization.add_safe_globals([argparse.Namespace])  # the process-wide fix
    try:
        assert torch.load("a.pt", weights_only=True)["args"].lr == 0.1
    finally:
        torch.serialization.clear_safe_globals()


def test_numpy_scalar_needs_three_globals(in_tmp):
    import numpy as np
    torch.save({"best": np.float64(0.5)}, "b.pt")
    allowed = [np._core.multiarray.scalar]
    with pytest.raises(pickle.UnpicklingError, match="Unsupported global: GLOBAL numpy.dtype was"):
        with torch.serialization.safe_globals(allowed):
            torch.load("b.pt", weights_only=True)
    allowed.append(np.dtype)
    with pytest.raises(pickle.UnpicklingError, match="numpy.dtypes.Float64DType"):
        with torch.serialization.safe_globals(allowed):
            torch.load("b.pt", weights_only=True)
    allowed.append(np.dtypes.Float64DType)
    with torch.serialization.safe_globals(allowed):
        assert torch.load("b.pt", weights_only=True)["best"] == np.float64(0.5)


def test_plain_types_load_with_weights_only(in_tmp):
    import argparse

    import numpy as np
    args, best = argparse.Namespace(lr=0.01, epochs=4), np.mean([0.91, 0.93])
    torch.save({"args": vars(args), "best": float(best)}, "plain.pt")
    loaded = torch.load("plain.pt", weights_only=True)
    assert argparse.Namespace(**loaded["args"]) == args
    assert type(loaded["best"]) is float and loaded["best"] == best


# --- safetensors ----------------------------------------------------------------------

def test_safetensors_round_trip_and_no_pickle(in_tmp, capsys, monkeypatch):
    def no_pickle(*args, **kwargs):
        raise AssertionError("safetensors must not unpickle")
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    state = S.demo_safetensors()
    out = capsys.readouterr().out.splitlines()
    assert out == ["<All keys matched successfully>", "True",
                   '{"hidden.bias":{"dtype":"F32","shape":[32],"data_offsets":[0,128]}',
                   "Key `epoch` is invalid, expected torch.Tensor but received <class 'int'>"]
    assert set(state) == set(S.Net().state_dict())
    assert not zipfile.is_zipfile("net.safetensors")  # not a torch.save archive


def test_safetensors_metadata_is_strings_only(in_tmp):
    from safetensors import safe_open
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, "m.safetensors", metadata={"epoch": "3"})
    with safe_open("m.safetensors", framework="pt") as f:
        assert f.metadata() == {"epoch": "3"}
    with pytest.raises(Exception, match="expected str|str"):  # the Rust side rejects non-str values
        save_file({"w": torch.zeros(2)}, "n.safetensors", metadata={"epoch": 3})


def test_safetensors_refuses_shared_tensors_save_model_keeps_them_tied(in_tmp, capsys):
    S.demo_safetensors_shared()
    assert capsys.readouterr().out.splitlines() == [
        "Some tensors share memory, this will lead to duplicate memory on disk and potential "
        "differences when loading them again",
        "(set(), [])",
        "True True",
    ]


def test_safetensors_is_pinned():
    req = (Path(__file__).resolve().parents[1] / "requirements.txt").read_text()
    import safetensors
    assert f"safetensors=={safetensors.__version__}" in req


# --- torch.compile's _orig_mod. prefix --------------------------------------------------

def test_compiled_model_keys_have_the_orig_mod_prefix_before_the_first_call():
    compiled = torch.compile(S.Net())
    assert type(compiled).__name__ == "OptimizedModule"
    assert list(compiled.state_dict()) == ["_orig_mod." + k for k in S.Net().state_dict()]


def test_load_checkpoint_explains_the_orig_mod_prefix(in_tmp, capsys):
    S.demo_compiled_prefix()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "OptimizedModule ['_orig_mod.hidden.weight', '_orig_mod.hidden.bias']"
    assert out[1] == ("  hint: every key in the file starts with '_orig_mod.', so it was saved from "
                      "torch.compile (an OptimizedModule); strip the prefix with "
                      "torch.nn.modules.utils.consume_prefix_in_state_dict_if_present(state, "
                      "'_orig_mod.'), or next time save the module you compiled, or compile in "
                      "place with model.compile() (its keys stay plain)")
    assert "_orig_mod.state_dict" not in "\n".join(out)  # _orig_mod is private: only a diagnosis


def test_orig_mod_prefix_the_fixes_work(in_tmp):
    from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present
    compiled = torch.compile(S.Net())
    state = compiled.state_dict()
    with pytest.raises(ValueError, match=r"unexpected .*\['_orig_mod.hidden.weight'"):
        torch.save(state, "compiled.pt")
        S.load_checkpoint("compiled.pt", S.Net())
    consume_prefix_in_state_dict_if_present(state, "_orig_mod.")
    torch.save(state, "stripped.pt")
    plain = S.Net()
    S.load_checkpoint("stripped.pt", plain)
    assert torch.equal(plain.out.weight, compiled._orig_mod.out.weight)
    model = S.Net()
    compiled = torch.compile(model)
    torch.save(model.state_dict(), "inner.pt")  # the module that was compiled: plain keys
    S.load_checkpoint("inner.pt", S.Net())
    with pytest.raises(ValueError, match=r"load into the wrapped model instead: "
                                         r"the module you passed to torch.compile"):
        S.load_checkpoint("inner.pt", torch.compile(S.Net()))
    S.load_checkpoint("inner.pt", model)  # and the compiled wrapper sees the loaded weights
    assert compiled.out.weight is model.out.weight


def test_model_compile_compiles_in_place_and_keeps_plain_keys(in_tmp):
    model = S.Net()
    keys = list(model.state_dict())
    assert model.compile() is None  # in place: the module itself is compiled
    assert type(model) is S.Net and list(model.state_dict()) == keys
    torch.save(model.state_dict(), "plain.pt")
    S.load_checkpoint("plain.pt", S.Net())


# --- load_checkpoint -------------------------------------------------------------------

def test_load_checkpoint_accepts_a_bare_state_dict_and_a_legacy_file(in_tmp):
    src = S.Net()
    torch.save(src.state_dict(), "bare.pt")
    torch.save(src.state_dict(), "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("bare.pt", "legacy.pt"):
        dst = S.Net()
        returned = S.load_checkpoint(name, dst)
        assert list(returned) == list(src.state_dict())
        assert all(torch.equal(a, b) for a, b in zip(src.parameters(), dst.parameters()))


def test_load_checkpoint_accepts_a_state_dict_entry(in_tmp):
    src = S.Net()
    torch.save({"state_dict": src.state_dict(), "epoch": 7}, "other_style.pt")
    dst = S.Net()
    assert S.load_checkpoint("other_style.pt", dst)["epoch"] == 7
    assert torch.equal(src.out.weight, dst.out.weight)


def test_load_checkpoint_missing_file_names_the_path(in_tmp):
    with pytest.raises(FileNotFoundError) as err:
        S.load_checkpoint("missing.pt", S.Net())
    assert str(err.value) == f"no checkpoint file at 'missing.pt' (full path: {in_tmp / 'missing.pt'})"


def test_load_checkpoint_rejects_a_text_file(in_tmp):
    Path("notes.txt").write_text("not a checkpoint")
    with pytest.raises((KeyError, pickle.UnpicklingError)):  # torch.load's own error: depends on the bytes
        torch.load("notes.txt", weights_only=True)
    with pytest.raises(ValueError, match=r"^'notes.txt' is not a torch.save file \(torch.save writes a zip"):
        S.load_checkpoint("notes.txt", S.Net())


def test_load_checkpoint_rejects_a_zip_that_torch_did_not_write(in_tmp):
    with zipfile.ZipFile("data.zip", "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="is not a torch.save file"):
        S.load_checkpoint("data.zip", S.Net())


def test_load_checkpoint_explains_the_module_prefix(in_tmp, capsys):
    S.demo_load_errors()
    out = capsys.readouterr().out
    assert "missing (the model has them, the file does not): ['hidden.weight', 'hidden.bias', " \
           "'out.weight', 'out.bias']" in out
    assert "unexpected (the file has them, the model does not): ['module.hidden.weight'," in out
    assert "hint: every key in the file starts with 'module.'" in out
    assert "consume_prefix_in_state_dict_if_present(state, 'module.')" in out


def test_load_checkpoint_prefix_hint_also_works_the_other_way(in_tmp):
    torch.save(S.Net().state_dict(), "plain.pt")
    with pytest.raises(ValueError, match=r"load into the wrapped model instead: load_checkpoint\(path, model.module\)"):
        S.load_checkpoint("plain.pt", nn.DataParallel(S.Net()))
    S.load_checkpoint("plain.pt", nn.DataParallel(S.Net()).module)  # the suggested fix works


def test_load_checkpoint_prefix_fix_with_consume_prefix(in_tmp):
    from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present
    state = nn.DataParallel(S.Net()).state_dict()
    consume_prefix_in_state_dict_if_present(state, "module.")
    torch.save(state, "fixed.pt")
    S.load_checkpoint("fixed.pt", S.Net())


def test_load_checkpoint_lists_other_key_mismatches_without_a_prefix_hint(in_tmp):
    torch.save(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).state_dict(), "seq.pt")
    with pytest.raises(ValueError) as err:
        S.load_checkpoint("seq.pt", S.Net())
    assert "unexpected (the file has them, the model does not): ['0.weight', '0.bias', '2.weight', '2.bias']" \
        in str(err.value)
    assert "hint" not in str(err.value)


def test_load_checkpoint_long_key_lists_are_shortened(in_tmp):
    big = nn.Sequential(*[nn.Linear(2, 2) for _ in range(5)])
    torch.save(big.state_dict(), "big.pt")
    with pytest.raises(ValueError, match=r"'1.bias'\] and 6 more"):
        S.load_checkpoint("big.pt", S.Net())


def test_load_checkpoint_rejects_other_sizes(in_tmp):
    other = S.Net()
    other.out = nn.Linear(32, 3)
    torch.save(other.state_dict(), "three_classes.pt")
    with pytest.raises(ValueError, match=r"size mismatch, .*'out.weight': file \(3, 32\), model \(10, 32\); "
                                         r"'out.bias': file \(3,\), model \(10,\)"):
        S.load_checkpoint("three_classes.pt", S.Net())


def test_load_checkpoint_rejects_a_whole_model_file(in_tmp):
    torch.save(S.Net(), "whole.pt")
    with pytest.raises(ValueError, match=r"holds pickled Python objects, not only tensors .* "
                                         r"torch.load\(path, weights_only=False\)$") as err:
        S.load_checkpoint("whole.pt", S.Net())
    assert isinstance(err.value.__cause__, pickle.UnpicklingError)


def test_load_checkpoint_rejects_other_content(in_tmp):
    torch.save([1, 2, 3], "list.pt")
    torch.save({"weights": {"a": 1}, "epoch": 1}, "dict.pt")
    with pytest.raises(ValueError, match="holds list; expected a state_dict or a checkpoint dict with a 'model' or 'state_dict' entry"):
        S.load_checkpoint("list.pt", S.Net())
    with pytest.raises(ValueError, match=r"holds a dict with keys \['weights', 'epoch'\]"):
        S.load_checkpoint("dict.pt", S.Net())


def test_helpers_reject_wrong_argument_types(in_tmp):
    torch.save(S.Net().state_dict(), "w.pt")
    with pytest.raises(TypeError, match="model must be an nn.Module, got OrderedDict; build the model first"):
        S.load_checkpoint("w.pt", S.Net().state_dict())
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer or None, got str"):
        S.load_checkpoint("w.pt", S.Net(), "adam")
    with pytest.raises(TypeError, match="needs an nn.Module and a torch.optim.Optimizer, got Net and list"):
        S.save_checkpoint("c.pt", S.Net(), [], epoch=0)


# --- E15: .to() and .cuda() ------------------------------------------------------

def test_notes_E15_tensor_to_is_not_in_place_module_to_is(capsys):
    S.demo_to_tensor_vs_module()
    assert capsys.readouterr().out.splitlines() == [
        "tensor after t.to(): torch.float32",
        "after t = t.to(): torch.float64",
        "module after layer.to(): torch.float64 | returns itself: True",
    ]
    layer = nn.Linear(2, 2)
    weight = layer.weight
    layer.to(torch.float64)
    assert layer.weight is weight  # the same Parameter object, new data
    t = torch.ones(2)
    assert t.to(torch.float32) is t  # nothing to convert: the same tensor comes back


def test_device_agnostic_code_runs_here(capsys):
    S.demo_device()
    assert capsys.readouterr().out == "True\n"


@CPU_ONLY
def test_notes_E15_cuda_call_fails_without_a_gpu():
    # CPU builds raise AssertionError ("Torch not compiled with CUDA enabled"),
    # CUDA builds on a machine without a driver raise RuntimeError
    with pytest.raises((AssertionError, RuntimeError)):
        torch.ones(2).cuda()
    with pytest.raises((AssertionError, RuntimeError)):
        nn.Linear(2, 2).cuda()


# --- E25: map_location ----------------------------------------------------------------

def test_map_location_page_demo(in_tmp, capsys):
    S.demo_map_location()
    assert capsys.readouterr().out.splitlines() == [
        "saved on: cpu", "saved on: cpu",
        "str      -> cpu", "device   -> cpu", "dict     -> cpu", "function -> cpu"]


@CPU_ONLY
def test_notes_E25_a_gpu_saved_state_dict_carries_its_device(in_tmp):
    torch.save(S.Net().state_dict(), "cpu.pt")
    with_device_tag(Path("cpu.pt"), Path("gpu.pt"), "cuda:0")
    seen = []
    torch.load("gpu.pt", weights_only=True, map_location=lambda s, loc: seen.append(loc) or s)
    assert set(seen) == {"cuda:0"}  # a state_dict, not a whole model, and still tagged
    with pytest.raises(RuntimeError) as err:
        torch.load("gpu.pt", weights_only=True)
    assert str(err.value) == (
        "Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is False. "
        "If you are running on a CPU-only machine, please use torch.load with "
        "map_location=torch.device('cpu') to map your storages to the CPU.")


@CPU_ONLY
@pytest.mark.parametrize("where", ["cpu", torch.device("cpu"), {"cuda:0": "cpu"}, lambda storage, loc: storage],
                         ids=["str", "device", "dict", "function"])
def test_map_location_forms_bring_a_gpu_file_to_the_cpu(in_tmp, where):
    torch.save(S.Net().state_dict(), "cpu.pt")
    with_device_tag(Path("cpu.pt"), Path("gpu.pt"), "cuda:0")
    state = torch.load("gpu.pt", weights_only=True, map_location=where)
    assert all(t.device.type == "cpu" for t in state.values())


@CPU_ONLY
def test_load_checkpoint_default_map_location_handles_a_gpu_file(in_tmp):
    src = S.Net()
    opt = torch.optim.Adam(src.parameters())
    S.save_checkpoint("cpu.pt", src, opt, epoch=1)
    with_device_tag(Path("cpu.pt"), Path("gpu.pt"), "cuda:0")
    dst = S.Net()
    S.load_checkpoint("gpu.pt", dst, torch.optim.Adam(dst.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(src.parameters(), dst.parameters()))


def test_a_whole_dataparallel_model_pickles_its_device_ids(in_tmp):
    torch.save(nn.DataParallel(S.Net()), "dp_whole.pt")
    loaded = torch.load("dp_whole.pt", weights_only=False)
    assert isinstance(loaded, nn.DataParallel)
    assert loaded.device_ids == list(range(torch.cuda.device_count()))  # [] here, [0, ...] on GPUs


# --- GPU machines ---------------------------------------------------------------------

@pytest.mark.cuda
def test_notes_E15_the_notes_line_assigns_the_moved_tensors_on_a_gpu():
    data, label = torch.ones(2, 64), torch.zeros(2, dtype=torch.long)
    scope = {"data": data, "label": label}
    exec("data, label = data.cuda(), label.cuda()", scope)  # the notes' line, verbatim
    assert scope["data"].is_cuda and scope["label"].is_cuda
    assert not data.is_cuda  # the originals stay put: the assignment is what moves them


@pytest.mark.cuda
def test_notes_E15_cuda_tensor_is_not_moved_in_place_module_is():
    t = torch.ones(2)
    t.cuda()
    assert t.device.type == "cpu"
    t = t.to("cuda")
    assert t.is_cuda
    layer = nn.Linear(2, 2)
    assert layer.cuda() is layer and layer.weight.is_cuda
    assert layer.to("cpu") is layer and not layer.weight.is_cuda


@pytest.mark.cuda
def test_notes_E25_cuda_state_dict_is_tagged_and_map_location_moves_it(in_tmp):
    model = S.Net().to("cuda")
    torch.save(model.state_dict(), "gpu.pt")
    seen = []
    torch.load("gpu.pt", weights_only=True, map_location=lambda s, loc: seen.append(loc) or s)
    assert set(seen) == {f"cuda:{torch.cuda.current_device()}"}
    assert torch.load("gpu.pt", weights_only=True)["hidden.weight"].is_cuda
    for where in ["cpu", torch.device("cpu"), {seen[0]: "cpu"}, lambda storage, loc: storage]:
        assert not torch.load("gpu.pt", weights_only=True, map_location=where)["hidden.weight"].is_cuda
    torch.save(S.Net().state_dict(), "cpu.pt")
    on_gpu = torch.load("cpu.pt", weights_only=True, map_location="cuda:0")
    assert on_gpu["hidden.weight"].device == torch.device("cuda:0")
    cpu_model = S.Net()
    S.load_checkpoint("gpu.pt", cpu_model)
    assert torch.equal(cpu_model.hidden.weight, model.hidden.weight.cpu())


@pytest.mark.cuda
def test_cuda_device_1_tag_needs_a_dict_map_location(in_tmp):
    torch.save(S.Net().state_dict(), "cpu.pt")
    with_device_tag(Path("cpu.pt"), Path("gpu1.pt"), "cuda:1")
    if torch.cuda.device_count() == 1:
        with pytest.raises(RuntimeError, match="Attempting to deserialize object on CUDA device 1 but "
                                               r"torch.cuda.device_count\(\) is 1"):
            torch.load("gpu1.pt", weights_only=True)
    state = torch.load("gpu1.pt", weights_only=True, map_location={"cuda:1": "cuda:0"})
    assert state["hidden.weight"].device == torch.device("cuda:0")


@pytest.mark.cuda
def test_cuda_load_checkpoint_into_a_gpu_model(in_tmp):
    src = S.Net()
    torch.save(src.state_dict(), "w.pt")
    dst = S.Net().to("cuda")
    S.load_checkpoint("w.pt", dst)  # tensors go to the CPU first, then are copied onto the GPU
    assert dst.hidden.weight.is_cuda and torch.equal(dst.hidden.weight.cpu(), src.hidden.weight)


# --- exercises -------------------------------------------------------------------------------------
def test_exercise_atomic_save_keeps_the_previous_checkpoint_when_saving_fails(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = S.Net().state_dict()
    assert S.atomic_save({"epoch": 1, "model": state}, "ckpt.pt") == Path("ckpt.pt")
    with pytest.raises(TypeError, match="cannot pickle 'generator' object"):
        S.atomic_save({"epoch": 2, "batches": (b for b in range(3))}, "ckpt.pt")
    loaded = torch.load("ckpt.pt", weights_only=True)
    assert loaded["epoch"] == 1 and all(torch.equal(loaded["model"][k], v) for k, v in state.items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]
    S.atomic_save({"epoch": 3}, "ckpt.pt")  # a save that succeeds replaces the file
    assert torch.load("ckpt.pt", weights_only=True) == {"epoch": 3}
    assert S.exercise_atomic_save()["epoch"] == 1  # the page's run


def test_exercise_atomic_save_is_needed_plain_torch_save_destroys_the_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"epoch": 1}, path)
    with pytest.raises(TypeError):
        torch.save({"epoch": 2, "batches": (b for b in range(3))}, path)
    # torch 2.6 words it "PytorchStreamReader failed locating file data.pkl: file not found"
    with pytest.raises(RuntimeError, match="corrupted|failed locating file data.pkl"):
        torch.load(path, weights_only=True)


def test_exercise_load_matching_loads_what_fits_and_names_the_rest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(1)
    trained = S.Net().state_dict()
    torch.save(trained, "net_weights.pt")
    model, state, left_out = S.exercise_load_matching()
    assert left_out == ["out.bias", "out.weight"]
    assert torch.equal(model.hidden.weight, trained["hidden.weight"])
    assert torch.equal(model.hidden.bias, trained["hidden.bias"])
    assert model.out.weight.shape == (5, 32)
    with pytest.raises(RuntimeError, match="size mismatch for out.weight"):
        fresh = S.Net()
        fresh.out = nn.Linear(32, 5)
        fresh.load_state_dict(trained, strict=False)  # strict=False does not skip a shape
    typo = {("hiden.weight" if k == "hidden.weight" else k): v for k, v in trained.items()}
    fresh = S.Net()
    assert S.load_matching(fresh, typo) == ["hiden.weight"]  # named, not silently dropped
