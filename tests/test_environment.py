"""Each claim of the environment chapter, asserted: install lines, device report,
pick_device, .cuda() vs .to(device), and the CUDA toolkit switch script."""
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from pagekit.compare import torch_release
from pagekit.run import remembered
from snippets import environment as env

ROOT = Path(__file__).resolve().parents[1]
TORCH_RELEASE = torch_release()  # (2, 14)
INSTALL_SH = ROOT / "snippets" / "install.sh"
CUDA_ENV_SH = ROOT / "snippets" / "cuda_env.sh"
BASE_PATH = "/usr/bin:/bin"  # no real nvcc on it (this machine has one in /usr/local/bin)

# The notes' block, verbatim (Task1 §1).
NOTES_CUDA_BLOCK = """\
#<<< config root's cuda  start <<<
export PATH=/usr/local/cuda-11.0/bin:$PATH
export CUDA_HOME=/usr/local/cuda-11.0/bin:$CUDA_HOME
export LD_LIBRARY_PATH=/usr/local/cuda-11.0/lib64:/usr/local/cuda-11.0/extras/CUPTI/lib64:$LD_LIBRARY_PATH
# cuda-10.2
#<<< config root's cuda  end <<<
"""


def bash(script: str, *args: str, env_vars: dict | None = None) -> subprocess.CompletedProcess:
    base = {"PATH": BASE_PATH, "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(["bash", "-c", script, "bash", *args], capture_output=True, text=True,
                          env={**base, **(env_vars or {})}, cwd=ROOT, timeout=30)


# ---------------------------------------------------------------- install.sh

FAKES = ('pip() { echo "pip $*" >> "$CALLS"; [ "$1" != install ] || printf "%s\\n" "$@"; }; '
         'python() { echo "python $*" >> "$CALLS"; }; export -f pip python; ')


def run_install_calls(*args: str, env_vars: dict | None = None, tmp: Path | None = None):
    """Run install.sh with `pip` and `python` replaced by functions that record each call."""
    calls = Path(tmp or "/tmp") / f"install-calls-{os.getpid()}.txt"
    calls.unlink(missing_ok=True)
    done = subprocess.run(["bash", "-c", FAKES + 'bash "$0" "$@"', str(INSTALL_SH), *args],
                          capture_output=True, text=True, timeout=30,
                          env={"PATH": BASE_PATH, "CALLS": str(calls), **(env_vars or {})})
    lines = calls.read_text().splitlines() if calls.exists() else []
    calls.unlink(missing_ok=True)
    return done, lines


def run_install(*args: str, env_vars: dict | None = None):
    """install.sh's exit status, the arguments of its `pip install` call, its stderr."""
    done, _ = run_install_calls(*args, env_vars=env_vars)
    return done.returncode, done.stdout.splitlines(), done.stderr


def test_install_sh_defaults_to_the_cpu_index():
    rc, pip_args, _ = run_install()
    assert rc == 0
    assert pip_args == ["install", "torch==2.14.1", "torchvision==0.29.1",
                        "--index-url", "https://download.pytorch.org/whl/cpu"]


@pytest.mark.parametrize("tag", ["cu126", "cu128", "cu130"])
def test_install_sh_uses_the_cuda_index_for_a_cuda_tag(tag):
    rc, pip_args, _ = run_install(tag)
    assert rc == 0
    assert pip_args[-2:] == ["--index-url", f"https://download.pytorch.org/whl/{tag}"]


def test_install_sh_pins_the_pair_in_requirements_txt():
    pins = dict(re.findall(r"^(torch|torchvision)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    _, pip_args, _ = run_install()
    assert f"torch=={pins['torch']}" in pip_args and f"torchvision=={pins['torchvision']}" in pip_args


def test_install_sh_versions_can_be_overridden():
    _, pip_args, _ = run_install("cpu", env_vars={"TORCH_VERSION": "2.13.0", "TORCHVISION_VERSION": "0.28.0"})
    assert pip_args[1:3] == ["torch==2.13.0", "torchvision==0.28.0"]


@pytest.mark.parametrize("bad", ["cuda12", "cu12.6", "gpu", "cpu "])
def test_install_sh_rejects_an_unknown_build_before_calling_pip(bad):
    done, calls = run_install_calls(bad)
    assert done.returncode == 2 and calls == []
    assert "unknown build" in done.stderr and "use cpu or a CUDA tag such as cu126 or cu130" in done.stderr


@pytest.mark.parametrize("tag", ["cpu", "cu130"])
def test_install_sh_removes_the_old_pair_installs_both_from_one_index_then_imports(tag):
    done, calls = run_install_calls(tag)
    assert done.returncode == 0, done.stderr
    assert calls == ["pip uninstall -y torch torchvision",
                     f"pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/{tag}",
                     "python -c import torch, torchvision; print(torch.__version__, torchvision.__version__)"]


def test_install_sh_stops_when_the_import_check_fails():
    fail = 'python() { echo "RuntimeError: operator torchvision::nms does not exist" >&2; return 1; }'
    done = subprocess.run(["bash", "-c", f'pip() {{ :; }}; {fail}; export -f pip python; bash "$0"',
                           str(INSTALL_SH)], capture_output=True, text=True, timeout=30,
                          env={"PATH": BASE_PATH})
    assert done.returncode == 1 and "torchvision::nms does not exist" in done.stderr


# ---------------------------------------------------------------- torch + torchvision: one pair, one build

def test_torchvision_requirement_carries_no_build_tag_so_pip_accepts_any_torch_build():
    from packaging.requirements import Requirement
    from packaging.version import Version
    needs = [Requirement(r) for r in importlib.metadata.requires("torchvision") if r.startswith("torch ")]
    vision = Version(importlib.metadata.version("torchvision")).release[:2]
    release = torch.__version__.split("+")[0]
    if vision >= (0, 29):  # the page's 0.29.1: any torch from 2.14 on
        assert len(needs) == 1 and needs[0].specifier == Requirement("torch>=2.14.0").specifier
        builds = ("2.14.1+cpu", "2.14.1+cu126", "2.14.1+cu130")
    else:  # the page: older ones (0.21, 0.26) ask for exactly their torch: the release, not the build
        assert len(needs) == 1 and needs[0].specifier == Requirement(f"torch=={release}").specifier
        builds = (f"{release}+cpu", f"{release}+cu126")
    for build in builds:  # PEP 440: the tag is ignored
        assert needs[0].specifier.contains(build)
    # and an installed torchvision of another build satisfies install.sh's pin: pip keeps it
    assert Requirement("torchvision==0.29.1").specifier.contains(Version("0.29.1+cu130"))


def test_this_pair_is_one_release_pair_and_one_build():
    import torchvision

    from pagekit.project import pins
    if torch.__version__.split("+")[0] == pins()["torch"]:  # the pair install.sh pins
        assert torchvision.__version__.split("+")[0] == pins()["torchvision"] == "0.29.1"
    assert env.matching_pair(torch.__version__, torchvision.__version__)
    assert torch.__version__.partition("+")[2] == torchvision.__version__.partition("+")[2]


MIXED_PAIR = textwrap.dedent("""\
    import torch
    load = torch.ops.load_library
    def load_as_on_a_cpu_torch(path):  # what a CUDA torchvision meets next to a +cpu torch
        if "torchvision" in str(path):
            raise OSError("libc10_cuda.so: cannot open shared object file: No such file or directory")
        return load(path)
    torch.ops.load_library = load_as_on_a_cpu_torch
    import torchvision
""")


@pytest.mark.slow  # starts a Python that imports torch (about 3 s)
def test_a_torchvision_whose_operators_cannot_load_fails_at_import_with_nms():
    # torchvision's compiled ops link against the CUDA libraries of a CUDA torch (libc10_cuda.so,
    # libcudart); a +cpu torch has none, so loading them raises OSError, which torchvision swallows,
    # and `import torchvision` then fails on the first operator it registers
    done = remembered([sys.executable, "-c", MIXED_PAIR], keep=lambda done: done.returncode == 1, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "RuntimeError: operator torchvision::nms does not exist"


# ---------------------------------------------------------------- nvidia-smi's CUDA Version

class FakeLibcuda:
    def __init__(self, version: int, status: int = 0):
        self.version, self.status = version, status

    def cuDriverGetVersion(self, out):  # noqa: N802 (the driver API's name)
        out._obj.value = self.version
        return self.status


@pytest.mark.parametrize("raw, shown", [(13000, "13.0"), (12080, "12.8"), (12020, "12.2")])
def test_driver_cuda_version_reads_the_driver_library_as_nvidia_smi_does(monkeypatch, raw, shown):
    opened = []
    monkeypatch.setattr(env.ctypes, "CDLL", lambda name: opened.append(name) or FakeLibcuda(raw))
    assert env.driver_cuda_version() == shown
    assert opened == ["libcuda.so.1"]  # the driver's library, not a toolkit's libcudart


def test_driver_cuda_version_is_none_without_a_driver(monkeypatch):
    def no_driver(name):
        raise OSError(f"{name}: cannot open shared object file: No such file or directory")
    monkeypatch.setattr(env.ctypes, "CDLL", no_driver)
    assert env.driver_cuda_version() is None
    monkeypatch.setattr(env.ctypes, "CDLL", lambda name: FakeLibcuda(0, status=100))
    assert env.driver_cuda_version() is None  # the driver answered with an error


@pytest.mark.cuda
def test_driver_cuda_version_is_nvidia_smis_and_at_least_torchs():
    smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=60).stdout
    shown = re.search(r"CUDA Version:\s*([\d.]+)", smi).group(1)
    assert env.driver_cuda_version() == shown
    if torch.version.cuda:  # the driver must support the CUDA torch ships
        assert tuple(map(int, shown.split("."))) >= tuple(map(int, torch.version.cuda.split(".")[:2]))


# ---------------------------------------------------------------- CUDA_VISIBLE_DEVICES

@pytest.mark.slow  # starts a Python that imports torch (about 3 s)
def test_an_empty_cuda_visible_devices_hides_every_gpu():
    assert env.gpus_seen_with("") == 0


def test_gpus_seen_with_rejects_a_non_string():
    with pytest.raises(TypeError, match=r"^visible must be a string such as '0,2' or '' \(no GPU\), got int$"):
        env.gpus_seen_with(0)


VISIBLE_PROBE = textwrap.dedent("""\
    import json, os, sys, torch
    facts = {}
    if sys.argv[1] == "late":
        torch.cuda.init()
        facts["count_before"] = torch.cuda.device_count()
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # too late: CUDA has read it already
        facts["tensor_on"] = str(torch.ones(1, device="cuda").device)
        facts["count_after"] = torch.cuda.device_count()
        facts["available_after"] = torch.cuda.is_available()
        try:
            torch.cuda.get_device_properties(0)
            facts["properties_error"] = None
        except Exception as err:  # torch 2.11: AssertionError: Invalid device id
            facts["properties_error"] = f"{type(err).__name__}: {err}"
        print(json.dumps(facts))
        sys.exit()
    n = torch.cuda.device_count()
    print(json.dumps([n, [str(torch.cuda.get_device_properties(i).uuid) for i in range(n)]]))
""")


def visible_probe(mode: str, visible: str | None):
    child_env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    if visible is not None:
        child_env["CUDA_VISIBLE_DEVICES"] = visible
    done = subprocess.run([sys.executable, "-c", VISIBLE_PROBE, mode], capture_output=True, text=True,
                          env=child_env, timeout=120, check=True)
    return json.loads(done.stdout)


@pytest.mark.cuda
def test_cuda_visible_devices_set_after_cuda_initialises_leaves_the_gpus_in_use():
    """Set late, the variable takes no GPU away: tensors still go to cuda:0. Some releases re-read
    it for device_count() (torch 2.11 answers 0 on an H200 while the tensor lands on cuda:0), so
    torch's bookkeeping and the GPUs in use disagree; the page says to set it before CUDA starts."""
    facts = visible_probe("late", None)
    assert facts["count_before"] == torch.cuda.device_count() >= 1
    assert facts["tensor_on"] == "cuda:0"
    assert facts["count_after"] in (facts["count_before"], 0)
    if facts["count_after"] == 0:  # what the page says torch 2.11 did on an H200
        assert facts["available_after"] is True
        assert facts["properties_error"] == "AssertionError: Invalid device id"
    assert env.gpus_seen_with("") == 0 and env.gpus_seen_with("0") == 1


@pytest.mark.cuda
def test_cuda_visible_devices_renumbers_from_zero():
    _, uuids = visible_probe("early", None)
    if len(uuids) < 2:
        pytest.skip("renumbering needs 2 GPUs: with CUDA_VISIBLE_DEVICES=1 the second one becomes cuda:0")
    count, seen = visible_probe("early", "1")
    assert count == 1 and seen == [uuids[1]]


# ---------------------------------------------------------------- device report

def test_device_report_on_this_machine_has_its_real_values():
    lines = env.device_report().splitlines()
    assert lines[0] == f"torch {torch.__version__}"
    assert f"torch.cuda.is_available(): {torch.cuda.is_available()}" in "\n".join(lines)


def test_device_report_cuda_build_names_cuda_cudnn_and_runtime_wheel(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 92400)
    monkeypatch.setattr(env, "cuda_runtime_wheel", lambda: "nvidia-cuda-runtime 13.0.96")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    lines = env.device_report().splitlines()
    assert lines[1:] == ["built with CUDA 13.0, cuDNN 92400",
                         "CUDA runtime from: nvidia-cuda-runtime 13.0.96",
                         "torch.cuda.is_available(): False",
                         "GPU: none visible, so tensors and models stay on the CPU"]


def test_device_report_lists_every_gpu(monkeypatch):
    gpus = [SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=80 * 2**30, major=9, minor=0),
            SimpleNamespace(name="NVIDIA A100-SXM4-40GB", total_memory=40 * 2**30, major=8, minor=0)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(gpus))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: gpus[i])
    report = env.device_report()
    assert "torch.cuda.is_available(): True, 2 device(s)" in report
    assert "  cuda:0 NVIDIA H100 80GB HBM3, 80 GiB, compute capability 9.0" in report
    assert "  cuda:1 NVIDIA A100-SXM4-40GB, 40 GiB, compute capability 8.0" in report
    assert "GPU: none visible" not in report


def test_device_report_cpu_only_build(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    lines = env.device_report().splitlines()
    assert lines[1] == "built without CUDA (a CPU-only build)"
    assert lines[-1].startswith("GPU: none visible")


def test_device_report_rocm_build(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", "6.4.1", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert env.device_report().splitlines()[1] == "built with ROCm (HIP 6.4.1)"


def test_cuda_runtime_wheel_finds_the_nvidia_runtime_package(monkeypatch):
    def dist(name, version):
        return SimpleNamespace(metadata={"Name": name}, version=version)
    monkeypatch.setattr(env.importlib.metadata, "distributions",
                        lambda: [dist("numpy", "2.4.6"), dist("nvidia-cuda-runtime-cu12", "12.6.77")])
    assert env.cuda_runtime_wheel() == "nvidia-cuda-runtime-cu12 12.6.77"
    monkeypatch.setattr(env.importlib.metadata, "distributions", lambda: [dist("numpy", "2.4.6")])
    assert env.cuda_runtime_wheel() is None


# ---------------------------------------------------------------- pick_device

def fake_accelerator(monkeypatch, kind: str | None, count: int = 0):
    """Make torch.accelerator (torch 2.6+) report `count` devices of type `kind`."""
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: kind is not None)
    monkeypatch.setattr(torch.accelerator, "current_accelerator",
                        lambda *a, **k: torch.device(kind) if kind else None)
    monkeypatch.setattr(torch.accelerator, "device_count", lambda: count)


@pytest.fixture
def two_gpus(monkeypatch):
    fake_accelerator(monkeypatch, "cuda", 2)


@pytest.fixture
def no_gpu(monkeypatch):
    fake_accelerator(monkeypatch, None)


def test_pick_device_defaults_to_cpu_without_a_gpu(no_gpu):
    assert env.pick_device() == torch.device("cpu")


def test_pick_device_defaults_to_cuda_with_a_gpu(two_gpus):
    assert env.pick_device() == torch.device("cuda")


@pytest.mark.parametrize("prefer, expected", [("cpu", "cpu"), ("cuda", "cuda"), ("cuda:1", "cuda:1"),
                                              (torch.device("cuda", 0), "cuda:0")])
def test_pick_device_honours_prefer(two_gpus, prefer, expected):
    assert env.pick_device(prefer) == torch.device(expected)


def test_pick_device_cpu_always_works(no_gpu):
    assert env.pick_device("cpu") == torch.device("cpu")


def test_pick_device_refuses_cuda_when_unavailable(no_gpu):
    with pytest.raises(RuntimeError, match=r"^'cuda' was asked for, but torch finds no accelerator "
                                           r"\(a CPU-only build, or no GPU/driver\); use pick_device\(\)"):
        env.pick_device("cuda")


def test_pick_device_refuses_an_index_past_the_last_gpu(two_gpus):
    with pytest.raises(RuntimeError, match=r"^'cuda:2' was asked for, but only 2 cuda device\(s\) are visible "
                                           r"\(cuda:0 to cuda:1\); use a lower index or check CUDA_VISIBLE_DEVICES"):
        env.pick_device("cuda:2")


def test_pick_device_cuda_99_message_without_a_gpu_is_the_pages(no_gpu):
    # the page shows this message, printed on the machine that builds the site (no GPU)
    with pytest.raises(RuntimeError) as caught:
        env.pick_device("cuda:99")
    assert str(caught.value) == ("'cuda:99' was asked for, but torch finds no accelerator "
                                 "(a CPU-only build, or no GPU/driver); "
                                 "use pick_device() to take what there is, the CPU included")


def test_pick_device_cuda_99_with_gpus_names_the_valid_indices(two_gpus):
    with pytest.raises(RuntimeError, match=r"^'cuda:99' was asked for, but only 2 cuda device\(s\) "
                                           r"are visible \(cuda:0 to cuda:1\)"):
        env.pick_device("cuda:99")


@pytest.mark.parametrize("name", ["gpu", "rocm", "cuda0"])
def test_pick_device_rejects_a_wrong_name(name):
    with pytest.raises(ValueError, match=rf"^'{name}' is not a device name; use 'cpu', 'cuda', 'cuda:N', "
                                         r"'mps' or 'xpu'$"):
        env.pick_device(name)


@pytest.mark.parametrize("name", ["hip", "hip:0"])
def test_pick_device_says_a_rocm_gpu_is_cuda(name):
    with pytest.raises(ValueError, match=r"^a ROCm GPU is 'cuda' in torch; ask for 'cuda' or 'cuda:N'$"):
        env.pick_device(name)


@pytest.mark.parametrize("name", ["xpu", "meta", "mps"])
def test_pick_device_refuses_a_device_that_is_not_the_accelerator(two_gpus, name):
    with pytest.raises(RuntimeError, match=rf"^'{name}' was asked for, but this machine's accelerator is 'cuda'"):
        env.pick_device(name)


@pytest.mark.parametrize("kind", ["mps", "xpu"])
def test_pick_device_takes_whatever_accelerator_torch_reports(monkeypatch, kind):
    """ROCm builds report 'cuda'; Apple silicon 'mps'; Intel GPUs 'xpu'."""
    fake_accelerator(monkeypatch, kind, 1)
    assert env.pick_device() == torch.device(kind)
    assert env.pick_device(kind) == torch.device(kind)
    assert env.pick_device("cpu") == torch.device("cpu")


def test_pick_device_is_built_on_torch_accelerator():
    import inspect
    source = inspect.getsource(env.accelerator)
    assert "torch.accelerator.current_accelerator()" in source
    assert env.accelerator() == (torch.accelerator.current_accelerator().type
                                 if torch.accelerator.is_available() else None)


def test_torch_accelerator_has_the_four_calls_the_page_names():
    for name in ("is_available", "current_accelerator", "device_count", "synchronize"):
        assert callable(getattr(torch.accelerator, name)), name


@pytest.mark.skipif(torch.cuda.is_available() or not torch.version.cuda,
                    reason="the claim is about a CUDA build on a machine without a GPU (this site's build machine)")
def test_current_accelerator_names_the_builds_accelerator_even_without_a_device():
    # the page: current_accelerator() answers 'cuda' here, is_available() False, so ask it first;
    # only torch 2.6 raises instead
    if TORCH_RELEASE == (2, 6):
        with pytest.raises(RuntimeError, match="Cannot access accelerator device when none is available"):
            torch.accelerator.current_accelerator()
    else:
        assert torch.accelerator.current_accelerator().type == "cuda"
    assert torch.accelerator.is_available() is False
    assert env.pick_device() == torch.device("cpu")


@pytest.mark.parametrize("cuda, mps, expected", [(True, False, "cuda"), (True, True, "cuda"),
                                                 (False, True, "mps"), (False, False, "cpu")])
def test_pick_device_without_torch_accelerator_asks_cuda_then_mps(monkeypatch, cuda, mps, expected):
    """torch before 2.6 has no torch.accelerator: the function falls back to torch.cuda and MPS."""
    monkeypatch.delattr(torch, "accelerator")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2 if cuda else 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert env.pick_device() == torch.device(expected)
    if cuda:
        assert env.pick_device("cuda:1") == torch.device("cuda:1")
        with pytest.raises(RuntimeError, match=r"only 2 cuda device\(s\) are visible"):
            env.pick_device("cuda:2")


def test_pick_device_rejects_a_non_string():
    with pytest.raises(TypeError, match="prefer must be a device name such as 'cuda:0' or a torch.device, got int"):
        env.pick_device(0)


def test_pick_device_refuses_mps_when_unavailable(no_gpu):
    with pytest.raises(RuntimeError, match=r"^'mps' was asked for, but torch finds no accelerator"):
        env.pick_device("mps")


# ---------------------------------------------------------------- .cuda() vs .to(device)

def test_to_returns_a_new_tensor_but_changes_a_module_in_place():
    x = torch.ones(2)
    y = x.to(torch.float64)
    assert x.dtype == torch.float32 and y.dtype == torch.float64 and y is not x
    lin = nn.Linear(2, 2)
    assert lin.to(torch.float64) is lin and lin.weight.dtype == torch.float64


def test_to_the_same_device_returns_the_tensor_itself():
    x = torch.ones(2)
    assert x.to("cpu") is x  # no copy when nothing changes


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine .cuda() works")
def test_notes_E15_cuda_call_fails_without_a_gpu():
    data, label = torch.ones(2, 3), torch.zeros(2)
    if torch.version.cuda is None:  # a CPU-only build
        with pytest.raises(AssertionError, match="^Torch not compiled with CUDA enabled$"):
            data, label = data.cuda(), label.cuda()
    else:  # a CUDA build on a machine without a GPU (this site's CI)
        with pytest.raises(RuntimeError, match="^(Found no NVIDIA driver on your system|No CUDA GPUs are available)"):
            data, label = data.cuda(), label.cuda()
    assert data.device.type == "cpu"


@pytest.mark.cuda
def test_cuda_moves_a_tensor_by_copy_and_a_module_in_place():
    device = env.pick_device()
    t = torch.ones(3)
    moved = t.cuda()
    assert t.device.type == "cpu" and moved.device.type == "cuda"
    assert t.to(device) is not t and t.device.type == "cpu"
    layer = nn.Linear(3, 2)
    assert layer.cuda() is layer and layer.weight.device.type == "cuda"
    layer2 = nn.Linear(3, 2)
    assert layer2.to(device) is layer2 and layer2.weight.device.type == "cuda"
    assert layer(moved).device.type == "cuda"


# ---------------------------------------------------------------- cuda_env.sh

@pytest.fixture
def fake_toolkit(tmp_path):
    """A CUDA toolkit tree: bin/nvcc (a small script), include/, lib64/, extras/CUPTI/lib64."""
    def make(version: str) -> Path:
        root = tmp_path / f"cuda-{version}"
        for sub in ("bin", "include", "lib64", "extras/CUPTI/lib64"):
            (root / sub).mkdir(parents=True)
        nvcc = root / "bin" / "nvcc"
        nvcc.write_text(f"#!/bin/sh\necho 'Cuda compilation tools, release {version}'\n")
        nvcc.chmod(0o755)
        return root
    return make


SHOW_ENV = 'printf "%s\\n" "$CUDA_HOME" "$PATH" "${LD_LIBRARY_PATH:-}" "$(nvcc --version)"'


def test_cuda_env_sets_home_path_and_libraries(fake_toolkit):
    root = fake_toolkit("11.0")
    done = bash(f'source snippets/cuda_env.sh "$1" && {SHOW_ENV}', str(root))
    assert done.returncode == 0, done.stderr
    home, path, libs, nvcc = done.stdout.splitlines()
    assert home == str(root)
    assert path == f"{root}/bin:{BASE_PATH}"
    assert libs == f"{root}/lib64:{root}/extras/CUPTI/lib64"
    assert nvcc == "Cuda compilation tools, release 11.0"
    assert (Path(home) / "bin" / "nvcc").is_file() and (Path(home) / "include").is_dir()


def test_cuda_env_takes_the_root_from_cuda_root(fake_toolkit):
    root = fake_toolkit("12.6")
    done = bash(f"source snippets/cuda_env.sh && {SHOW_ENV}", env_vars={"CUDA_ROOT": f"{root}/"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == str(root)  # trailing slash dropped


def test_cuda_env_switching_drops_the_previous_toolkit(fake_toolkit):
    old, new = fake_toolkit("11.0"), fake_toolkit("12.6")
    done = bash(f'source snippets/cuda_env.sh "$1" && source snippets/cuda_env.sh "$2" && {SHOW_ENV}',
                str(old), str(new), env_vars={"LD_LIBRARY_PATH": "/opt/other/lib"})
    assert done.returncode == 0, done.stderr
    home, path, libs, nvcc = done.stdout.splitlines()
    assert home == str(new)
    assert path == f"{new}/bin:{BASE_PATH}"
    assert libs == f"{new}/lib64:{new}/extras/CUPTI/lib64:/opt/other/lib"
    assert nvcc == "Cuda compilation tools, release 12.6"


def test_cuda_env_leaves_no_helper_functions_behind(fake_toolkit):
    done = bash('source snippets/cuda_env.sh "$1"; declare -F', str(fake_toolkit("11.0")))
    assert "_cuda_env" not in done.stdout


@pytest.mark.parametrize("where", ["bin", "empty"])
def test_cuda_env_refuses_a_folder_without_bin_nvcc(fake_toolkit, tmp_path, where):
    target = fake_toolkit("11.0") / "bin" if where == "bin" else tmp_path
    done = bash('source snippets/cuda_env.sh "$1"; echo "rc=$? CUDA_HOME=${CUDA_HOME:-unset}"', str(target))
    assert done.stdout.strip() == "rc=1 CUDA_HOME=unset"
    assert f"cuda_env.sh: no executable {target}/bin/nvcc; give the toolkit root" in done.stderr


def test_cuda_env_needs_a_root():
    done = bash('source snippets/cuda_env.sh; echo "rc=$?"')
    assert done.stdout.strip() == "rc=2"
    assert "give the toolkit root, e.g. source cuda_env.sh /usr/local/cuda-12.6" in done.stderr


def test_cuda_env_refuses_to_be_run_instead_of_sourced(fake_toolkit):
    done = bash('bash snippets/cuda_env.sh "$1"', str(fake_toolkit("11.0")))
    assert done.returncode == 2
    assert "source this file" in done.stderr


def run_notes_block(root: Path, cuda_home_before: str | None) -> list[str]:
    block = NOTES_CUDA_BLOCK.replace("/usr/local/cuda-11.0", str(root))
    done = bash(block + SHOW_ENV, env_vars={"CUDA_HOME": cuda_home_before} if cuda_home_before else None)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_notes_E1_cuda_home_with_bin_has_no_nvcc(fake_toolkit):
    root = fake_toolkit("11.0")
    home, path, _, nvcc = run_notes_block(root, None)
    assert home == f"{root}/bin:"                        # a PATH-style value, not the root
    assert not os.path.exists(os.path.join(home, "bin", "nvcc"))
    assert not os.path.exists(os.path.join(home, "include"))
    # PATH is right, so nvcc still runs: that is why the mistake goes unnoticed
    assert nvcc == "Cuda compilation tools, release 11.0"
    with pytest.raises(ValueError, match="is a list of paths; it must be one folder, the toolkit root"):
        env.check_cuda_home(home)


def test_notes_E1_after_an_earlier_switch_cuda_home_grows(fake_toolkit):
    root = fake_toolkit("11.0")
    home, *_ = run_notes_block(root, "/usr/local/cuda-10.2/bin")
    assert home == f"{root}/bin:/usr/local/cuda-10.2/bin"
    assert os.path.join(home, "bin", "nvcc") == f"{root}/bin:/usr/local/cuda-10.2/bin/bin/nvcc"
    assert not os.path.exists(os.path.join(home, "bin", "nvcc"))


PROBE = textwrap.dedent("""\
    import json, logging, os, sys
    logging.disable(logging.WARNING)  # "No CUDA runtime is found" on a machine without a GPU
    import torch
    from torch.utils import cpp_extension
    find = getattr(cpp_extension, "_find_cuda_home", None)  # private; may move in other torch versions
    homes = []
    for value in sys.argv[1:]:
        os.environ["CUDA_HOME"] = value
        home = find() if find else os.environ["CUDA_HOME"]
        homes.append([home, os.path.exists(os.path.join(home, "bin", "nvcc"))])
    # what building an extension does first: find nvcc under CUDA_HOME, compare its version with torch's
    check = getattr(cpp_extension, "_check_cuda_version", None)  # private, too
    checks = []
    for home, _ in homes if check and torch.version.cuda else []:
        cpp_extension.CUDA_HOME = home
        try:
            check("g++", cpp_extension.TorchVersion("13.2.0"))
            checks.append(["ok"])
        except (OSError, RuntimeError) as err:
            checks.append([type(err).__name__, *map(str, err.args)])
    with open("/proc/self/maps") as maps:
        cublas = sorted({line.split()[-1] for line in maps if "libcublas.so" in line})
    print(json.dumps({"homes": homes, "checks": checks, "cuda": torch.version.cuda, "cublas": cublas}))
""")


def loaded_cublas() -> list[str]:
    """The cuBLAS files mapped into this process (torch is imported)."""
    maps = Path("/proc/self/maps").read_text()
    return sorted({line.split()[-1] for line in maps.splitlines() if "libcublas.so" in line})


@pytest.fixture(scope="module")
def probe_after_switch(tmp_path_factory):
    """Source the corrected script against a fake toolkit, then ask torch, in that environment,
    where CUDA_HOME is (for the script's value and the notes' value) and which CUDA it uses."""
    root = tmp_path_factory.mktemp("toolkit") / "cuda-11.0"
    for sub in ("bin", "include", "lib64", "extras/CUPTI/lib64"):
        (root / sub).mkdir(parents=True)
    (root / "bin" / "nvcc").write_text("#!/bin/sh\necho 'Cuda compilation tools, release 11.0'\n")
    (root / "bin" / "nvcc").chmod(0o755)
    shell = bash('source snippets/cuda_env.sh "$1" && printf "%s\\n" "$CUDA_HOME" "$PATH" "$LD_LIBRARY_PATH"',
                 str(root))
    assert shell.returncode == 0, shell.stderr
    cuda_home, path, libs = shell.stdout.splitlines()
    notes_value = run_notes_block(root, None)[0]
    done = subprocess.run([sys.executable, "-c", PROBE, cuda_home, notes_value], capture_output=True, text=True,
                          timeout=120, env={"PATH": path, "LD_LIBRARY_PATH": libs, "CUDA_HOME": cuda_home,
                                            "HOME": os.environ.get("HOME", "/tmp")})
    assert done.returncode == 0, done.stderr
    return root, json.loads(done.stdout)


def test_cpp_extension_finds_nvcc_with_the_corrected_script_not_the_notes(probe_after_switch):
    root, probe = probe_after_switch
    assert probe["homes"] == [[str(root), True], [f"{root}/bin:", False]]


def test_notes_E1_extension_build_cannot_find_nvcc(probe_after_switch):
    root, probe = probe_after_switch
    if not probe["checks"]:
        pytest.skip("needs a CUDA build of torch whose cpp_extension has _check_cuda_version")
    corrected, notes = probe["checks"]
    if TORCH_RELEASE == (2, 6):  # the page: torch 2.6 stops where it runs nvcc, with the OS's words
        assert notes == ["FileNotFoundError", "2", "No such file or directory"]
    else:
        assert notes == ["FileNotFoundError", f"nvcc not found at '{root}/bin:/bin/nvcc'. "
                         f"Ensure CUDA path '{root}/bin:' is correct."]
    # the corrected value gets past the lookup to the version check: the major versions must agree
    assert corrected[0] == "RuntimeError" and "mismatches the version" in corrected[1]
    if TORCH_RELEASE == (2, 6):  # the versions written into the message
        assert "(11.0)" in corrected[1] and f"({torch.version.cuda})" in corrected[1]
    else:
        assert corrected[2:] == ["11.0", torch.version.cuda]


@pytest.mark.skipif(torch.version.cuda is None, reason="a CPU-only torch build loads no CUDA libraries")
def test_notes_E2_toolkit_variables_do_not_change_the_cuda_torch_uses(probe_after_switch):
    _, probe = probe_after_switch
    # with CUDA_HOME, PATH and LD_LIBRARY_PATH on a (fake) CUDA 11.0: same CUDA, same cuBLAS file
    assert probe["cuda"] == torch.version.cuda
    assert probe["cublas"] == loaded_cublas()
    if not probe["cublas"]:
        pytest.skip("this torch did not load cuBLAS at import (not a pip wheel build?)")
    assert all("site-packages/nvidia" in f for f in probe["cublas"])  # torch's own nvidia-* wheels


# ---------------------------------------------------------------- check_cuda_home

def test_check_cuda_home_returns_nvcc_for_a_root(fake_toolkit):
    root = fake_toolkit("12.6")
    assert env.check_cuda_home(str(root)) == root / "bin" / "nvcc"


def test_check_cuda_home_reads_the_environment(fake_toolkit, monkeypatch):
    root = fake_toolkit("12.6")
    monkeypatch.setenv("CUDA_HOME", str(root))
    assert env.check_cuda_home() == root / "bin" / "nvcc"
    monkeypatch.delenv("CUDA_HOME")
    with pytest.raises(ValueError, match="CUDA_HOME is not set; set it to the toolkit root"):
        env.check_cuda_home()


def test_check_cuda_home_points_out_a_bin_folder(fake_toolkit):
    root = fake_toolkit("12.6")
    with pytest.raises(ValueError, match=r"has no bin/nvcc \(it points at bin/; use its parent\)"):
        env.check_cuda_home(str(root / "bin"))


def test_check_cuda_home_accepts_a_path_and_rejects_other_types(fake_toolkit):
    root = fake_toolkit("12.6")
    assert env.check_cuda_home(root) == root / "bin" / "nvcc"
    with pytest.raises(TypeError, match=r"^check_cuda_home expects a path \(str or Path\), got int$"):
        env.check_cuda_home(126)


def test_device_report_cuda_build_without_cudnn(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: None)
    assert env.device_report().splitlines()[1] == "built with CUDA 13.0, cuDNN not found"


def test_check_cuda_home_rejects_a_folder_without_nvcc(tmp_path):
    with pytest.raises(ValueError, match=r"has no bin/nvcc; set it to the toolkit root$"):
        env.check_cuda_home(str(tmp_path))


def test_the_pages_examples_run_in_order_in_an_empty_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # the child process is tested on its own (test_an_empty_cuda_visible_devices_hides_every_gpu)
    monkeypatch.setattr(env, "gpus_seen_with", lambda visible: 0)
    env.tour()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{torch.__version__} {__import__('torchvision').__version__}"
    import multiprocessing
    assert out[-6:] == ["True", "True", "torch.float32 torch.float64", "torch.float64",
                        f"{multiprocessing.get_all_start_methods()} True", "cuda-11.0/bin/nvcc"]
    assert out[1:4] == [f"{system:8} {env.install_command(system, build)}" for system, build
                        in [("Linux", "cpu"), ("Windows", "cu130"), ("Darwin", "mps")]]
    assert (tmp_path / "cuda-11.0" / "bin" / "nvcc").is_file()


# --- exercises -------------------------------------------------------------------------------------
def test_exercise_to_device_moves_every_tensor_and_leaves_the_batch_where_it_was():
    image, labels = torch.ones(2, 3), (torch.tensor(1), [torch.tensor(0)])
    batch = {"image": image, "labels": labels, "id": 7, "name": "a"}
    moved = env.to_device(batch, torch.device("meta"))  # a device every machine has
    assert moved["image"].device.type == "meta" and moved["image"].shape == (2, 3)
    assert isinstance(moved["labels"], tuple) and isinstance(moved["labels"][1], list)
    assert moved["labels"][0].device.type == moved["labels"][1][0].device.type == "meta"
    assert moved["id"] == 7 and moved["name"] == "a"
    assert batch["image"] is image and image.device.type == "cpu" and batch["labels"] is labels


@pytest.mark.parametrize("torch_version, vision_version, matching", [
    ("2.14.1+cu130", "0.29.1+cu130", True),
    ("2.14.1+cpu", "0.29.1+cpu", True),
    ("2.14.1", "0.29.0", True),
    ("2.11.0+cu130", "0.26.0+cu130", True),      # the H200 run's pair (generated/gpu-report.json)
    ("2.14.1+cpu", "0.29.1+cu130", False),       # one release, two builds
    ("2.14.1+cu130", "0.29.1", False),
    ("2.14.1", "0.28.0", False),                 # torchvision 0.28 is torch 2.13's
    ("2.15.0+cu132", "0.29.2+cu132", True),      # the page: 0.29 asks for torch>=2.14 (make matrix's 2.15)
    ("2.13.0", "0.29.0", False),
    ("2.15.0", "0.28.0", False),
])
def test_exercise_matching_pair(torch_version, vision_version, matching):
    assert env.matching_pair(torch_version, vision_version) is matching


def test_exercise_matching_pair_accepts_the_installed_pair():
    import torchvision

    assert env.matching_pair(torch.__version__, torchvision.__version__)


# ---------------------------------------------------------------- Windows and macOS

@pytest.mark.parametrize("system, build, expected", [
    ("Linux", "cpu", "python -m pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"),
    ("Windows", "cu130", "python -m pip install torch torchvision --index-url https://download.pytorch.org/whl/cu130"),
    ("Windows", "cpu", "python -m pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"),
    ("Darwin", "mps", "python -m pip install torch torchvision"),
    ("Darwin", "cpu", "python -m pip install torch torchvision"),
])
def test_install_command_per_system(system, build, expected):
    assert env.install_command(system, build) == expected


@pytest.mark.parametrize("build", ["cpu", "cu126", "cu130"])
def test_install_command_uses_the_index_install_sh_uses(build):
    """The Linux/Windows line takes torch from the same index as install.sh."""
    _, args, _ = run_install(build)
    url = args[args.index("--index-url") + 1]
    assert env.install_command("Linux", build).endswith(f"--index-url {url}")


@pytest.mark.parametrize("system, build, message", [
    ("Darwin", "cu130", "there are no CUDA builds of torch for macOS; on Apple silicon the default "
                        "wheel brings MPS: use build='mps'"),
    ("Linux", "mps", "MPS is the GPU of Apple silicon Macs, not of Linux; use 'cpu' or a CUDA tag"),
    ("Windows", "mps", "not of Windows"),
    ("macOS", "cpu", r"system must be one of \('Linux', 'Windows', 'Darwin'\) \(platform.system\(\)\), "
                     "got 'macOS'"),
    ("Linux", "cuda", "build must be 'cpu', 'mps' or a CUDA tag such as 'cu130', got 'cuda'"),
    ("Linux", 130, "got 130"),
])
def test_install_command_refuses_what_does_not_exist(system, build, message):
    with pytest.raises(ValueError, match=message):
        env.install_command(system, build)


def test_this_linux_torch_has_no_mps_and_platform_names_the_system():
    import platform
    assert platform.system() == "Linux"
    assert not torch.backends.mps.is_built() and not torch.backends.mps.is_available()


def test_get_all_start_methods_offers_spawn_and_lists_the_default_first():
    import multiprocessing
    methods = multiprocessing.get_all_start_methods()
    assert "spawn" in methods and set(methods) <= {"fork", "spawn", "forkserver"}
    done = subprocess.run([sys.executable, "-c", "import multiprocessing as m; "
                           "print(m.get_start_method(), m.get_all_start_methods()[0])"],
                          capture_output=True, text=True, check=True, timeout=60)
    default, first = done.stdout.split()
    assert default == first
    assert default == ("fork" if sys.version_info < (3, 14) else "forkserver")  # Linux


SPAWN_SCRIPT = """\
import multiprocessing
import sys


def child_main_name():
    return sys.modules["__main__"].__name__


print("top level runs in", __name__, flush=True)
if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    with multiprocessing.Pool(1) as pool:
        print("the child imported the script as", pool.apply(child_main_name), flush=True)
"""


@pytest.mark.multiprocess
def test_spawn_forced_on_linux_imports_the_script_again_as_mp_main(tmp_path):
    """The page: a spawned child imports the main script again, under the name __mp_main__,
    so its top level runs once more in the child and the guarded code does not."""
    (tmp_path / "script.py").write_text(SPAWN_SCRIPT)
    done = subprocess.run([sys.executable, "script.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines.count("top level runs in __main__") == 1
    assert lines.count("top level runs in __mp_main__") == 1
    assert lines[-1] == "the child imported the script as __mp_main__"


@pytest.mark.multiprocess
def test_spawn_cannot_send_a_lambda_or_a_function_defined_inside_another():
    import multiprocessing
    import pickle

    def inner():
        return 1

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        for func in (lambda: 1, inner):
            with pytest.raises((pickle.PicklingError, AttributeError), match="(?i)can't pickle"):
                pool.apply(func)


HIDE_SETUPTOOLS = textwrap.dedent("""
    import importlib.abc, sys
    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "setuptools":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    sys.meta_path.insert(0, Hide())
    """)


@pytest.mark.parametrize("code", ["from torch.utils import benchmark",
                                  "import torch; torch.compile(lambda x: x + 1)(torch.ones(2))"])
def test_benchmark_and_compile_on_cpu_stop_without_setuptools(code):
    """The environment page: both import setuptools, through torch.utils.cpp_extension."""
    done = remembered([sys.executable, "-c", HIDE_SETUPTOOLS + code], env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
                      keep=lambda done: "No module named 'setuptools'" in done.stderr)
    assert done.returncode != 0
    assert "ModuleNotFoundError: No module named 'setuptools'" in done.stderr


def test_which_torch_releases_install_setuptools_with_them():
    """The environment page: 2.11 and later require setuptools; 2.6 only on Python 3.12 and later."""
    wanted = [r for r in importlib.metadata.requires("torch") if re.match(r"setuptools\b", r)]
    if TORCH_RELEASE >= (2, 11):
        assert wanted and all(";" not in r for r in wanted), wanted
    elif TORCH_RELEASE == (2, 6):
        assert [r.split(";")[1].strip() for r in wanted] == ['python_version >= "3.12"']
