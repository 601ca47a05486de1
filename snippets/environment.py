"""Chapter `environment`: checking the install, choosing a device, moving data to it.

Run it as `python -m snippets.environment` (prints this machine's device report).
Sections marked `--8<-- [start:name]` are shown on docs/{zh,en}/environment.md.
The shell parts of the chapter are snippets/install.sh and snippets/cuda_env.sh.
"""
# --8<-- [start:imports]
import importlib.metadata
import os
from pathlib import Path

import torch
from torch import nn
# --8<-- [end:imports]


# --8<-- [start:device_report]
def cuda_runtime_wheel() -> str | None:
    """The pip package that ships torch's CUDA runtime (e.g. 'nvidia-cuda-runtime 13.0.96'), if any."""
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] or ""
        if name.lower().startswith("nvidia-cuda-runtime"):
            return f"{name} {dist.version}"
    return None


def device_report() -> str:
    """What this torch can use: its version, the CUDA/cuDNN it was built with, the GPUs it sees."""
    lines = [f"torch {torch.__version__}"]
    if torch.version.cuda is not None:
        cudnn = torch.backends.cudnn.version()  # an int: 92400 means 9.24.0
        lines.append(f"built with CUDA {torch.version.cuda}, cuDNN {cudnn or 'not found'}")
        wheel = cuda_runtime_wheel()
        lines.append(f"CUDA runtime from: {wheel or 'no nvidia-* wheel (conda or system libraries)'}")
    elif getattr(torch.version, "hip", None):
        lines.append(f"built with ROCm (HIP {torch.version.hip})")
    else:
        lines.append("built without CUDA (a CPU-only build)")
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        lines.append(f"torch.cuda.is_available(): True, {count} device(s)")
        for i in range(count):
            props = torch.cuda.get_device_properties(i)
            lines.append(f"  cuda:{i} {props.name}, {props.total_memory / 2**30:.0f} GiB, "
                         f"compute capability {props.major}.{props.minor}")
    else:
        lines.append("torch.cuda.is_available(): False")
        lines.append("CPU only: no CUDA device is visible, tensors and models stay on the CPU")
    return "\n".join(lines)
# --8<-- [end:device_report]


# --8<-- [start:pick_device]
def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to run on: CUDA when present, else CPU; `prefer` forces one ("cpu", "cuda", "cuda:1", "mps")."""
    if prefer is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(prefer, (str, torch.device)):
        raise TypeError(f"prefer must be a device name such as 'cuda:0' or a torch.device, "
                        f"got {type(prefer).__name__}")
    try:
        device = torch.device(prefer)
    except RuntimeError as err:
        raise ValueError(f"{prefer!r} is not a device name; use 'cpu', 'cuda', 'cuda:N' or 'mps'") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"{prefer!r} was asked for, but torch.cuda.is_available() is False "
                               "(a CPU-only torch build, or no GPU/driver); use pick_device() to fall back to the CPU")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise RuntimeError(f"{prefer!r} was asked for, but only {count} CUDA device(s) are visible "
                               f"(cuda:0 to cuda:{count - 1}); use a lower index or check CUDA_VISIBLE_DEVICES")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"{prefer!r} was asked for, but torch.backends.mps.is_available() is False "
                           "(MPS needs Apple silicon and macOS); use pick_device() to fall back to the CPU")
    return device
# --8<-- [end:pick_device]


# --8<-- [start:check_cuda_home]
def check_cuda_home(value: str | os.PathLike | None = None) -> Path:
    """Check a CUDA_HOME value (default: the environment's); return the nvcc it points to."""
    if value is None:
        value = os.environ.get("CUDA_HOME")
    elif isinstance(value, (str, os.PathLike)):
        value = os.fspath(value)
    else:
        raise TypeError(f"check_cuda_home expects a path (str or Path), got {type(value).__name__}")
    if not value:
        raise ValueError("CUDA_HOME is not set; set it to the toolkit root, e.g. /usr/local/cuda-12.6")
    if os.pathsep in value:
        raise ValueError(f"CUDA_HOME={value!r} is a list of paths; it must be one folder, the toolkit root "
                         "(the folder that holds bin/nvcc), not a PATH-style list")
    nvcc = Path(value) / "bin" / "nvcc"
    if not nvcc.is_file():
        hint = " (it points at bin/; use its parent)" if Path(value).name == "bin" else ""
        raise ValueError(f"CUDA_HOME={value!r} has no bin/nvcc{hint}; set it to the toolkit root")
    return nvcc
# --8<-- [end:check_cuda_home]


def demo_device_report() -> None:
    # --8<-- [start:demo_device_report]
    print(device_report())
    # --8<-- [end:demo_device_report]


def demo_pick_device() -> torch.device:
    # --8<-- [start:demo_pick_device]
    device = pick_device()                # cuda if a GPU is visible, else cpu
    print(device.type in ("cuda", "cpu"))
    print(pick_device("cpu"))             # force the CPU, e.g. to compare results
    try:
        pick_device("cuda:99")            # no machine has 100 GPUs
    except RuntimeError as err:
        print(err)
    # --8<-- [end:demo_pick_device]
    return device


def demo_bad_device_name() -> None:
    # --8<-- [start:demo_bad_device_name]
    pick_device("gpu")                    # torch calls it "cuda"
    # --8<-- [end:demo_bad_device_name]


def demo_to_device() -> None:
    # --8<-- [start:demo_to_device]
    torch.manual_seed(0)
    device = pick_device()
    model = nn.Linear(3, 2)
    data = torch.ones(4, 3)

    print(model.to(device) is model)      # a module moves in place and returns itself
    data.to(device)                       # a tensor does NOT move: this copy is thrown away
    data = data.to(device)                # so always reassign
    out = model(data)
    print(out.device.type == device.type)

    # the same rule, visible on any machine: .to() with a dtype
    x = torch.ones(2)
    y = x.to(torch.float64)
    print(x.dtype, y.dtype)               # x itself is unchanged
    model.to(torch.float64)
    print(model.weight.dtype)             # the module itself changed
    # --8<-- [end:demo_to_device]


def demo_check_cuda_home() -> Path:
    # --8<-- [start:demo_check_cuda_home]
    root = Path("cuda-11.0")              # a stand-in for /usr/local/cuda-11.0
    (root / "bin").mkdir(parents=True, exist_ok=True)
    (root / "bin" / "nvcc").write_text("#!/bin/sh\n")
    print(check_cuda_home(str(root)))     # the toolkit root: fine
    # --8<-- [end:demo_check_cuda_home]
    return root


def demo_notes_cuda_home() -> None:
    # --8<-- [start:demo_notes_cuda_home]
    # the notes' line, run once in a fresh shell (CUDA_HOME was empty):
    #   export CUDA_HOME=/usr/local/cuda-11.0/bin:$CUDA_HOME
    check_cuda_home("cuda-11.0/bin:")
    # --8<-- [end:demo_notes_cuda_home]


if __name__ == "__main__":
    demo_device_report()
