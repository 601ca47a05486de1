"""Chapter `environment`: checking the install, choosing a device, moving data to it.

Run it as `python -m snippets.environment` (prints this machine's device report and
runs the page's examples). Sections marked `--8<-- [start:name]` are shown, in this
order, on docs/{zh,en}/environment.md. The shell parts of the chapter are
snippets/install.sh and snippets/cuda_env.sh.
"""
import contextlib  # for the module's own runner (__main__), not shown
import tempfile

# isort: split
# --8<-- [start:imports]
import ctypes
import importlib.metadata
import multiprocessing
import os
import re
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

# --8<-- [end:imports]


# --8<-- [start:install_command]
def install_command(system: str, build: str = "cpu") -> str:
    """The pip line for torch and torchvision on 'Linux', 'Windows' or 'Darwin'."""
    systems = ("Linux", "Windows", "Darwin")  # the names platform.system() gives
    if system not in systems:
        raise ValueError(f"system must be one of {systems} (platform.system()), "
                         f"got {system!r}")
    if not isinstance(build, str) or not re.fullmatch(r"cpu|mps|cu\d{3}", build):
        raise ValueError("build must be 'cpu', 'mps' or a CUDA tag such as 'cu130', "
                         f"got {build!r}")
    pip = "python -m pip install torch torchvision"  # the pip of this python
    if system == "Darwin":
        if build.startswith("cu"):
            raise ValueError("there are no CUDA builds of torch for macOS; on Apple "
                             "silicon the default wheel brings MPS: use build='mps'")
        return pip  # PyPI's macOS wheel: CPU, and MPS on Apple silicon
    if build == "mps":
        raise ValueError(f"MPS is the GPU of Apple silicon Macs, not of {system}; "
                         "use 'cpu' or a CUDA tag such as 'cu130'")
    return f"{pip} --index-url https://download.pytorch.org/whl/{build}"
# --8<-- [end:install_command]


# --8<-- [start:cuda_runtime_wheel]
def cuda_runtime_wheel() -> str | None:
    """The pip package with torch's CUDA runtime ('nvidia-cuda-runtime 13.0.96')."""
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or ""
        if name.lower().startswith("nvidia-cuda-runtime"):
            return f"{name} {dist.version}"
    return None
# --8<-- [end:cuda_runtime_wheel]


# --8<-- [start:device_report]
def device_report() -> str:
    """What this torch can use: its version, the CUDA it was built with, its GPUs."""
    lines = [f"torch {torch.__version__}"]
    if torch.version.cuda is not None:
        cudnn = torch.backends.cudnn.version() or "not found"  # 92400 means 9.24.0
        lines.append(f"built with CUDA {torch.version.cuda}, cuDNN {cudnn}")
        wheel = cuda_runtime_wheel() or "no nvidia-* wheel (conda or system libraries)"
        lines.append(f"CUDA runtime from: {wheel}")
    elif getattr(torch.version, "hip", None):
        lines.append(f"built with ROCm (HIP {torch.version.hip})")
    else:
        lines.append("built without CUDA (a CPU-only build)")
    if not torch.cuda.is_available():
        lines.append("torch.cuda.is_available(): False")
        lines.append("GPU: none visible, so tensors and models stay on the CPU")
        return "\n".join(lines)
    count = torch.cuda.device_count()
    lines.append(f"torch.cuda.is_available(): True, {count} device(s)")
    for i in range(count):
        p = torch.cuda.get_device_properties(i)
        lines.append(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, "
                     f"compute capability {p.major}.{p.minor}")
    return "\n".join(lines)
# --8<-- [end:device_report]


# --8<-- [start:driver_cuda_version]
def driver_cuda_version() -> str | None:
    """The newest CUDA the NVIDIA driver supports (nvidia-smi's "CUDA Version")."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")  # part of the driver, not of a toolkit
    except OSError:
        return None  # no NVIDIA driver on this machine
    version = ctypes.c_int()
    if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
        return None
    return f"{version.value // 1000}.{version.value % 1000 // 10}"  # 13000 -> 13.0
# --8<-- [end:driver_cuda_version]


# --8<-- [start:gpus_seen_with]
def gpus_seen_with(visible: str) -> int:
    """torch.cuda.device_count() in a new process started with CUDA_VISIBLE_DEVICES."""
    if not isinstance(visible, str):
        raise TypeError("visible must be a string such as '0,2' or '' (no GPU), "
                        f"got {type(visible).__name__}")
    code = "import torch; print(torch.cuda.device_count())"
    child_env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible}
    done = subprocess.run([sys.executable, "-c", code], env=child_env,
                          capture_output=True, text=True, check=True)
    return int(done.stdout)
# --8<-- [end:gpus_seen_with]


# --8<-- [start:pick_device]
def accelerator() -> str | None:
    """The type of this machine's accelerator ('cuda', 'mps', 'xpu', ...) or None."""
    if hasattr(torch, "accelerator"):  # torch 2.6+: one API for every backend
        if not torch.accelerator.is_available():
            return None
        return torch.accelerator.current_accelerator().type
    if torch.cuda.is_available():  # older torch: ask CUDA (and ROCm), then MPS
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else None


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The accelerator when there is one (CUDA, ROCm, MPS, XPU...), else the CPU.

    `prefer` forces a device ("cpu", "cuda:1", "mps") after checking it is usable.
    """
    found = accelerator()
    if prefer is None:
        return torch.device(found or "cpu")
    if not isinstance(prefer, (str, torch.device)):
        raise TypeError("prefer must be a device name such as 'cuda:0' or a "
                        f"torch.device, got {type(prefer).__name__}")
    try:
        device = torch.device(prefer)
    except RuntimeError as err:
        raise ValueError(f"{prefer!r} is not a device name; use 'cpu', 'cuda', "
                         "'cuda:N', 'mps' or 'xpu'") from err
    if device.type == "hip":
        raise ValueError("a ROCm GPU is 'cuda' in torch; ask for 'cuda' or 'cuda:N'")
    if device.type == "cpu":
        return device
    asked = f"{prefer!r} was asked for, but"
    if device.type != found:
        have = (f"this machine's accelerator is {found!r}" if found else
                "torch finds no accelerator (a CPU-only build, or no GPU/driver)")
        raise RuntimeError(f"{asked} {have}; use pick_device() to take what "
                           "there is, the CPU included")
    count = (torch.accelerator.device_count() if hasattr(torch, "accelerator")
             else torch.cuda.device_count() if found == "cuda" else 1)
    if device.index is not None and device.index >= count:
        raise RuntimeError(f"{asked} only {count} {found} device(s) are visible "
                           f"({found}:0 to {found}:{count - 1}); use a lower index "
                           "or check CUDA_VISIBLE_DEVICES")
    return device
# --8<-- [end:pick_device]


# --8<-- [start:check_cuda_home]
def check_cuda_home(value: str | os.PathLike | None = None) -> Path:
    """Check a CUDA_HOME value (default: the environment's); return its nvcc."""
    if value is None:
        value = os.environ.get("CUDA_HOME")
    elif isinstance(value, (str, os.PathLike)):
        value = os.fspath(value)
    else:
        raise TypeError("check_cuda_home expects a path (str or Path), "
                        f"got {type(value).__name__}")
    fix = "set it to the toolkit root"
    if not value:
        raise ValueError(f"CUDA_HOME is not set; {fix}, e.g. /usr/local/cuda-12.6")
    if os.pathsep in value:
        raise ValueError(f"CUDA_HOME={value!r} is a list of paths; it must be one "
                         "folder, the toolkit root (the folder that holds bin/nvcc), "
                         "not a PATH-style list")
    nvcc = Path(value) / "bin" / "nvcc"
    if not nvcc.is_file():
        at_bin = Path(value).name == "bin"
        hint = " (it points at bin/; use its parent)" if at_bin else ""
        raise ValueError(f"CUDA_HOME={value!r} has no bin/nvcc{hint}; {fix}")
    return nvcc
# --8<-- [end:check_cuda_home]


def tour() -> None:
    """The page's examples in page order (run it in an empty folder: it makes files)."""
    # --8<-- [start:demo_pair]
    import torchvision  # fails here if it was built for another torch

    print(torch.__version__, torchvision.__version__)  # one release pair, one build
    # --8<-- [end:demo_pair]

    # --8<-- [start:demo_install_command]
    for system, build in [("Linux", "cpu"), ("Windows", "cu130"), ("Darwin", "mps")]:
        print(f"{system:8}", install_command(system, build))
    # --8<-- [end:demo_install_command]

    # --8<-- [start:demo_device_report]
    print(device_report())
    # --8<-- [end:demo_device_report]

    # --8<-- [start:demo_driver_cuda_version]
    print(driver_cuda_version())  # None: no NVIDIA driver, so no nvidia-smi either
    # --8<-- [end:demo_driver_cuda_version]

    # --8<-- [start:demo_visible_devices]
    print(gpus_seen_with(""))  # an empty list hides every GPU
    # --8<-- [end:demo_visible_devices]

    # --8<-- [start:demo_pick_device]
    device = pick_device()  # cuda if a GPU is visible, else cpu
    print(device.type in ("cuda", "cpu"))
    print(pick_device("cpu"))  # force the CPU, e.g. to compare results
    # --8<-- [end:demo_pick_device]

    # --8<-- [start:demo_backends]
    print("CUDA:", torch.version.cuda, "| ROCm (HIP):", torch.version.hip)
    usable = torch.accelerator.is_available()
    try:
        found = torch.accelerator.current_accelerator()  # the build's, even with no GPU
    except RuntimeError:  # torch 2.6: none is usable
        found = None
    print("accelerator:", found, "| usable:", usable)
    # --8<-- [end:demo_backends]

    # --8<-- [start:demo_device_refused]
    try:
        pick_device("cuda:99")  # no machine has 100 GPUs
    except RuntimeError as err:
        print(err)
    # --8<-- [end:demo_device_refused]

    # --8<-- [start:demo_module_moves]
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    data = torch.ones(4, 3)
    print(model.to(device) is model)  # a module moves in place and returns itself
    data.to(device)  # a tensor does NOT move: this copy is thrown away
    data = data.to(device)  # so always reassign
    print(model(data).device.type == device.type)
    # --8<-- [end:demo_module_moves]

    # --8<-- [start:demo_to_dtype]
    x = torch.ones(2)
    y = x.to(torch.float64)
    print(x.dtype, y.dtype)  # x itself is unchanged
    model.to(torch.float64)
    print(model.weight.dtype)  # the module itself changed
    # --8<-- [end:demo_to_dtype]

    # --8<-- [start:demo_start_methods]
    methods = multiprocessing.get_all_start_methods()  # this system's, default first
    print(methods, "spawn" in methods)
    # --8<-- [end:demo_start_methods]

    # --8<-- [start:demo_check_cuda_home]
    root = Path("cuda-11.0")  # a stand-in for /usr/local/cuda-11.0
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "bin" / "nvcc").write_text("#!/bin/sh\n")
    print(check_cuda_home(root))  # the toolkit root: fine
    # --8<-- [end:demo_check_cuda_home]


def demo_bad_device_name() -> None:
    # --8<-- [start:demo_bad_device_name]
    pick_device("gpu")  # torch calls it "cuda"
    # --8<-- [end:demo_bad_device_name]


def demo_hip_device() -> None:
    # --8<-- [start:demo_hip_device]
    pick_device("hip")  # a ROCm GPU is "cuda" in torch
    # --8<-- [end:demo_hip_device]


def demo_install_mac_cuda() -> None:
    # --8<-- [start:demo_install_mac_cuda]
    install_command("Darwin", "cu130")  # a Mac has no NVIDIA GPU
    # --8<-- [end:demo_install_mac_cuda]


def demo_notes_cuda_home() -> None:
    # --8<-- [start:demo_notes_cuda_home]
    # the notes' line, run once in a fresh shell (CUDA_HOME was empty):
    #   export CUDA_HOME=/usr/local/cuda-11.0/bin:$CUDA_HOME
    check_cuda_home("cuda-11.0/bin:")
    # --8<-- [end:demo_notes_cuda_home]


# --8<-- [start:exercise_to_device]
def to_device(batch, device: torch.device):
    """A tensor, or lists, tuples and dicts of them, moved to `device` (new ones)."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)  # a new tensor: the caller keeps what this returns
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch  # a number or a string stays as it is
# --8<-- [end:exercise_to_device]


# --8<-- [start:exercise_matching_pair]
def matching_pair(torch_version: str, vision_version: str) -> bool:
    """One release pair (torch 2.x, torchvision 0.(x+15)) and one build (+cpu, ...)."""
    t_release, _, t_build = torch_version.partition("+")
    v_release, _, v_build = vision_version.partition("+")
    t_major, t_minor = (int(n) for n in t_release.split(".")[:2])
    v_major, v_minor = (int(n) for n in v_release.split(".")[:2])
    if (t_major, v_major) != (2, 0) or t_build != v_build:
        return False
    if v_minor >= 29:  # stable ABI: 0.29 asks for torch>=2.14, so 2.15 too
        return t_minor >= v_minor - 15
    return t_minor == v_minor - 15
# --8<-- [end:exercise_matching_pair]


def exercises() -> None:
    """The exercises' solutions, in page order."""
    import torchvision

    # --8<-- [start:exercise_to_device_check]
    device = pick_device()
    labels = [torch.tensor(1), torch.tensor(0)]
    batch = {"image": torch.ones(2, 3), "labels": labels, "id": 7}
    moved = to_device(batch, device)
    tensors = [moved["image"], *moved["labels"]]
    print(all(t.device.type == device.type for t in tensors), moved["id"])
    print(batch["image"].device)  # the original batch has not moved
    # --8<-- [end:exercise_to_device_check]

    # --8<-- [start:exercise_matching_pair_check]
    print(matching_pair(torch.__version__, torchvision.__version__))  # this install
    print(matching_pair("2.14.1+cpu", "0.29.1+cu130"))  # one release, two builds
    print(matching_pair("2.14.1", "0.28.0"))  # torchvision 0.28 is torch 2.13's
    # --8<-- [end:exercise_matching_pair_check]


if __name__ == "__main__":  # in a temporary folder: the tour makes a stand-in CUDA dir
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        tour()
    exercises()
