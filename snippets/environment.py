"""Chapter `environment`: checking the install and choosing a device.

Sections marked `--8<-- [start:name]` are shown on docs/{zh,en}/environment.md.
"""
# --8<-- [start:imports]
import torch
# --8<-- [end:imports]


# --8<-- [start:pick_device]
def pick_device(prefer: str | None = None) -> torch.device:
    """The device to run on: CUDA when present, else CPU; `prefer` forces one ("cpu", "cuda", "cuda:1")."""
    if prefer is not None:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"{prefer!r} was asked for, but torch.cuda.is_available() is False "
                               "(a CPU-only torch build, or no GPU/driver); use pick_device() to fall back to the CPU")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
# --8<-- [end:pick_device]
