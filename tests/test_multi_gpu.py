"""Each claim of the multi-gpu chapter, asserted (CPU here; `cuda` tests on a GPU machine)."""
from __future__ import annotations

import ast
import contextlib
import copy
import io
import os
import pickle
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

from pagekit.compare import differs, exact_environment, own_messages, torch_release
from pagekit.export import block_code
from pagekit.page import exception_type, expand, includes, parse_page, python_blocks, read
from pagekit.project import LANGS
from pagekit.run import error_line, remembered
from snippets import ddp_train
from snippets import multi_gpu as mg
from snippets.multi_gpu import Net

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "gpu-checkpoints"
CUDA = torch.cuda.is_available()
cpu_only = pytest.mark.skipif(CUDA, reason="on a CUDA machine this load succeeds: the error only occurs without a GPU")

KEYS = ["features.0.weight", "features.0.bias", "submodule.weight", "submodule.bias"]
DP_KEYS = [f"module.{k}" for k in KEYS]
NO_CUDA_ERROR = ("Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is False. "
                 "If you are running on a CPU-only machine, please use torch.load with "
                 "map_location=torch.device('cpu') to map your storages to the CPU.")
DP_DEVICE_ERROR = ("module must have its parameters and buffers on device cuda:0 (device_ids[0]) "
                   "but found one of them on device: cpu")


def quoted(keys):
    return ", ".join(f'"{k}"' for k in keys)


def load_error(target_name, missing, unexpected):
    """torch's exact message for missing and unexpected keys."""
    return (f"Error(s) in loading state_dict for {target_name}:\n"
            f"\tMissing key(s) in state_dict: {quoted(missing)}. \n"
            f"\tUnexpected key(s) in state_dict: {quoted(unexpected)}. ")


@pytest.fixture
def seeded_net():
    torch.manual_seed(0)
    return Net()


@pytest.fixture
def main_with_net(monkeypatch):
    """A fresh `__main__` that defines Net, as in the script that saved the whole models."""
    main = types.ModuleType("__main__")
    main.Net = Net
    monkeypatch.setitem(sys.modules, "__main__", main)
    return main


@pytest.fixture
def main_without_net(monkeypatch):
    main = types.ModuleType("__main__")
    monkeypatch.setitem(sys.modules, "__main__", main)
    return main


# ---- DataParallel and the `module.` prefix ----

def test_dp_prefixes_every_key_and_module_is_the_model(seeded_net):
    dp = nn.DataParallel(seeded_net)
    assert dp.module is seeded_net
    assert list(dp.state_dict()) == DP_KEYS
    assert list(dp.module.state_dict()) == KEYS
    assert dp(torch.rand(8, 1, 8, 8)).shape == (8, 2)


@cpu_only
def test_dp_without_gpus_just_calls_the_module(seeded_net):
    dp = nn.DataParallel(seeded_net)
    assert dp.device_ids == []
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(dp(x), seeded_net(x))


@cpu_only
def test_notes_E15_dp_then_cuda_fails_without_a_gpu(seeded_net):
    # the notes: wrap in nn.DataParallel, then .cuda(); the message depends on the torch build
    with pytest.raises((RuntimeError, AssertionError)):
        nn.DataParallel(seeded_net).cuda()


def test_notes_E23_module_call_runs_forward_without_input(seeded_net):
    dp = nn.DataParallel(seeded_net)
    with pytest.raises(TypeError) as info:
        dp.module()
    assert str(info.value) == "Net.forward() missing 1 required positional argument: 'x'"
    assert isinstance(dp.module, Net)  # the attribute is the model


def test_saving_dp_module_gives_a_file_without_prefix(tmp_path, seeded_net):
    dp = nn.DataParallel(seeded_net)
    path = tmp_path / "net.pt"
    torch.save(dp.module.state_dict(), path)
    sd = torch.load(path, map_location="cpu", weights_only=True)
    assert list(sd) == KEYS
    plain = Net()
    assert str(plain.load_state_dict(sd)) == "<All keys matched successfully>"
    assert torch.equal(plain.submodule.weight, seeded_net.submodule.weight)


def test_notes_E22_dataparallel_docstring_recommends_ddp(seeded_net):
    doc = " ".join(nn.DataParallel.__doc__.split())
    assert ("It is recommended to use :class:`~torch.nn.parallel.DistributedDataParallel`, instead of this "
            "class, to do multi-GPU training, even if there is only a single node.") in doc
    nn.DataParallel(seeded_net)  # and no warning says so (warnings are errors here)


# ---- the four combinations ----

def test_combination_single_to_single_matches():
    torch.manual_seed(0)
    assert mg.try_load(mg.make("single"), mg.make("single").state_dict()) == "<All keys matched successfully>"


def test_combination_single_to_dp_fails_and_dp_module_fixes_it():
    sd = mg.make("single").state_dict()
    dp = mg.make("DataParallel")
    with pytest.raises(RuntimeError) as info:
        dp.load_state_dict(sd)
    assert str(info.value) == load_error("DataParallel", DP_KEYS, KEYS)
    assert str(dp.module.load_state_dict(sd)) == "<All keys matched successfully>"


def test_combination_dp_to_single_fails_and_strip_or_wrap_fixes_it():
    sd = mg.make("DataParallel").state_dict()
    with pytest.raises(RuntimeError) as info:
        Net().load_state_dict(sd)
    assert str(info.value) == load_error("Net", KEYS, DP_KEYS)
    stripped = {k.removeprefix("module."): v for k, v in sd.items()}
    assert str(Net().load_state_dict(stripped)) == "<All keys matched successfully>"
    assert str(nn.DataParallel(Net()).load_state_dict(sd)) == "<All keys matched successfully>"


def test_combination_dp_to_dp_matches():
    assert mg.try_load(mg.make("DataParallel"), mg.make("DataParallel").state_dict()) == \
        "<All keys matched successfully>"


def test_combination_rows_are_the_four_cells_with_working_fixes():
    rows = {(r["saved_from"], r["loaded_into"]): r for r in mg.combination_rows()}
    assert list(rows) == [("single", "single"), ("single", "DataParallel"),
                          ("DataParallel", "single"), ("DataParallel", "DataParallel")]
    assert rows["single", "DataParallel"]["result"] == "RuntimeError: " + load_error("DataParallel", DP_KEYS, KEYS)
    assert rows["DataParallel", "single"]["result"] == "RuntimeError: " + load_error("Net", KEYS, DP_KEYS)
    for pair in [("single", "single"), ("DataParallel", "DataParallel")]:
        assert rows[pair]["result"] == "<All keys matched successfully>" and rows[pair]["fixes"] == []
    for pair in [("single", "DataParallel"), ("DataParallel", "single")]:
        assert rows[pair]["fixes"] and all(out == "<All keys matched successfully>" for _, out in rows[pair]["fixes"])


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_generated_table_is_what_the_command_writes_now(lang):
    """The table the page includes is rendered again here: if a new PyTorch changes a result or a
    message, this fails until `python -m snippets.multi_gpu --table` is rerun."""
    committed = (ROOT / "generated" / f"multi-gpu-table.{lang}.md").read_text(encoding="utf-8")
    assert mg.combination_table(lang) == committed, f"torch changed a result; rerun `{mg.TABLE_COMMAND}`"


def test_table_command_writes_the_table_in_each_language(tmp_path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        mg.main(["--table", str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi-gpu-table.en.md", "multi-gpu-table.zh.md"]
    for lang in LANGS:
        assert (tmp_path / f"multi-gpu-table.{lang}.md").read_text(encoding="utf-8") == mg.combination_table(lang)
    assert out.getvalue().count("wrote ") == 2
    assert mg.combination_table("zh").splitlines()[2:] == mg.combination_table("en").splitlines()[2:]
    with pytest.raises(ValueError, match="lang must be one of"):
        mg.combination_table("fr")
    with pytest.raises(SystemExit, match="unknown arguments"):
        mg.main(["--tabel"])


# ---- removing the prefix ----

def test_consume_prefix_edits_in_place_and_returns_none(seeded_net):
    sd = nn.DataParallel(seeded_net).state_dict()
    assert consume_prefix_in_state_dict_if_present(sd, "module.") is None
    assert list(sd) == KEYS
    assert list(sd._metadata) == ["", "features", "features.0", "features.1", "submodule"]
    assert str(Net().load_state_dict(sd)) == "<All keys matched successfully>"
    consume_prefix_in_state_dict_if_present(sd, "module.")  # no prefix: nothing changes
    assert list(sd) == KEYS


def test_assigning_consume_prefix_result_loses_the_dict(seeded_net):
    sd = consume_prefix_in_state_dict_if_present(nn.DataParallel(seeded_net).state_dict(), "module.")
    assert sd is None
    with pytest.raises(TypeError) as info:  # what the next line of such code meets
        Net().load_state_dict(sd)
    assert str(info.value) == "Expected state_dict to be dict-like, got <class 'NoneType'>."


def test_removeprefix_keeps_submodule_names(seeded_net):
    clean = {k.removeprefix("module."): v for k, v in nn.DataParallel(seeded_net).state_dict().items()}
    assert list(clean) == KEYS
    assert str(Net().load_state_dict(clean)) == "<All keys matched successfully>"


def test_notes_E24_replace_corrupts_submodule_keys():
    # the GPU fixture's Net has an attribute named `submodule`
    sd = torch.load(FIXTURES / "sd_dp_cuda.pt", map_location="cpu", weights_only=True)
    broken = {k.replace("module.", ""): v for k, v in sd.items()}  # the notes' code
    assert list(broken) == ["features.0.weight", "features.0.bias", "subweight", "subbias"]
    with pytest.raises(RuntimeError) as info:
        Net().load_state_dict(broken)
    assert str(info.value) == load_error("Net", ["submodule.weight", "submodule.bias"], ["subweight", "subbias"])
    safe = {k.removeprefix("module."): v for k, v in sd.items()}
    assert str(Net().load_state_dict(safe)) == "<All keys matched successfully>"


# ---- strict=False ----

def test_strict_false_returns_the_incompatible_keys(seeded_net):
    partial = {k: v for k, v in seeded_net.state_dict().items() if k.startswith("features.")}
    partial["extra.weight"] = torch.zeros(1)
    result = Net().load_state_dict(partial, strict=False)
    assert type(result).__name__ == "_IncompatibleKeys"
    assert result.missing_keys == ["submodule.weight", "submodule.bias"]
    assert result.unexpected_keys == ["extra.weight"]


def test_strict_false_with_a_dp_dict_silently_loads_nothing(seeded_net):
    torch.manual_seed(1)
    model = Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = model.load_state_dict(nn.DataParallel(seeded_net).state_dict(), strict=False)
    assert result.missing_keys == KEYS and result.unexpected_keys == DP_KEYS
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not torch.equal(model.submodule.weight, seeded_net.submodule.weight)


def test_strict_false_still_raises_on_a_size_mismatch(seeded_net):
    wrong = seeded_net.state_dict()
    wrong["submodule.weight"] = torch.zeros(3, 4)
    with pytest.raises(RuntimeError) as info:
        Net().load_state_dict(wrong, strict=False)
    assert str(info.value) == (
        "Error(s) in loading state_dict for Net:\n\tsize mismatch for submodule.weight: copying a param with shape "
        "torch.Size([3, 4]) from checkpoint, the shape in current model is torch.Size([2, 4]).")


# ---- load_state_dict_flexible ----

def test_helper_loads_with_or_without_a_wrapper_on_either_side(tmp_path, seeded_net):
    dp = nn.DataParallel(seeded_net)
    torch.save(dp.state_dict(), tmp_path / "dp.pt")
    torch.save(seeded_net.state_dict(), tmp_path / "plain.pt")
    for source in (tmp_path / "dp.pt", str(tmp_path / "plain.pt"), dp.state_dict(), seeded_net.state_dict()):
        for target in (Net(), nn.DataParallel(Net())):
            loaded = mg.load_state_dict_flexible(target, source)
            assert loaded is target
            inner = target.module if isinstance(target, nn.DataParallel) else target
            assert all(torch.equal(a, b) for a, b in zip(inner.parameters(), seeded_net.parameters()))


def test_helper_leaves_the_callers_dict_as_it_was(seeded_net):
    sd = nn.DataParallel(seeded_net).state_dict()
    metadata_keys = list(sd._metadata)
    mg.load_state_dict_flexible(Net(), sd)
    assert list(sd) == DP_KEYS
    assert list(sd._metadata) == metadata_keys and metadata_keys[1] == "module"


def test_helper_keeps_a_model_attribute_really_named_module(tmp_path):
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.module = nn.Linear(2, 2)  # its own keys start with "module."

    torch.manual_seed(0)
    source = Holder()
    assert list(source.state_dict()) == ["module.weight", "module.bias"]
    loaded = mg.load_state_dict_flexible(Holder(), source.state_dict())
    assert torch.equal(loaded.module.weight, source.module.weight)


def test_helper_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoint file at '.*missing\.pt'; check the path"):
        mg.load_state_dict_flexible(Net(), tmp_path / "missing.pt")


@pytest.mark.parametrize("content", [b"not a checkpoint", b"", b"PK\x03\x04broken zip"])
def test_helper_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"is not a PyTorch checkpoint; pass a file written by torch\.save"):
        mg.load_state_dict_flexible(Net(), path)


def test_helper_whole_model_file():
    with pytest.raises(ValueError, match=r"holds a pickled object \(a whole model\?\), not a state_dict"):
        mg.load_state_dict_flexible(Net(), FIXTURES / "whole_cuda.pt")


def test_helper_training_checkpoint_dict(seeded_net):
    checkpoint = {"model": seeded_net.state_dict(), "epoch": 3}
    with pytest.raises(TypeError, match=r"expected a state_dict .*\['model', 'epoch'\].*checkpoint\['model'\]"):
        mg.load_state_dict_flexible(Net(), checkpoint)


def test_helper_mismatched_keys_lists_them(seeded_net):
    with pytest.raises(ValueError) as info:
        mg.load_state_dict_flexible(nn.Linear(4, 2), nn.DataParallel(seeded_net).state_dict())
    assert str(info.value) == (
        "the checkpoint does not fit Linear: missing keys ['bias', 'weight'], unexpected keys "
        "['features.0.bias', 'features.0.weight', 'submodule.bias', 'submodule.weight']; "
        "was it saved from another model?")


def test_helper_shape_mismatch_raises_torchs_error(seeded_net):
    sd = seeded_net.state_dict()
    sd["submodule.weight"] = torch.zeros(3, 4)
    with pytest.raises(RuntimeError, match="size mismatch for submodule.weight"):
        mg.load_state_dict_flexible(Net(), sd)


@pytest.mark.parametrize("model, source, message", [
    ("not a model", {}, "model must be an nn.Module, got str; build the model first"),
    (nn.Linear(1, 1), 42, "source must be a file path or a state_dict, got int"),
])
def test_helper_rejects_wrong_types(model, source, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        mg.load_state_dict_flexible(model, source)


def test_helper_on_the_gpu_saved_dp_file():
    model = mg.load_state_dict_flexible(Net(), FIXTURES / "sd_dp_cuda.pt")
    assert all(p.device.type == "cpu" for p in model.parameters())


@cpu_only
def test_helper_passes_torchs_cuda_error_through_when_map_location_is_none():
    with pytest.raises(RuntimeError, match=re.escape(NO_CUDA_ERROR)):
        mg.load_state_dict_flexible(Net(), FIXTURES / "sd_cuda.pt", map_location=None)


# ---- checkpoints saved on a GPU (the fixtures) ----

def test_fixture_weights_are_a_seeded_net(seeded_net):
    for name in ("sd_cuda.pt", "sd_cuda1.pt"):
        sd = torch.load(FIXTURES / name, map_location="cpu", weights_only=True)
        assert all(torch.equal(v, seeded_net.state_dict()[k]) for k, v in sd.items())


def test_saved_devices_reads_the_tags():
    assert mg.saved_devices(FIXTURES / "sd_cuda.pt") == ["cuda:0"]
    assert mg.saved_devices(FIXTURES / "sd_cuda1.pt") == ["cuda:1"]
    assert mg.saved_devices(FIXTURES / "sd_dp_cuda.pt") == ["cuda:0"]


@cpu_only
def test_notes_E25_a_state_dict_carries_the_gpu_device_too(main_with_net):
    # the notes: only a whole model stores the GPU id. Both files fail alike without map_location.
    with pytest.raises(RuntimeError) as from_state_dict:
        torch.load(FIXTURES / "sd_cuda.pt", weights_only=True)
    with pytest.raises(RuntimeError) as from_whole_model:
        torch.load(FIXTURES / "whole_cuda.pt", weights_only=False)
    assert str(from_state_dict.value) == str(from_whole_model.value) == NO_CUDA_ERROR


@pytest.mark.parametrize("location", ["cpu", torch.device("cpu"), {"cuda:0": "cpu"},
                                      lambda storage, loc: storage], ids=["str", "device", "dict", "function"])
def test_every_map_location_form_loads_on_cpu(location):
    sd = torch.load(FIXTURES / "sd_cuda.pt", map_location=location, weights_only=True)
    assert {t.device.type for t in sd.values()} == {"cpu"}


def test_cuda1_file_loads_on_cpu():
    sd = torch.load(FIXTURES / "sd_cuda1.pt", map_location="cpu", weights_only=True)
    assert str(Net().load_state_dict(sd)) == "<All keys matched successfully>"


def test_notes_E21_whole_model_fails_with_the_default_weights_only(main_with_net):
    with pytest.raises(pickle.UnpicklingError) as info:
        torch.load(FIXTURES / "whole_cuda.pt", map_location="cpu", weights_only=True)
    message = str(info.value)
    assert message.startswith("Weights only load failed.")
    assert "Unsupported global: GLOBAL __main__.Net was not an allowed global by default." in message


def test_whole_model_needs_net_in_main(main_without_net):
    with pytest.raises(AttributeError, match=re.escape("Can't get attribute 'Net' on <module '__main__'")):
        torch.load(FIXTURES / "whole_cuda.pt", map_location="cpu", weights_only=False)
    main_without_net.Net = Net
    model = torch.load(FIXTURES / "whole_cuda.pt", map_location="cpu", weights_only=False)
    assert isinstance(model, Net) and {p.device.type for p in model.parameters()} == {"cpu"}


def test_whole_dp_loaded_on_cpu_fails_when_called_but_its_module_works(main_with_net):
    dp = torch.load(FIXTURES / "whole_dp_cuda.pt", map_location="cpu", weights_only=False)
    assert isinstance(dp, nn.DataParallel) and dp.device_ids == [0]
    with pytest.raises(RuntimeError) as info:
        dp(torch.rand(2, 1, 8, 8))
    assert str(info.value) == DP_DEVICE_ERROR
    assert dp.module(torch.rand(2, 1, 8, 8)).shape == (2, 2)


# ---- the pages' blocks that need a GPU-saved checkpoint: their code, run on the fixtures ----

PAGES = {lang: ROOT / "docs" / lang / "multi-gpu.md" for lang in LANGS}
# the section a skipped block shows -> the function holding it; False: `__main__` has no Net
GPU_FILE_DEMOS = {
    "demo_saved_devices": (mg.demo_saved_devices, True),
    "demo_no_map_location": (mg.demo_no_map_location, True),
    "demo_map_location": (mg.demo_map_location, True),
    "demo_map_location_dict": (mg.demo_map_location_dict, True),
    "demo_dp_checkpoint_on_cpu": (mg.demo_dp_checkpoint_on_cpu, True),
    "demo_whole_default": (mg.demo_whole_default, True),
    "demo_whole_no_class": (mg.demo_whole_no_class, False),  # a script without Net
    "demo_whole_trusted": (mg.demo_whole_trusted, True),  # the page defines Net
    "demo_whole_dp": (mg.demo_whole_dp, True),
}
DDP_SECTIONS = ["imports", "helpers", "setup", "train", "finish", "main"]
DDP_TEST = "tests/test_multi_gpu.py::test_ddp_run_sh_trains_on_two_cpu_processes"
# the sections shown in skipped blocks that run in spawned processes; the runs' outputs
SPAWN_SECTIONS = ["check_sync_batchnorm", "check_no_sync", "launch", "run_ddp_checks",
                  "resume_checkpoint", "resume_training", "resume_runs", "run_resume_checks",
                  "imports_workers", "fsdp_model", "fsdp_checks", "dcp_checks", "run_fsdp_checks"]
SPAWN_TEST = "tests/test_multi_gpu.py::test_spawned_checks_print_what_the_page_shows"
SPAWN_OUTPUTS = {"ddp": "snippets/multi_gpu.py:run_ddp_checks",
                 "resume": "snippets/multi_gpu.py:run_resume_checks",
                 "fsdp": "snippets/multi_gpu.py:run_fsdp_checks"}
TORCH_RELEASE = torch_release()  # (2, 14)
# the page: torch 2.6's FSDP2 does not run on CPU processes (its all-gather records an event on
# the CPU stream, which has no record_event): there the fsdp run is left out, its tests skipped
FSDP_ON_CPU = TORCH_RELEASE != (2, 6)
NEEDS_FSDP_ON_CPU = pytest.mark.skipif(not FSDP_ON_CPU, reason="torch 2.6's FSDP2 does not run on CPU "
                                       "processes ('Stream' object has no attribute 'record_event'); the page says so")
if not FSDP_ON_CPU:
    del SPAWN_OUTPUTS["fsdp"]


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def gpu_file_test(section: str) -> str:
    return f"tests/test_multi_gpu.py::test_gpu_file_block[{section}]"


def page_blocks(lang: str) -> list:
    return parse_page(PAGES[lang].read_text(encoding="utf-8"), str(PAGES[lang]))


def shown_block(lang: str, include: str):
    """The one block of the page that includes `include` (path:section)."""
    found = [b for b in page_blocks(lang) if include in includes(b.source)]
    assert len(found) == 1, f"{lang}: {len(found)} blocks include {include}"
    return found[0]


def gpu_demo_output(section: str, folder: Path) -> tuple[str, BaseException | None]:
    """Run a demo in `folder` holding copies of the fixtures: what it printed, its error."""
    demo, net_in_main = GPU_FILE_DEMOS[section]
    for f in FIXTURES.glob("*.pt"):
        shutil.copy(f, folder)
    main = types.ModuleType("__main__")
    if net_in_main:
        main.Net = Net  # whole_cuda.pt pickled `__main__.Net`
    out, error, saved = io.StringIO(), None, sys.modules["__main__"]
    sys.modules["__main__"] = main
    try:
        with contextlib.chdir(folder), contextlib.redirect_stdout(out):
            demo()
    except Exception as exc:  # noqa: BLE001  (compared with the page below)
        error = exc
        out.write(error_line(exc) + "\n")
    finally:
        sys.modules["__main__"] = saved
    return ANSI.sub("", out.getvalue()), error  # torch's message has bold on a terminal


@pytest.mark.parametrize("section", GPU_FILE_DEMOS)
def test_gpu_file_block(section, tmp_path):
    if CUDA and section == "demo_no_map_location":
        pytest.skip("on a CUDA machine this load succeeds; test_cuda_fixture_loads_on_the_gpu checks it")
    printed, error = gpu_demo_output(section, tmp_path)
    for lang in PAGES:
        block = shown_block(lang, f"snippets/multi_gpu.py:{section}")
        assert block.mark("skip") and gpu_file_test(section) in block.mark("skip").reason
        if block.must_fail:
            assert isinstance(error, exception_type(block.must_fail)), f"{lang}: {error!r}"
        else:
            assert error is None, f"{lang}: {error!r}"
        own = own_messages("\n".join(block_code(b) for b in python_blocks(read(PAGES[lang]))))
        assert block.expected is not None and not differs(block.expected, printed, error=block.must_fail,
                                                          own=own), \
            f"{lang}: the page shows\n{block.expected}\nbut it printed\n{printed}\n" \
            "(`python -m tests.test_multi_gpu` rewrites these fences)"


def test_every_skipped_block_names_the_test_that_runs_its_code():
    for lang in PAGES:
        skipped = {}
        for block in page_blocks(lang):
            if block.mark("skip"):
                (include,) = includes(block.source)
                skipped[include] = block.mark("skip").reason
        gpu = {f"snippets/multi_gpu.py:{s}": gpu_file_test(s) for s in GPU_FILE_DEMOS}
        ddp = {f"snippets/ddp_train.py:{s}": DDP_TEST for s in DDP_SECTIONS}
        spawn = {f"snippets/multi_gpu.py:{s}": SPAWN_TEST for s in SPAWN_SECTIONS}
        assert list(skipped) == list(gpu) + list(ddp) + list(spawn)
        assert all(test in skipped[include] for include, test in {**gpu, **ddp, **spawn}.items())


def test_no_runnable_block_uses_a_name_a_skipped_block_defines():
    for lang in PAGES:
        defined, used = set(), set()
        for block in page_blocks(lang):
            if block.is_python:
                tree = ast.parse(expand(block.source))
                names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
                stored = {n.id for n in ast.walk(tree)
                          if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
                stored |= {n.name for n in ast.walk(tree)
                           if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
                stored |= {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}  # parameters
                if block.mark("skip"):
                    defined |= stored - used
                else:
                    needed = names - stored  # a name the block assigns itself is its own
                    assert not (needed & defined), f"{lang} line {block.lineno}: {needed & defined}"
                    used |= stored


def test_ddp_script_sections_make_the_whole_file():
    text = (ROOT / "snippets" / "ddp_train.py").read_text(encoding="utf-8")
    code = re.sub(r"^# --8<-- \[(start|end):\w+\]\n", "", text, flags=re.M)
    shown = "\n\n\n".join(expand(f'--8<-- "snippets/ddp_train.py:{s}"') for s in DDP_SECTIONS)
    assert ast.dump(ast.parse(shown)) == ast.dump(ast.parse(code.split('"""', 2)[2]))


# ---- DDP ----

def test_ddp_script_import_starts_nothing():
    assert callable(ddp_train.main)
    assert not (torch.distributed.is_available() and torch.distributed.is_initialized())


def test_ddp_script_refuses_to_run_without_torchrun(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(sys, "argv", ["downloads/ddp_train.py"])
    with pytest.raises(SystemExit, match="start this script with torchrun: torchrun --standalone "
                                         "--nproc_per_node=2 downloads/ddp_train.py$"):
        ddp_train.main()


def test_distributed_sampler_splits_the_data_and_set_epoch_reshuffles():
    from torch.utils.data.distributed import DistributedSampler

    data = list(range(10))
    rank0, rank1 = (DistributedSampler(data, num_replicas=2, rank=r, shuffle=True, seed=0) for r in (0, 1))
    assert sorted(list(rank0) + list(rank1)) == data  # disjoint shares that cover the data
    first = list(rank0)
    assert list(rank0) == first  # without set_epoch every epoch repeats the order
    rank0.set_epoch(1)
    assert list(rank0) != first


def test_digits_split_and_model_shapes():
    train, test = ddp_train.digits("train"), ddp_train.digits("test")
    assert len(train) == 1500 and len(test) == 297
    assert ddp_train.build_model()(train.tensors[0][:4]).shape == (4, 10)


def run_torchrun(tmp_path, nproc: str | None, env_extra: dict) -> str:
    """Run the page's shell line (or the script with nproc processes) in tmp_path, torchrun = this Python
    (remembered, with the files it leaves, until the script, torch or the engine changes)."""
    (tmp_path / "snippets").mkdir()
    shutil.copy(ROOT / "snippets" / "ddp_train.py", tmp_path / "snippets")
    shutil.copy(ROOT / "snippets" / "ddp_run.sh", tmp_path / "snippets")
    line = "source snippets/ddp_run.sh" if nproc is None else \
        f"torchrun --standalone --nproc_per_node={nproc} snippets/ddp_train.py"
    script = f'torchrun() {{ "$PYTHON" -m torch.distributed.run "$@"; }}\nset -e\n{line}\n'
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **env_extra}
    done = remembered(["bash", "-c", script], cwd=tmp_path, env=env, files=["."], timeout=240,
                      depends=[ROOT / "snippets" / "ddp_train.py", ROOT / "snippets" / "ddp_run.sh"])
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def check_ddp_run(out: str, tmp_path: Path, world: int, backend: str) -> None:
    assert out.startswith(f"backend {backend}, {world} processes")
    assert f"parameters identical on all {world} ranks: True" in out
    # every rank finished, and each one's model equals the file rank 0 saved
    assert out.endswith(f"the saved file equals each rank's model: {[True] * world}\n")
    assert re.findall(r"^rank \d+ saved .*$", out, re.M) == ["rank 0 saved ddp_out/model.pt"]
    assert "DDP wrapper keys: ['module.0.weight', 'module.0.bias']" in out
    accuracy = re.search(r"^test accuracy ([\d.]+)$", out, re.M).group(1)
    assert float(accuracy) > 0.85
    assert sorted(p.name for p in (tmp_path / "ddp_out").iterdir()) == ["model.pt"]
    sd = torch.load(tmp_path / "ddp_out" / "model.pt", map_location="cpu", weights_only=True)
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # no "module." in the file
    model = ddp_train.build_model()
    model.load_state_dict(sd)
    X, y = ddp_train.digits("test").tensors
    with torch.no_grad():
        assert f"{(model(X).argmax(1) == y).float().mean().item():.3f}" == accuracy


def ddp_run_output_blocks() -> dict:
    """The expected-output fence under the torchrun command, per language."""
    return {lang: shown_block(lang, "snippets/ddp_run.sh") for lang in PAGES}


@pytest.mark.multiprocess
def test_ddp_run_sh_trains_on_two_cpu_processes(tmp_path):
    """The page's torchrun line on two CPU processes, with PYTHONUNBUFFERED=1 (every write reaches
    the terminal at once, the condition under which two ranks' lines once interleaved): only
    rank 0 prints, so the output is exactly the page's, line by line."""
    out = run_torchrun(tmp_path, None, {"CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"})
    check_ddp_run(out, tmp_path, world=2, backend="gloo")
    for lang, block in ddp_run_output_blocks().items():  # the output the page shows
        assert block.expected is not None and not differs(block.expected, out), \
            f"{lang}: the page shows\n{block.expected}\nbut torchrun printed\n{out}\n" \
            "(`python -m tests.test_multi_gpu` rewrites this fence)"


# ---- batch size, DistributedSampler, padding, SyncBatchNorm, CUDA_VISIBLE_DEVICES ----

def test_global_batch_is_per_process_batch_times_world_size():
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    data = TensorDataset(torch.arange(1500))
    steps = {}
    for world in (1, 2, 4):
        shares = [list(DistributedSampler(data, num_replicas=world, rank=r)) for r in range(world)]
        assert all(len(share) == -(-1500 // world) for share in shares)
        steps[world] = len(DataLoader(data, batch_size=32, sampler=DistributedSampler(data, world, 0)))
    assert steps == {1: 47, 2: 24, 4: 12}


def test_scale_lr_is_the_linear_rule():
    assert mg.scale_lr(0.1, 32, 32, 1) == pytest.approx(0.1)
    assert mg.scale_lr(0.1, 32, 32, 4) == pytest.approx(0.4)
    assert mg.scale_lr(0.1, 256, 64, 8) == pytest.approx(0.2)


@pytest.mark.parametrize("args, message", [
    ((0.1, 32, 0, 2), "batch_per_process must be a positive int, got 0"),
    ((0.1, 32, 32, 1.5), "processes must be a positive int, got 1.5"),
    ((0.1, True, 32, 2), "base_batch must be a positive int, got True"),
    ((0.0, 32, 32, 2), "base_lr must be positive, got 0.0"),
])
def test_scale_lr_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        mg.scale_lr(*args)


def test_without_set_epoch_every_epoch_repeats_the_order():
    from torch.utils.data.distributed import DistributedSampler

    samplers = [DistributedSampler(range(8), num_replicas=2, rank=r, seed=0) for r in (0, 1)]
    first = [list(s) for s in samplers]
    assert all([list(s) for s in samplers] == first for _ in range(3))
    orders = []
    for epoch in range(3):
        for s in samplers:
            s.set_epoch(epoch)
        shares = [list(s) for s in samplers]
        assert sorted(shares[0] + shares[1]) == list(range(8))  # disjoint, complete
        orders.append(shares)
    assert orders[0] == first and orders[1] != orders[0] and orders[2] != orders[1]


def test_padding_10_samples_on_3_ranks_repeats_2():
    from torch.utils.data.distributed import DistributedSampler

    shares = [list(DistributedSampler(range(10), num_replicas=3, rank=r, shuffle=False)) for r in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
    gathered = [i for share in shares for i in share]
    assert len(gathered) == 12 and sorted(set(gathered)) == list(range(10))
    dropped = [list(DistributedSampler(range(10), 3, r, shuffle=False, drop_last=True)) for r in range(3)]
    assert sorted(i for share in dropped for i in share) == list(range(9))  # 9 never seen


def test_padding_inflates_a_gathered_metric_and_gathered_mean_fixes_it():
    correct = torch.tensor([1, 1, 0, 0, 0, 1, 0, 1, 0, 0])
    indices = torch.tensor([0, 3, 6, 9, 1, 4, 7, 0, 2, 5, 8, 1])
    assert correct.float().mean().item() == pytest.approx(0.4)
    assert correct[indices].float().mean().item() == pytest.approx(0.5)
    assert mg.gathered_mean(indices, correct[indices], num_samples=10) == pytest.approx(0.4)


@pytest.mark.parametrize("indices, values, n, message", [
    (torch.tensor([0, 1]), torch.tensor([1]), 2, "indices (2,) and values (1,) must have the same shape"),
    (torch.tensor([0, 0]), torch.tensor([1, 1]), 2, "expected each index 0..1, missing [1]"),
    (torch.tensor([0, 1, 2]), torch.tensor([1, 1, 1]), 2, "expected each index 0..1, missing []"),
])
def test_gathered_mean_rejects_incomplete_input(indices, values, n, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        mg.gathered_mean(indices, values, n)


def test_sync_batchnorm_conversion_and_no_group_fallback():
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(cnn))
    assert [type(m).__name__ for m in synced] == ["Conv2d", "SyncBatchNorm", "ReLU"]
    assert isinstance(cnn[1], nn.BatchNorm2d)  # the original is unchanged
    x = torch.randn(8, 1, 6, 6)
    assert not torch.distributed.is_initialized()
    assert torch.equal(synced(x), cnn(x))
    assert torch.equal(synced[1].running_mean, cnn[1].running_mean)


def test_batchnorm_per_rank_statistics_differ_from_the_whole_batch():
    bn = nn.BatchNorm2d(4)
    features = torch.randn(8, 4, 5, 5)
    per_rank = torch.cat([bn(features[:4]), bn(features[4:])])
    assert not torch.allclose(per_rank, bn(features))


def test_cuda_visible_devices_empty_hides_every_gpu():
    code = ("import torch; from torch import nn; print(torch.cuda.device_count(), "
            "nn.DataParallel(nn.Linear(2, 2)).device_ids)")
    assert mg.in_child(code, CUDA_VISIBLE_DEVICES="") == "0 []"


def test_in_child_validates_and_reports_the_childs_error():
    with pytest.raises(TypeError, match="code must be a string of Python, got int"):
        mg.in_child(42)
    with pytest.raises(RuntimeError, match=r"the child process failed:\n(.|\n)*ZeroDivisionError"):
        mg.in_child("1 / 0")


# ---- no_sync, SyncBatchNorm in a group, FSDP2 and DCP: 2 spawned processes ----

def run_spawned(folder: Path) -> dict[str, str]:
    """`python -m snippets.multi_gpu --spawn ddp resume fsdp` in folder, unbuffered: output per run (remembered
    until a snippet, torch or the engine changes, with the files it leaves)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(ROOT)}
    done = remembered([sys.executable, "-m", "snippets.multi_gpu", "--spawn", *SPAWN_OUTPUTS], cwd=folder,
                      env=env, depends=[ROOT / "snippets"], files=["."], timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    parts = done.stdout.split(mg.SPAWN_SEPARATOR + "\n")
    assert len(parts) == len(SPAWN_OUTPUTS), done.stdout
    return dict(zip(SPAWN_OUTPUTS, parts))


@pytest.fixture(scope="module")
def spawned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spawned")
    return run_spawned(folder), folder


@pytest.mark.multiprocess
def test_spawned_checks_print_what_the_page_shows(spawned):
    outputs, _ = spawned
    for name, include in SPAWN_OUTPUTS.items():
        for lang in PAGES:
            block = shown_block(lang, include)
            assert block.mark("skip") and SPAWN_TEST in block.mark("skip").reason
            varies = block.mark("varies")
            if varies and not exact_environment():  # elsewhere: free, but what it states must hold
                assert eval(varies.holds, {"out": outputs[name]}), f"{lang} {name}: {varies.holds}\n{outputs[name]}"
                continue
            assert block.expected is not None and not differs(block.expected, outputs[name]), \
                f"{lang}: the page shows\n{block.expected}\nbut it printed\n{outputs[name]}\n" \
                "(`python -m tests.test_multi_gpu` rewrites these fences)"


@pytest.mark.multiprocess
def test_no_sync_accumulation_equals_the_unaccumulated_gradient_with_one_allreduce(spawned):
    out = spawned[0]["ddp"]
    assert "no_sync=True: 2 micro-batches per rank, 1 all-reduce(s), same gradient as one step: True" in out
    assert "no_sync=False: 2 micro-batches per rank, 2 all-reduce(s), same gradient as one step: True" in out


@pytest.mark.multiprocess
def test_sync_batchnorm_in_a_group_needs_gpu_tensors(spawned):
    devices = "GPU or privateuseone" if TORCH_RELEASE == (2, 6) else "GPU or XPU or privateuseone"  # the page
    assert ("SyncBatchNorm on CPU tensors: ValueError: SyncBatchNorm expected input tensor to be on "
            f"{devices}") in spawned[0]["ddp"]


@NEEDS_FSDP_ON_CPU
@pytest.mark.multiprocess
def test_fsdp2_shards_each_parameter_and_steps_like_one_process(spawned):
    out = spawned[0]["fsdp"]
    assert "parameters held per rank: [106, 106] of 212" in out
    assert "0.weight: global (16, 8), local (8, 8), Shard(dim=0)" in out
    assert "one step on 2 ranks equals one on the whole batch: True" in out


@NEEDS_FSDP_ON_CPU
@pytest.mark.multiprocess
def test_dcp_writes_one_file_per_rank_and_loads_back(spawned):
    out, folder = spawned[0]["fsdp"], spawned[1]
    assert "dcp.save wrote ['.metadata', '__0_0.distcp', '__1_0.distcp']" in out
    assert "loaded equals saved: True" in out
    assert "model.pt into a plain model: <All keys matched successfully>" in out
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    dcp_to_torch_save(folder / "checkpoint", folder / "converted.pt")  # offline, one process
    converted = torch.load(folder / "converted.pt", weights_only=True)["model"]
    plain = torch.load(folder / "model.pt", weights_only=True)
    assert list(converted) == list(plain) and all(torch.equal(converted[k], plain[k]) for k in plain)


@pytest.mark.multiprocess
def test_spawned_lines_are_whole_lines_from_rank_0(spawned):
    # only rank 0 prints: with PYTHONUNBUFFERED=1 no line is split or doubled
    lines = [line for out in spawned[0].values() for line in out.splitlines()]
    assert len(lines) == len(set(lines)) == (14 if FSDP_ON_CPU else 8)
    assert all(re.match(r"^(SyncBatchNorm|no_sync|parameters|0\.weight|one step|dcp|loaded|model\.pt"
                        r"|run [12]: |rank 0, last 6 losses|same losses)", line)
               for line in lines)


@pytest.mark.multiprocess
def test_a_resumed_ddp_run_has_the_uninterrupted_runs_losses_and_weights(spawned):
    out = spawned[0]["resume"]
    assert "run 1: stopped after 6 steps, in epoch 1 after batch 2; rank 0 saved resume.pt" in out
    assert "run 2: resumed in epoch 1 at batch 2" in out
    resumed = re.search(r"^rank 0, last 6 losses, resumed: +(.+)$", out, re.M).group(1).split()
    whole = re.search(r"^rank 0, last 6 losses, uninterrupted: +(.+)$", out, re.M).group(1).split()
    assert len(resumed) == 6 and resumed == whole
    assert out.endswith("same losses and weights on each rank: [True, True]\n")


@pytest.mark.multiprocess
def test_the_resume_point_holds_the_inner_model_the_position_and_each_ranks_generator(spawned):
    checkpoint = torch.load(spawned[1] / "resume.pt", weights_only=True)  # rank 0 alone wrote it
    assert sorted(checkpoint) == ["batch", "epoch", "model", "optimizer", "rng"]
    assert (checkpoint["epoch"], checkpoint["batch"]) == (1, 2)  # 6 steps = 4 + 2
    assert list(checkpoint["model"]) == ["0.weight", "0.bias", "3.weight", "3.bias"]  # no module.
    momentum = [s["momentum_buffer"] for s in checkpoint["optimizer"]["state"].values()]
    assert len(momentum) == 4 and all(m.abs().sum() > 0 for m in momentum)
    first, second = checkpoint["rng"]  # one state per rank, and they differ
    assert list(first) == list(second) == ["cpu"]  # gloo on the CPU: no GPU generator
    assert first["cpu"].dtype == torch.uint8 and not torch.equal(first["cpu"], second["cpu"])


def test_rng_state_keeps_the_gpus_generator_only_on_cuda():
    assert list(mg.rng_state(torch.device("cpu"))) == ["cpu"]
    assert torch.equal(mg.rng_state(torch.device("cpu"))["cpu"], torch.get_rng_state())


@pytest.mark.parametrize("size, world, batch", [(12, 2, 2), (10, 3, 2), (24, 2, 3)])
@pytest.mark.parametrize("epoch", [0, 1, 4])
def test_skip_ahead_yields_the_rest_of_the_saved_epoch(size, world, batch, epoch):
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    for rank in range(world):
        original = DistributedSampler(range(size), num_replicas=world, rank=rank, seed=0)
        original.set_epoch(epoch)
        whole = [b.tolist() for b in DataLoader(range(size), batch, sampler=original)]
        for done in range(len(whole) + 1):
            fresh = DistributedSampler(range(size), num_replicas=world, rank=rank, seed=0)
            fresh.set_epoch(epoch)  # a new process: the saved epoch, set again
            rest = mg.SkipAhead(fresh, done * batch)
            assert [b.tolist() for b in DataLoader(range(size), batch, sampler=rest)] == whole[done:]
            assert len(rest) == len(fresh) - done * batch
        if epoch:  # without set_epoch, a new process would replay epoch 0's order
            unset = DistributedSampler(range(size), num_replicas=world, rank=rank, seed=0)
            assert list(unset) != list(original)


def test_skip_ahead_demo_prints_the_last_batch_of_the_epoch():
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(range(12), num_replicas=2, rank=0, seed=0)
    sampler.set_epoch(1)
    order = list(sampler)
    assert len(order) == 6 and list(mg.SkipAhead(sampler, 4)) == order[4:]


def test_skip_ahead_reads_no_skipped_sample():
    from torch.utils.data import DataLoader, Dataset

    class Counting(Dataset):
        def __init__(self):
            self.read = []

        def __len__(self):
            return 10

        def __getitem__(self, i):
            self.read.append(i)
            return i

    data = Counting()
    order = list(range(10))
    list(DataLoader(data, batch_size=2, sampler=mg.SkipAhead(order, 6)))
    assert data.read == [6, 7, 8, 9]


@pytest.mark.parametrize("sampler, start, error, message", [
    (range(6), 7, ValueError, "start must be an int from 0 to 6 (the sampler's length), got 7"),
    (range(6), -1, ValueError, "start must be an int from 0 to 6 (the sampler's length), got -1"),
    (range(6), 2.0, ValueError, "start must be an int from 0 to 6 (the sampler's length), got 2.0"),
    (range(6), True, ValueError, "start must be an int from 0 to 6 (the sampler's length), got True"),
    (iter(range(6)), 0, TypeError, "sampler must have a length (a Sampler such as DistributedSampler), "
                                   "got range_iterator"),
])
def test_skip_ahead_rejects_bad_input(sampler, start, error, message):
    with pytest.raises(error, match=re.escape(message)):
        mg.SkipAhead(sampler, start)


def test_iter_of_a_dataloader_draws_from_the_global_generator_unless_it_has_its_own():
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    before = torch.get_rng_state()
    iter(DataLoader(range(4), batch_size=2, generator=torch.Generator()))
    assert torch.equal(torch.get_rng_state(), before)  # its own generator: global untouched
    iter(DataLoader(range(4), batch_size=2))  # shuffle=False, yet one number is drawn
    assert not torch.equal(torch.get_rng_state(), before)
    # so the dropout mask after a restore differs when the loader is built after it
    masks = []
    for own in (True, False):
        torch.set_rng_state(before)
        iter(DataLoader(range(4), batch_size=2, generator=torch.Generator() if own else None))
        masks.append(nn.functional.dropout(torch.ones(64), 0.5))
    torch.set_rng_state(before)
    reference = nn.functional.dropout(torch.ones(64), 0.5)
    assert torch.equal(masks[0], reference) and not torch.equal(masks[1], reference)


def test_set_rng_state_accepts_only_a_cpu_tensor():
    state = torch.get_rng_state()
    with pytest.raises(TypeError, match="RNG state must be a torch.ByteTensor"):
        torch.set_rng_state(state.to("meta"))  # any device but the CPU
    torch.set_rng_state(state)  # the CPU tensor is accepted


def test_accumulate_step_divides_by_the_number_of_micro_batches():
    torch.manual_seed(0)
    X, y = torch.randn(8, 4), torch.randn(8, 1)
    reference, model = nn.Linear(4, 1), nn.Linear(4, 1)
    model.load_state_dict(reference.state_dict())
    nn.functional.mse_loss(reference(X), y).backward()
    model.no_sync = contextlib.nullcontext  # a plain model: no DDP, same arithmetic
    mg.accumulate_step(model, list(zip(X.split(4), y.split(4))), nn.functional.mse_loss)
    assert torch.allclose(model.weight.grad, reference.weight.grad)


@pytest.mark.cuda
def test_cuda_visible_devices_renumbers_the_visible_gpus():
    code = ("import torch; from torch import nn; print(torch.cuda.device_count(), "
            "nn.DataParallel(nn.Linear(2, 2)).device_ids)")
    assert mg.in_child(code, CUDA_VISIBLE_DEVICES="0") == "1 [0]"


# ---- on a GPU machine ----

@pytest.mark.cuda
@pytest.mark.multiprocess
def test_cuda_ddp_uses_nccl_on_every_gpu(tmp_path):
    world = torch.cuda.device_count()
    out = run_torchrun(tmp_path, "gpu", {})  # torchrun starts one process per GPU
    check_ddp_run(out, tmp_path, world=world, backend="nccl")


@pytest.mark.cuda
def test_cuda_each_rank_loads_onto_its_own_device_only_with_map_location(tmp_path, seeded_net):
    """Rank 0's file, read without map_location, lands on cuda:0 wherever it is read; the
    rng state map_location moved to a GPU must go back to the CPU for set_rng_state."""
    torch.save({"model": seeded_net.to("cuda:0").state_dict(), "rng": torch.get_rng_state()},
               tmp_path / "resume.pt")
    plain = torch.load(tmp_path / "resume.pt", weights_only=True)
    assert {str(t.device) for t in plain["model"].values()} == {"cuda:0"}
    last = torch.device("cuda", torch.cuda.device_count() - 1)  # the last rank's GPU
    mapped = torch.load(tmp_path / "resume.pt", map_location=last, weights_only=True)
    assert {t.device for t in mapped["model"].values()} == {last} and mapped["rng"].device == last
    with pytest.raises(TypeError, match="RNG state must be a torch.ByteTensor"):
        torch.set_rng_state(mapped["rng"])
    torch.set_rng_state(mapped["rng"].cpu())


@pytest.mark.cuda
def test_cuda_resume_point_brings_back_the_gpus_dropout_masks(tmp_path):
    """On a GPU dropout draws from the GPU's generator: the resume point saves and restores
    it, so the masks after loading are those drawn after saving; the CPU state alone is not
    enough."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    device = torch.device("cuda", 0)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = DDP(nn.Sequential(nn.Linear(4, 64), nn.Dropout(0.5)).to(device))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        X = torch.ones(8, 4, device=device)
        mg.save_resume_point(str(tmp_path / "resume.pt"), model, opt, 0, 0)
        after_save = model(X)
        saved = torch.load(tmp_path / "resume.pt", weights_only=True)["rng"][0]
        assert list(saved) == ["cpu", "cuda"]
        model(X)  # the generators move on
        mg.load_resume_point(str(tmp_path / "resume.pt"), model, opt, device)
        assert torch.equal(model(X), after_save)
        torch.set_rng_state(saved["cpu"])  # the CPU's state alone, as the old helper saved
        assert not torch.equal(model(X), after_save)
    finally:
        dist.destroy_process_group()


@pytest.mark.cuda
def test_cuda_dp_forward_gathers_on_cuda0(seeded_net):
    dp = nn.DataParallel(seeded_net).to("cuda")
    assert dp.device_ids == list(range(torch.cuda.device_count()))
    out = dp(torch.rand(8, 1, 8, 8, device="cuda"))
    assert out.shape == (8, 2) and out.device == torch.device("cuda", 0)
    assert list(dp.state_dict()) == DP_KEYS


@pytest.mark.cuda
def test_cuda_dataparallel_on_one_gpu_moves_its_module_so_the_page_compares_on_the_cpu():
    """The page's loading helper block: with exactly one GPU, DataParallel(...) puts its module
    on cuda:0 when built, and torch.equal refuses a cuda:0 and a CPU tensor."""
    dp = nn.DataParallel(Net())
    device = next(dp.module.parameters()).device
    if torch.cuda.device_count() == 1:
        assert device == torch.device("cuda", 0)
        with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
            torch.equal(dp.module.submodule.weight, torch.zeros(2, 4))
    assert torch.equal(dp.module.submodule.weight.cpu(), dp.module.submodule.weight.detach().cpu())


@pytest.mark.cuda
def test_cuda_checkpoint_to_cpu_and_back(tmp_path, seeded_net):
    path = tmp_path / "sd.pt"
    torch.save(seeded_net.to("cuda:0").state_dict(), path)
    assert mg.saved_devices(path) == ["cuda:0"]
    on_cpu = torch.load(path, map_location="cpu", weights_only=True)
    assert {t.device.type for t in on_cpu.values()} == {"cpu"}
    model = Net()
    model.load_state_dict(on_cpu)
    torch.save(model.state_dict(), tmp_path / "cpu.pt")
    back = torch.load(tmp_path / "cpu.pt", map_location="cuda:0", weights_only=True)
    assert {str(t.device) for t in back.values()} == {"cuda:0"}


@pytest.mark.cuda
def test_cuda_whole_model_pickle_carries_its_device(tmp_path, seeded_net):
    path = tmp_path / "whole.pt"
    torch.save(seeded_net.to("cuda:0"), path)
    tags = set()
    torch.load(path, map_location=lambda s, loc: tags.add(loc) or s, weights_only=False)
    assert tags == {"cuda:0"}
    model = torch.load(path, weights_only=False)  # no map_location: back where it was saved
    assert {str(p.device) for p in model.parameters()} == {"cuda:0"}


@pytest.mark.cuda
def test_cuda_fixture_loads_on_the_gpu():
    """Where CUDA exists, the page's demo_no_map_location block does not fail (test_gpu_file_block
    skips it there): the GPU-saved files load back onto the GPU instead."""
    sd = torch.load(FIXTURES / "sd_cuda.pt", weights_only=True)  # fine where CUDA exists
    assert {str(t.device) for t in sd.values()} == {"cuda:0"}
    remapped = torch.load(FIXTURES / "sd_cuda1.pt", map_location={"cuda:1": "cuda:0"}, weights_only=True)
    assert {str(t.device) for t in remapped.values()} == {"cuda:0"}
    if torch.cuda.device_count() == 1:
        with pytest.raises(RuntimeError, match="Attempting to deserialize object on CUDA device 1 but "
                                               r"torch.cuda.device_count\(\) is 1"):
            torch.load(FIXTURES / "sd_cuda1.pt", weights_only=True)


# ---- `python -m tests.test_multi_gpu`: the output fences of the blocks not run with the page ----

def write_outputs() -> None:
    """Rewrite, in both languages, the fences under the GPU-file blocks and the torchrun line."""
    import tempfile

    from pagekit.compare import fence_for, mask

    outputs = {}
    for section in GPU_FILE_DEMOS:
        with tempfile.TemporaryDirectory() as tmp:
            outputs[f"snippets/multi_gpu.py:{section}"] = gpu_demo_output(section, Path(tmp))[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = run_torchrun(Path(tmp), None, {"CUDA_VISIBLE_DEVICES": ""})
        check_ddp_run(out, Path(tmp), world=2, backend="gloo")
        outputs["snippets/ddp_run.sh"] = out
    with tempfile.TemporaryDirectory() as tmp:
        for name, out in run_spawned(Path(tmp)).items():
            outputs[SPAWN_OUTPUTS[name]] = out
    for lang, page in PAGES.items():
        lines = page.read_text(encoding="utf-8").split("\n")
        edits = []
        for include, output in outputs.items():
            block = shown_block(lang, include)
            fence = fence_for(mask(output))
            if block.expected_span:
                first, last = block.expected_span
                edits.append((first - 1, last, fence))
            else:
                edits.append((block.end, block.end, ["", *fence]))
        for first, last, new in sorted(edits, key=lambda e: e[0], reverse=True):
            lines[first:last] = new
        page.write_text("\n".join(lines), encoding="utf-8")
        print(f"rewrote {page.relative_to(ROOT)}")


if __name__ == "__main__":
    write_outputs()


# --- uneven inputs: an unmatched all-reduce fails at the group's timeout; Join handles them ------

UNEVEN = '''
import datetime, os, time
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms import Join
from torch.nn.parallel import DistributedDataParallel as DDP

rank = int(os.environ["RANK"])
dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))  # meeting may be slow here
torch.manual_seed(0)
model = DDP(nn.Linear(2, 1))
steps = 3 if rank == 0 else 2  # uneven inputs
with Join([model]):
    for _ in range(steps):
        model(torch.ones(4, 2)).sum().backward()
print(f"rank {rank}: Join finished {steps} steps", flush=True)
short = dist.new_group(timeout=datetime.timedelta(seconds=1))  # the timeout the page talks about
dist.barrier()
if rank == 0:  # an all-reduce that rank 1 never joins
    start = time.monotonic()
    try:
        dist.all_reduce(torch.ones(1), group=short)
    except RuntimeError:
        print(f"rank 0: RuntimeError after {time.monotonic() - start:.0f} s", flush=True)
else:
    time.sleep(4)
'''


# Both ranks of uneven.py on a free port, each one's output ended by a NUL. The port is picked in the
# command, so the command is the same each time and remembered (run.remembered).
LAUNCH_TWO = """
import os, socket, subprocess, sys
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2"}
procs = [subprocess.Popen([sys.executable, "uneven.py"], env={**env, "RANK": str(r)},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
print("\\0".join(p.communicate(timeout=60)[0] for p in procs))
"""


@pytest.mark.multiprocess
def test_uneven_steps_fail_at_the_timeout_and_join_handles_them(tmp_path):
    script = tmp_path / "uneven.py"
    script.write_text(UNEVEN, encoding="utf-8")
    done = remembered([sys.executable, "-c", LAUNCH_TWO], cwd=tmp_path, depends=[script], timeout=120)
    out = done.stdout.split("\0")
    assert len(out) == 2, done.stdout + done.stderr
    assert "rank 0: Join finished 3 steps" in out[0] and "rank 1: Join finished 2 steps" in out[1]
    assert "rank 0: RuntimeError after 1 s" in out[0]  # not forever: the group's timeout


def test_default_timeouts_and_syncbatchnorm_communicates_both_ways():
    import datetime
    import inspect

    from torch.distributed import constants
    from torch.nn.modules._functions import SyncBatchNorm as SyncBatchNormFunction
    assert constants.default_pg_nccl_timeout == datetime.timedelta(minutes=10)
    assert constants.default_pg_timeout == datetime.timedelta(minutes=30)
    assert "all_gather" in inspect.getsource(SyncBatchNormFunction.forward)
    assert "all_reduce" in inspect.getsource(SyncBatchNormFunction.backward)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_page_says_timeout_and_join_not_forever(lang):
    text = (ROOT / "docs" / lang / "multi-gpu.md").read_text(encoding="utf-8")
    assert "forever" not in text and "永远等下去" not in text
    assert "`Join`" in text and "all-gather" in text and text.count("all-reduce") > 5


@pytest.mark.parametrize("lang", PAGES)
def test_the_sync_batchnorm_error_is_quoted_where_it_is_announced(lang):
    text = (ROOT / "docs" / lang / "multi-gpu.md").read_text(encoding="utf-8")
    error = next(line for line in text.splitlines() if line.startswith("SyncBatchNorm on CPU tensors: "))
    message = error.removeprefix("SyncBatchNorm on CPU tensors: ")
    section = text.split("\n## SyncBatchNorm\n")[1].split("\n## ")[0]
    announcing = next(line for line in section.splitlines() if "check_sync_batchnorm" in line and "`" in line)
    assert f"`{message}`" in announcing and "run_ddp_checks" in announcing


@pytest.mark.parametrize("lang, words", [("en", "`ddp_train.py` button"), ("zh", "`ddp_train.py` 按钮")])
def test_the_page_points_at_the_ddp_train_download(lang, words):
    text = (ROOT / "docs" / lang / "multi-gpu.md").read_text(encoding="utf-8")
    assert "snippets/ddp_train.py" in text.split("---")[1]            # offered as a download ...
    assert words in text and "save the next six blocks" not in text    # ... and the page says so


# --- exercises -------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, num_replicas", [(10, 3), (8, 2), (16, 4), (7, 4), (5, 2)])
@pytest.mark.parametrize("epoch", [0, 1, 5])
def test_exercise_rank_indices_equals_distributed_sampler(size, num_replicas, epoch):
    from torch.utils.data.distributed import DistributedSampler

    for rank in range(num_replicas):
        sampler = DistributedSampler(range(size), num_replicas=num_replicas, rank=rank, seed=0)
        sampler.set_epoch(epoch)
        assert mg.rank_indices(size, num_replicas, rank, epoch) == list(sampler)
    shares = [mg.rank_indices(size, num_replicas, rank, epoch) for rank in range(num_replicas)]
    assert len({len(share) for share in shares}) == 1  # the same number of steps on every rank
    assert set().union(*map(set, shares)) == set(range(size))


def test_exercise_rank_indices_pads_with_the_first_two_of_the_permutation_as_the_page_says():
    shares = [mg.rank_indices(10, 3, rank, 0) for rank in range(3)]
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0)).tolist()
    flat = [i for share in shares for i in share]
    assert sorted(i for i in set(flat) if flat.count(i) == 2) == sorted(order[:2])


def test_exercise_ddp_grads_equal_the_whole_batch_only_for_equal_shares():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    X, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    for n, replicas, equal in [(16, 4, True), (16, 2, True), (12, 3, True), (10, 4, False), (15, 4, False)]:
        ddp = mg.ddp_grads(model, X[:n], y[:n], replicas)
        one = mg.mean_loss_grads(model, X[:n], y[:n])
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ddp, one)) is equal, (n, replicas)
    # what unequal shares compute: a mean weighted by 1 / (share size), not the plain mean
    shares = [len(s) for s in X[:10].tensor_split(4)]
    assert shares == [3, 3, 2, 2]
