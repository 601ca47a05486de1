"""Every page's program is device-correct: run on a machine with a CUDA GPU, it would not mix
devices. Checked on the CPU with the virtual accelerator of pagekit/virtual_cuda.py (one virtual
cuda:0 whose tensors compute on the CPU); the checker itself is tested on code that a real GPU
refuses (the multi-gpu page's old `torch.equal` among it) and on code it accepts."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pagekit.page import python_blocks, read
from pagekit.project import CHAPTERS
from pagekit.pytest_plugin import WAIT_S
from pagekit.run import niced, program_blocks, program_file, run_program
from pagekit.virtual_cuda import (
    CudaToNumpy,
    DeviceError,
    MixedDevices,
    NoSuchDevice,
    VirtualCuda,
)

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["saving.md", "training.md", "data.md"]  # run first: the two processes end together
PAGES = sorted((c.path("en") for c in CHAPTERS), key=lambda p: HEAVY.index(p.name) if p.name in HEAVY else len(HEAVY))

# Blocks that fail under the virtual accelerator for a reason other than a device error: an
# emulation gap. {(page name, block line): reason}. Each must still fail (else remove it).
GAPS: dict[tuple[str, int], str] = {}

# Pages whose program takes the GPU path (pick_device, .to(device), DataParallel, ...): under
# the virtual accelerator they must make cuda tensors, or the check checked nothing.
GPU_PATH = {"data.md", "environment.md", "losses.md", "multi-gpu.md", "saving.md", "training.md"}


# --- the checker, on small programs ----------------------------------------------------------
def _cuda_model():
    return nn.Linear(3, 2).to("cuda")


REFUSED = {  # what a real GPU refuses, and the error torch raises there
    "a CPU input into a model on cuda": (lambda: _cuda_model()(torch.ones(1, 3)), MixedDevices),
    "torch.equal across devices": (
        lambda: torch.equal(torch.ones(3).cuda(), torch.ones(3)), MixedDevices),
    "torch.equal with a CPU scalar": (
        lambda: torch.equal(torch.ones(()).cuda(), torch.ones(())), MixedDevices),
    ".numpy() of a cuda tensor": (lambda: torch.ones(2, device="cuda").numpy(), CudaToNumpy),
    "np.asarray of a cuda tensor": (lambda: np.asarray(torch.ones(2).to("cuda")), CudaToNumpy),
    "arithmetic across devices": (lambda: torch.ones(2).cuda() + torch.ones(2), MixedDevices),
    "a cuda scalar into a CPU tensor": (lambda: torch.ones(2) * torch.ones(()).cuda(), MixedDevices),
    "a loss with the target on the CPU": (lambda: nn.functional.cross_entropy(
        torch.randn(4, 3).cuda(), torch.tensor([0, 1, 2, 0])), MixedDevices),
    "torch.cat across devices": (
        lambda: torch.cat([torch.ones(2).cuda(), torch.ones(2)]), MixedDevices),
    "CPU tensor indexed by cuda indices": (
        lambda: torch.arange(4)[torch.tensor([1]).cuda()], MixedDevices),
    "a module moved by .to(device), its input not": (
        lambda: nn.Sequential(nn.Linear(3, 2)).to(torch.device("cuda"))(torch.ones(2, 3)),
        MixedDevices),
    "a second GPU": (lambda: torch.ones(2).to("cuda:1"), NoSuchDevice),
}


@pytest.mark.parametrize("name", REFUSED)
def test_the_checker_refuses_what_a_gpu_refuses(name):
    code, error = REFUSED[name]
    with pytest.raises(error), VirtualCuda():
        code()
    assert issubclass(error, DeviceError)


def _train_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    model.to(torch.device("cuda"))
    optimizer = torch.optim.Adam(model.parameters())
    x, y = torch.randn(8, 3).to("cuda"), torch.randint(0, 2, (8,)).to("cuda")
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    assert model[0].weight.grad.device == torch.device("cuda", 0)
    return f"{loss:.3f}", (model(x).argmax(1) == y).float().mean().item()


def _data_parallel():
    model = nn.Linear(3, 2)
    dp = nn.DataParallel(model)  # one GPU: moves the module to cuda:0
    out = dp(torch.ones(4, 3))  # its scatter moves the CPU input
    assert model.weight.device == out.device == torch.device("cuda", 0)
    plain = nn.Linear(3, 2)
    plain.load_state_dict(model.state_dict())  # copies across devices
    return torch.equal(plain.weight, model.weight.cpu())


def _saved_on_cuda(tmp_path):
    torch.save(_cuda_model().state_dict(), tmp_path / "w.pt")
    as_saved = torch.load(tmp_path / "w.pt", weights_only=True)  # back on cuda:0
    on_cpu = torch.load(tmp_path / "w.pt", map_location="cpu", weights_only=True)
    assert as_saved["weight"].is_cuda and not on_cpu["weight"].is_cuda
    return torch.equal(as_saved["weight"].cpu(), on_cpu["weight"])


ACCEPTED = {  # what a real GPU runs
    "input and model on cuda": lambda tmp: _cuda_model()(torch.ones(1, 3, device="cuda")),
    "torch.equal after .cpu()": lambda tmp: torch.equal(torch.ones(3).cuda().cpu(), torch.ones(3)),
    ".cpu().numpy()": lambda tmp: torch.ones(2).cuda().cpu().numpy(),
    "a 0-dim CPU tensor in arithmetic": lambda tmp: torch.ones(2).cuda() * torch.tensor(2.0),
    "cuda tensor indexed by CPU indices": lambda tmp: torch.arange(4).cuda()[torch.tensor([1])],
    ".item() and formatting": lambda tmp: f"{torch.ones(()).cuda().item():.1f}",
    "a training step": lambda tmp: _train_step(),
    "DataParallel with a CPU input": lambda tmp: _data_parallel(),
    "save on cuda, load with and without map_location": _saved_on_cuda,
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_the_checker_accepts_what_a_gpu_runs(name, tmp_path):
    with VirtualCuda():
        ACCEPTED[name](tmp_path)


def test_cuda_tensors_look_like_cuda_tensors():
    with VirtualCuda():
        x = torch.arange(3.0).to("cuda")
        assert torch.cuda.is_available() and torch.cuda.device_count() == 1
        assert (x.device, x.is_cuda, x.get_device()) == (torch.device("cuda", 0), True, 0)
        assert repr(x) == "tensor([0., 1., 2.], device='cuda:0')"
        y = x.cpu()
        assert (y.device, y.is_cuda, x.is_cuda) == (torch.device("cpu"), False, True)
        assert x.to("cuda") is x and y.to("cpu") is y  # as torch: no move, no copy


def test_the_machine_is_restored(tmp_path):
    registry = list(torch.serialization._package_registry)
    before = (torch.cuda.is_available(), torch.load, torch.Tensor.pin_memory, nn.DataParallel.scatter)
    with pytest.raises(MixedDevices), VirtualCuda():
        torch.ones(1).cuda() + torch.ones(2)
    assert (torch.cuda.is_available(), torch.load, torch.Tensor.pin_memory,
            nn.DataParallel.scatter) == before
    assert torch.serialization._package_registry == registry


def test_recording_names_the_line_and_goes_on():
    code = "a = torch.ones(2).cuda()\nb = torch.equal(a, torch.ones(2))\nprint(b)\n"
    with VirtualCuda(record=True, program_files={"page.py:7": code}) as gpu:
        exec(compile(code, "page.py:7", "exec"), {"torch": torch})
    [found] = gpu.violations
    assert (found.kind, found.where, found.line) == (
        "MixedDevices", "page.py:7 line 2", "b = torch.equal(a, torch.ones(2))")


def _multi_gpu_program(tmp_path, old_line: bool) -> list:
    """The multi-gpu page's program up to "A loading helper", run under the virtual accelerator;
    old_line: with the comparison the page had before it was fixed."""
    blocks = program_blocks(program_file(read(ROOT / "docs" / "en" / "multi-gpu.md"), tmp_path / "multi-gpu.json"))
    helper = next(i for i, b in enumerate(blocks) if "dp_from_net.module.submodule.weight" in b.source)
    fixed = "torch.equal(dp_from_net.module.submodule.weight.cpu(), weight)"
    assert fixed in blocks[helper].source
    if old_line:
        blocks[helper].source = blocks[helper].source.replace(
            fixed, "torch.equal(dp_from_net.module.submodule.weight, weight)")
    files = {f"multi-gpu.py:{b.lineno}": b.source for b in blocks}
    with VirtualCuda(record=True, program_files=files) as gpu:
        for result in run_program(blocks[: helper + 1], tmp_path, name="multi-gpu.py", cuda=False):
            assert result.error is None or result.failed_as_it_must or result.block.must_fail, result.output
    return gpu.violations


def test_the_multi_gpu_pages_old_comparison_fails_on_a_gpu(tmp_path):
    [found] = _multi_gpu_program(tmp_path, old_line=True)
    assert found.kind == "MixedDevices" and "cuda:0 and cpu" in found.message
    assert found.line == "print(torch.equal(dp_from_net.module.submodule.weight, weight))"


def test_the_multi_gpu_pages_comparison_on_the_cpu_passes(tmp_path):
    assert _multi_gpu_program(tmp_path, old_line=False) == []


# --- every page --------------------------------------------------------------------------------
class DeviceCheckRun:
    """Every chapter page run under the virtual accelerator (`python -m tools.device_check`), each
    in a fresh process, started in the background at the end of collection (EARLY,
    tests/conftest.py) at a lower CPU priority."""

    def __init__(self, folder: Path, pages: set[str] | None = None):
        self.out = folder / "report.json"
        chosen = [page for page in PAGES if pages is None or page.name in pages]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.device_check", "--parallel", "1", "--json", str(self.out), *map(str, chosen)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=niced)

    def result(self) -> dict[str, list[dict]]:
        _, err = self.process.communicate(timeout=WAIT_S)  # as long as the test may wait
        if not self.out.is_file():
            raise AssertionError(f"tools.device_check exited {self.process.returncode}:\n{err[-3000:]}")
        results = json.loads(self.out.read_text())
        broken = {page: f"exit {r['returncode']} after {r['seconds']} s: {r['stderr'][-600:]}"
                  for page, r in results.items() if not r["blocks"]}
        assert not broken, broken
        return {Path(page).name: r["blocks"] for page, r in results.items()}

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


EARLY = {"device_check_run": DeviceCheckRun}


@pytest.fixture(scope="module")
def page_reports(early) -> dict[str, list[dict]]:
    return early.result("device_check_run", DeviceCheckRun)


@pytest.mark.slow
@pytest.mark.multiprocess
@pytest.mark.parametrize("page", [p.name for p in PAGES])
def test_page_is_device_correct(page, page_reports):
    problems = []
    for block in page_reports[page]:
        where = f"{page} line {block['lineno']} ({block['section']})"
        for v in block["violations"]:
            problems.append(f"{where}: {v['where']}: {v['line']}\n    {v['kind']}: {v['message']}")
        gap = GAPS.get((page, block["lineno"]))
        error = block["error"] and not block["failed_as_it_must"]
        if error and not gap:
            problems.append(f"{where} raised under the virtual accelerator:\n{block['traceback']}")
        elif gap and not error:
            problems.append(f"{where} is listed in GAPS ({gap}) but runs: remove it from GAPS")
    assert not problems, "\n".join(problems)
    assert len(page_reports[page]) == len(python_blocks(read(ROOT / "docs" / "en" / page))), "the program stopped early"
    made = sum(b["made_on_cuda"] for b in page_reports[page])
    if page in GPU_PATH:
        assert made > 0, f"{page} takes the GPU path, but made no cuda tensor under the check"
