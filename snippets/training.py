"""Chapter `training`: the whole training loop on real handwritten digits.

Device, train/eval modes, zero_grad -> forward -> loss -> backward -> step, evaluation
under no_grad, accuracy per epoch, keeping the best weights, seeding, and a curve
picture.

Run it as `python -m snippets.training` (or `python snippets/training.py`).
Sections marked `--8<-- [start:name]` are shown on docs/{zh,en}/training.md.
"""
import contextlib  # for the module's own runner (__main__), not shown
import tempfile

# isort: split
# --8<-- [start:imports]
import copy
import math
import random
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils import benchmark
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

# --8<-- [end:imports]
# isort: split
# shown on the page by including its section
from snippets.environment import pick_device


# --8<-- [start:seed_everything]
def seed_everything(seed: int, deterministic_cudnn: bool = False) -> None:
    """Seed every random number generator a training run touches.

    deterministic_cudnn=True also makes cuDNN repeat itself (slower convolutions).
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # CPU and every CUDA device
    if deterministic_cudnn:  # no run-to-run choice of conv algorithm, at a cost
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
# --8<-- [end:seed_everything]


# --8<-- [start:digit_loaders]
def digit_loaders(batch_size: int = 64, val_fraction: float = 0.2,
                  seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Real 8x8 digits: a stratified train/val split, (N, 1, 8, 8) tensors in [0, 1]."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not 0 < val_fraction < 1:
        raise ValueError("val_fraction must be between 0 and 1 (e.g. 0.2), "
                         f"got {val_fraction!r}")
    digits = load_digits()  # 1,797 images, pixel values 0..16
    X = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16
    y = torch.tensor(digits.target, dtype=torch.long)
    X_train, X_val, y_train, y_val = train_test_split(  # same class mix in both parts
        X, y, test_size=val_fraction, stratify=y, random_state=seed)
    train_loader = DataLoader(TensorDataset(X_train, y_train), batch_size=batch_size,
                              shuffle=True,
                              generator=torch.Generator().manual_seed(seed))
    val_loader = DataLoader(TensorDataset(X_val, y_val), batch_size=256)
    return train_loader, val_loader
# --8<-- [end:digit_loaders]


# --8<-- [start:device_helpers]
def as_device(device) -> torch.device:
    """`device` as a torch.device, with a clear error for anything else."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError("device must be a torch.device or a name such as 'cuda', "
                        f"got {type(device).__name__}")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"{device!r} is not a device name; use what pick_device() "
                         "returns, or 'cpu', 'cuda', 'mps', 'xpu'") from err


def wait_for(device) -> None:
    """Block until `device` has run all the work queued on it (the CPU has no queue)."""
    device = as_device(device)
    if device.type != "cpu":
        torch.accelerator.synchronize(device)  # torch 2.6+: any accelerator


def memory_in_use(device) -> int | None:
    """Bytes held by tensors on `device`; None on the CPU (torch keeps no count)."""
    device = as_device(device)
    if device.type == "cpu":
        return None
    if hasattr(torch.accelerator, "memory_allocated"):  # newer torch: any accelerator
        return torch.accelerator.memory_allocated(device)
    if device.type == "mps":  # older torch: each backend's own function
        return torch.mps.current_allocated_memory()
    return getattr(torch, device.type).memory_allocated(device)
# --8<-- [end:device_helpers]


# --8<-- [start:model]
class DigitCNN(nn.Module):
    """conv-relu-conv-relu-maxpool, then dropout and two linear layers."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.ReLU(),  # (N, 16, 8, 8)
            nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.ReLU(),  # (N, 32, 8, 8)
            nn.MaxPool2d(2),  # (N, 32, 4, 4)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(p=0.25),  # active only in train mode
            nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
            nn.Linear(64, num_classes),  # raw scores (logits)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
# --8<-- [end:model]


# --8<-- [start:check_labels]
def check_labels(labels, num_classes: int) -> None:
    """Every label must be a class index in [0, num_classes), as CrossEntropyLoss needs.

    Call it once, before training, on the dataset's labels (on the CPU).
    """
    labels = torch.as_tensor(labels)
    if labels.numel() == 0:
        raise ValueError("no labels to check: the dataset is empty")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(f"the labels hold {bad}, but the model has {num_classes} "
                         f"outputs, so labels must be 0..{num_classes - 1}; fix the "
                         "labels or give the last layer more outputs")
# --8<-- [end:check_labels]


# --8<-- [start:train_one_epoch]
def train_one_epoch(model, loader, loss_fn, optimizer, device) -> float:
    """One pass over the training data; returns the mean loss."""
    model.train()  # dropout on, batchnorm uses batch statistics
    total, count = torch.zeros((), device=device), 0  # a sum kept on the device
    for data, label in loader:
        # reassign: a tensor's .to() returns a new tensor
        data, label = data.to(device), label.to(device)
        optimizer.zero_grad()  # 1. clear old gradients (sets them to None)
        output = model(data)  # 2. forward
        loss = loss_fn(output, label)  # 3. loss
        loss.backward()  # 4. gradients
        optimizer.step()  # 5. update the parameters
        total += loss.detach() * len(label)  # no .item(): no wait for the device
        count += len(label)
    return total.item() / count  # one .item() per epoch
# --8<-- [end:train_one_epoch]


# --8<-- [start:evaluate]
def evaluate(model, loader, loss_fn, device) -> tuple[float, float]:
    """Mean loss and accuracy, without building a graph."""
    model.eval()  # dropout off, batchnorm uses running statistics
    total, correct, count = torch.zeros((), device=device), 0, 0
    with torch.no_grad():  # no graph: less memory, faster
        for data, label in loader:
            data, label = data.to(device), label.to(device)
            output = model(data)
            total += loss_fn(output, label) * len(label)
            correct += (output.argmax(dim=1) == label).sum()
            count += len(label)
    return total.item() / count, correct.item() / count
# --8<-- [end:evaluate]


# --8<-- [start:check_fit_args]
def check_fit_args(train_loader, val_loader, epochs, lr) -> None:
    """Reject arguments that would make fit() fail late or train nothing."""
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if (not isinstance(lr, (int, float)) or isinstance(lr, bool)
            or not (lr > 0 and math.isfinite(lr))):
        raise ValueError(f"lr must be a positive number such as 1e-3, got {lr!r}")
    for name, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
        if len(loader) == 0:
            raise ValueError(
                f"{name} yields no batches (its dataset has {len(loader.dataset)} "
                "samples); give it data, or a smaller batch_size when drop_last=True")
# --8<-- [end:check_fit_args]


# --8<-- [start:fit]
def fit(model, train_loader, val_loader, *, epochs: int, lr: float, device,
        verbose: bool = True) -> dict:
    """Train with Adam and cross-entropy; keep the weights of the best val accuracy."""
    check_fit_args(train_loader, val_loader, epochs, lr)
    model.to(device)  # modules move in place
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = {"train_loss": [], "val_loss": [], "val_acc": [], "seconds": []}
    best_acc, best_state, start = -1.0, None, time.perf_counter()
    for epoch in range(1, epochs + 1):
        train_loss = train_one_epoch(model, train_loader, loss_fn, optimizer, device)
        val_loss, val_acc = evaluate(model, val_loader, loss_fn, device)
        seconds = time.perf_counter() - start
        for key, value in zip(history, (train_loss, val_loss, val_acc, seconds)):
            history[key].append(value)
        if val_acc > best_acc:  # a copy: state_dict() holds the live tensors
            best_acc, best_state = val_acc, copy.deepcopy(model.state_dict())
        if verbose:
            print(f"epoch {epoch:2}/{epochs}  train loss {train_loss:.3f}  "
                  f"val loss {val_loss:.3f}  val acc {val_acc:.3f}")
    model.load_state_dict(best_state)  # end with the best weights, not the last
    return history
# --8<-- [end:fit]


# --8<-- [start:train_digits]
def train_digits(seed=0, epochs=8, lr=3e-3, device=None, verbose=False):
    """The whole recipe in one call: seed, data, model, fit -> (model, history)."""
    seed_everything(seed)
    train_loader, val_loader = digit_loaders(batch_size=64, seed=seed)
    for loader in (train_loader, val_loader):
        check_labels(loader.dataset.tensors[1], num_classes=10)
    model = DigitCNN(num_classes=10)
    history = fit(model, train_loader, val_loader, epochs=epochs, lr=lr,
                  device=device or pick_device(), verbose=verbose)
    return model, history
# --8<-- [end:train_digits]


# --8<-- [start:plot_history]
def plot_history(history: dict, path) -> Path:
    """Draw loss and validation accuracy per epoch into a PNG file."""
    if not history.get("val_acc"):
        raise ValueError("history has no epochs to draw; pass what fit() returned")
    epochs = range(1, len(history["val_acc"]) + 1)
    best = int(np.argmax(history["val_acc"])) + 1
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
    ax_loss.plot(epochs, history["train_loss"], "o-", label="train")
    ax_loss.plot(epochs, history["val_loss"], "s-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_loss.legend()
    ax_acc.plot(epochs, history["val_acc"], "s-", color="tab:orange",
                label="validation")
    ax_acc.axhline(0.95, color="gray", linestyle="--", linewidth=1, label="95 %")
    ax_acc.plot(best, max(history["val_acc"]), "*", color="tab:red", markersize=14,
                label="best (kept)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    ax_acc.legend(loc="lower right")
    for ax in (ax_loss, ax_acc):
        ax.set_xticks(list(epochs))
        ax.grid(alpha=0.3)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)  # free the figure's memory
    return path
# --8<-- [end:plot_history]


# --8<-- [start:clip_gradients]
def clip_gradients(model: nn.Module, max_norm: float) -> torch.Tensor:
    """Scale the gradients so that their total norm is at most max_norm.

    Returns the total norm before clipping (a tensor), as clip_grad_norm_ does.
    """
    if (not isinstance(max_norm, (int, float)) or isinstance(max_norm, bool)
            or not (max_norm > 0 and math.isfinite(max_norm))):
        raise ValueError(f"max_norm must be a positive number such as 1.0, got "
                         f"{max_norm!r}; clip_grad_norm_ would flip the gradients' "
                         "sign for a negative one and zero them for 0")
    return nn.utils.clip_grad_norm_(model.parameters(), max_norm)
# --8<-- [end:clip_gradients]


# --8<-- [start:train_epoch_amp]
def train_epoch_amp(model, loader, loss_fn, optimizer, device, *, amp_dtype=None,
                    scaler=None, max_norm=None) -> float:
    """train_one_epoch with optional autocast, GradScaler and gradient clipping."""
    model.train()
    total, count = torch.zeros((), device=device), 0
    for data, label in loader:
        data, label = data.to(device), label.to(device)
        optimizer.zero_grad()
        with torch.autocast(torch.device(device).type, dtype=amp_dtype,
                            enabled=amp_dtype is not None):
            output = model(data)  # convolutions and matmuls in amp_dtype
            loss = loss_fn(output, label)  # autocast computes it in float32
        if scaler is None:
            loss.backward()
        else:
            scaler.scale(loss).backward()  # float16: scaled so gradients survive
            scaler.unscale_(optimizer)  # the true gradients again, to clip them
        if max_norm is not None:
            clip_gradients(model, max_norm)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)  # skipped if a gradient is inf or nan
            scaler.update()
        total += loss.detach() * len(label)
        count += len(label)
    return total.item() / count
# --8<-- [end:train_epoch_amp]


# --8<-- [start:fit_scheduled]
def fit_scheduled(model, train_loader, val_loader, *, epochs: int, lr: float,
                  device, amp_dtype=None, scaler=None, max_norm=None) -> dict:
    """Adam with a cosine learning-rate schedule, stepped once per epoch."""
    check_fit_args(train_loader, val_loader, epochs, lr)
    if max_norm is not None:
        clip_gradients(nn.Linear(1, 1), max_norm)  # reject a bad max_norm now
    model.to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    history = {"lr": [], "train_loss": [], "val_acc": []}
    for _ in range(epochs):
        history["lr"].append(scheduler.get_last_lr()[0])  # this epoch's lr
        history["train_loss"].append(train_epoch_amp(
            model, train_loader, loss_fn, optimizer, device,
            amp_dtype=amp_dtype, scaler=scaler, max_norm=max_norm))
        scheduler.step()  # once per epoch, after the epoch's optimizer steps
        history["val_acc"].append(evaluate(model, val_loader, loss_fn, device)[1])
    return history
# --8<-- [end:fit_scheduled]


# --8<-- [start:strip_compile_prefix]
def strip_compile_prefix(state: dict) -> dict:
    """A compiled model's state_dict with the '_orig_mod.' prefix taken off."""
    if not isinstance(state, dict):
        raise TypeError("state must be a state_dict (a dict), "
                        f"got {type(state).__name__}")
    return {key.removeprefix("_orig_mod."): value for key, value in state.items()}
# --8<-- [end:strip_compile_prefix]


# --8<-- [start:profiler_activities]
def profiler_activities(device) -> list[ProfilerActivity]:
    """What the profiler records for work on `device`: the CPU and its kernels."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError("device must be a device name such as 'cuda' or a "
                        f"torch.device, got {type(device).__name__}")
    device = torch.device(device)
    activities = [ProfilerActivity.CPU]
    kernels = getattr(ProfilerActivity, device.type.upper(), None)  # CUDA, XPU...
    if device.type != "cpu" and kernels in torch.profiler.supported_activities():
        activities.append(kernels)
    return activities
# --8<-- [end:profiler_activities]


# --8<-- [start:labelled_step]
def labelled_step(model, loss_fn, optimizer, data, label) -> torch.Tensor:
    """One training step, its three parts labelled for the profiler."""
    optimizer.zero_grad()
    with record_function("forward"):
        loss = loss_fn(model(data), label)
    with record_function("backward"):
        loss.backward()
    with record_function("step"):
        optimizer.step()
    return loss.detach()
# --8<-- [end:labelled_step]


# --8<-- [start:time_ms]
def time_ms(fn, device, repeat: int = 20) -> float:
    """Mean milliseconds per call of fn(), whose work runs on `device`."""
    if not callable(fn):
        raise TypeError(f"fn must be a function to call, got {type(fn).__name__}")
    if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
        raise ValueError(f"repeat must be an integer >= 1, got {repeat!r}")
    fn()  # warm-up: the first call allocates memory and picks kernels
    wait_for(device)  # start with an empty queue
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    wait_for(device)  # wait for the work, not only its launch
    return (time.perf_counter() - start) * 1000 / repeat
# --8<-- [end:time_ms]


# --8<-- [start:deep_mlp]
class FeedForward(nn.Module):
    """x + Linear(GELU(Linear(x))), the feed-forward block of a transformer."""

    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class DeepMLP(nn.Module):
    """`depth` feed-forward blocks; checkpointed=True keeps only each block's input."""

    def __init__(self, width: int = 128, depth: int = 8, checkpointed: bool = False):
        super().__init__()
        for name, value in (("width", width), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.blocks = nn.ModuleList(FeedForward(width) for _ in range(depth))
        self.checkpointed = checkpointed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            if self.checkpointed:  # save x; run the block again in backward
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x
# --8<-- [end:deep_mlp]


# --8<-- [start:saved_bytes]
def saved_bytes(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """model(x), and the bytes of the tensors autograd saved for its backward.

    Each storage counts once; the model's parameters do not count.
    """
    if not isinstance(model, nn.Module) or not isinstance(x, torch.Tensor):
        raise TypeError("give a model and its input tensor, e.g. saved_bytes(model, x)")
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}  # storage address -> size in bytes

    def pack(tensor):  # called for each tensor an operation saves for backward
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor  # kept as it is

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        output = model(x)
    return output, sum(saved.values())
# --8<-- [end:saved_bytes]


def save_figures(out_dir) -> list[Path]:
    """`make figures`: the loss/accuracy curves of a seeded CPU run."""
    _, history = train_digits(seed=0, epochs=12, device=torch.device("cpu"))
    return [plot_history(history, Path(out_dir) / "training-curves.png")]


def demo_data() -> tuple[DataLoader, DataLoader]:
    # --8<-- [start:demo_data]
    train_loader, val_loader = digit_loaders(batch_size=64, seed=0)
    data, label = next(iter(train_loader))
    print(len(train_loader.dataset), len(val_loader.dataset), len(train_loader))
    print(data.shape, data.dtype, label.dtype, data.min().item(), data.max().item())
    print(torch.bincount(val_loader.dataset.tensors[1]).tolist())  # ~36 per class
    # --8<-- [end:demo_data]
    return train_loader, val_loader


def demo_device() -> torch.device:
    # --8<-- [start:demo_device]
    device = pick_device()
    layer = nn.Linear(4, 2)
    print(layer.to(device) is layer)  # a module moves in place and returns itself
    x = torch.ones(3)
    x.to(torch.float64)  # a tensor does not: the result is thrown away
    print(x.dtype)
    x = x.to(device)  # so always reassign
    print(x.device.type == device.type)
    # --8<-- [end:demo_device]
    return device


def demo_device_agnostic(device: torch.device) -> int | None:
    # --8<-- [start:demo_device_agnostic]
    x = torch.randn(1024, 1024, device=device)  # 4 MiB of float32
    x = x @ x  # on an accelerator this is only queued, and the call returns at once
    wait_for(device)  # so wait for it before reading a clock
    used = memory_in_use(device)
    print(device.type, "(not counted)" if used is None else f"{used / 2**20:.0f} MiB")
    # --8<-- [end:demo_device_agnostic]
    return used


def demo_model(data: torch.Tensor, device: torch.device) -> nn.Module:
    # --8<-- [start:demo_model]
    model = DigitCNN().to(device)
    print(model(data.to(device)).shape)
    print(sum(p.numel() for p in model.parameters()))
    # --8<-- [end:demo_model]
    return model


def demo_modes(model: nn.Module) -> None:
    # --8<-- [start:demo_modes]
    torch.manual_seed(0)
    drop = nn.Dropout(p=0.5)
    x = torch.ones(8)
    drop.train()
    print(sorted(set(drop(x).tolist())))  # zeros, survivors scaled by 1/(1-p) = 2
    drop.eval()
    print(torch.equal(drop(x), x))  # eval: dropout does nothing

    bn = nn.BatchNorm1d(1)
    batch = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    bn.train()  # normalised by the batch; running statistics updated
    print(bn(batch).mean().abs().item() < 1e-6, bn.running_mean)
    bn.eval()  # running statistics used, not updated
    print(bn(batch).detach().flatten(), bn.running_mean)

    model.eval()  # switches every submodule
    print(model.training, any(m.training for m in model.modules()))
    # --8<-- [end:demo_modes]


def demo_step(model, data, label, device) -> None:
    # --8<-- [start:demo_step]
    data, label = data.to(device), label.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    loss = nn.CrossEntropyLoss()(model(data), label)
    loss.backward()
    print(model.classifier[-1].bias.grad is not None)  # backward filled .grad
    optimizer.zero_grad()
    print(all(p.grad is None for p in model.parameters()))  # None, not zeros

    model.eval()
    with torch.no_grad():
        output = model(data)
    print(output.requires_grad, output.grad_fn)  # no graph was recorded
    # --8<-- [end:demo_step]


def demo_fit(device: torch.device) -> tuple[nn.Module, dict]:
    # --8<-- [start:demo_fit]
    seed_everything(0)
    train_loader, val_loader = digit_loaders(batch_size=64, seed=0)
    for loader in (train_loader, val_loader):  # once, before training
        check_labels(loader.dataset.tensors[1], num_classes=10)
    model = DigitCNN(num_classes=10)
    history = fit(model, train_loader, val_loader, epochs=8, lr=3e-3, device=device)
    best = max(history["val_acc"])
    print(f"best epoch {history['val_acc'].index(best) + 1}: val acc {best:.3f}")
    _, acc = evaluate(model, val_loader, nn.CrossEntropyLoss(), device)
    print("the model now holds the best weights:", acc == best)
    # --8<-- [end:demo_fit]
    return model, history


def demo_plot(history: dict) -> Path:
    # --8<-- [start:demo_plot]
    path = plot_history(history, "curves.png")
    print(path, path.stat().st_size > 10_000)
    # --8<-- [end:demo_plot]
    return path


def demo_reproducible() -> None:
    # --8<-- [start:demo_reproducible]
    def same_weights(m1, m2):
        return all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))

    cpu = torch.device("cpu")
    model_a, hist_a = train_digits(seed=1, epochs=1, device=cpu)
    model_b, hist_b = train_digits(seed=1, epochs=1, device=cpu)
    model_c, hist_c = train_digits(seed=2, epochs=1, device=cpu)
    print("seed 1 twice:", same_weights(model_a, model_b),
          hist_a["val_acc"] == hist_b["val_acc"])
    print("seed 1 vs 2: ", same_weights(model_a, model_c))
    # --8<-- [end:demo_reproducible]


def demo_bad_args(train_loader, val_loader, device) -> None:
    # --8<-- [start:demo_bad_args]
    empty = DataLoader(TensorDataset(torch.empty(0, 1, 8, 8),
                                     torch.empty(0, dtype=torch.long)))
    train, val = train_loader, val_loader
    attempts = {
        "epochs=0": lambda: fit(DigitCNN(), train, val, epochs=0, lr=1e-3,
                                device=device),
        "lr=0": lambda: fit(DigitCNN(), train, val, epochs=1, lr=0, device=device),
        "empty loader": lambda: fit(DigitCNN(), empty, val, epochs=1, lr=1e-3,
                                    device=device),
        "5 classes": lambda: check_labels(train.dataset.tensors[1], num_classes=5),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except ValueError as err:
            print(f"{name}: ValueError: {err}")
    # --8<-- [end:demo_bad_args]


def demo_scheduler() -> torch.optim.lr_scheduler.LRScheduler:
    # --8<-- [start:demo_scheduler]
    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(5):  # epochs
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()  # stands for the epoch's training steps
        scheduler.step()  # then the schedule moves on, once per epoch
    print(lrs)
    print(optimizer.param_groups[0]["lr"], scheduler.state_dict()["last_epoch"])
    # --8<-- [end:demo_scheduler]
    return scheduler


def demo_scheduler_state(scheduler) -> None:
    # --8<-- [start:demo_scheduler_state]
    saved = {"optimizer": scheduler.optimizer.state_dict(),
             "scheduler": scheduler.state_dict()}
    optimizer2 = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler2 = torch.optim.lr_scheduler.StepLR(optimizer2, step_size=2, gamma=0.5)
    optimizer2.load_state_dict(saved["optimizer"])  # holds the current lr
    scheduler2.load_state_dict(saved["scheduler"])  # holds the epoch count
    print(scheduler2.last_epoch, scheduler2.get_last_lr(),
          optimizer2.param_groups[0]["lr"])
    # --8<-- [end:demo_scheduler_state]


def demo_clip() -> None:
    # --8<-- [start:demo_clip]
    torch.manual_seed(0)
    layer = nn.Linear(4, 2)
    (layer(torch.randn(8, 4)) * 10).pow(2).mean().backward()  # large gradients

    def total_norm():
        return torch.cat([p.grad.flatten() for p in layer.parameters()]).norm()

    before = total_norm()
    returned = clip_gradients(layer, max_norm=1.0)
    print(f"{before:.4f} {returned:.4f} {total_norm():.4f}")
    # --8<-- [end:demo_clip]


def demo_clip_negative() -> None:
    # --8<-- [start:demo_clip_negative]
    layer = nn.Linear(4, 2)
    layer(torch.ones(1, 4)).sum().backward()
    clip_gradients(layer, max_norm=-1.0)
    # --8<-- [end:demo_clip_negative]


def demo_autocast(train_loader) -> None:
    # --8<-- [start:demo_autocast]
    seed_everything(0)
    model = DigitCNN()
    data, label = next(iter(train_loader))
    device = torch.device("cpu")
    with torch.autocast(device.type, dtype=torch.bfloat16):  # the type from the device
        features = model.features(data)  # activations inside: bfloat16
        output = model.classifier(features)
        loss = nn.CrossEntropyLoss()(output, label)  # autocast: float32
    loss.backward()
    weight = model.classifier[-1].weight
    print(features.dtype, output.dtype, loss.dtype)
    print(weight.dtype, weight.grad.dtype)  # parameters stay float32
    # --8<-- [end:demo_autocast]


def demo_fit_scheduled() -> dict:
    # --8<-- [start:demo_fit_scheduled]
    seed_everything(0)
    train_loader, val_loader = digit_loaders(batch_size=64, seed=0)
    history = fit_scheduled(DigitCNN(), train_loader, val_loader, epochs=8, lr=3e-3,
                            device=torch.device("cpu"), amp_dtype=torch.bfloat16,
                            max_norm=1.0)
    print("lr     ", " ".join(f"{lr:.4f}" for lr in history["lr"]))
    print("val acc", " ".join(f"{acc:.3f}" for acc in history["val_acc"]))
    # --8<-- [end:demo_fit_scheduled]
    return history


def demo_fp16_cuda() -> dict:
    # --8<-- [start:demo_fp16_cuda]
    seed_everything(0)
    train_loader, val_loader = digit_loaders(batch_size=64, seed=0)
    scaler = torch.amp.GradScaler("cuda")  # float16 needs loss scaling
    history = fit_scheduled(DigitCNN(), train_loader, val_loader, epochs=8, lr=3e-3,
                            device=torch.device("cuda"), amp_dtype=torch.float16,
                            scaler=scaler, max_norm=1.0)
    print(f"best val acc {max(history['val_acc']):.3f}, scale {scaler.get_scale()}")
    # --8<-- [end:demo_fp16_cuda]
    return history


def demo_fp16_range() -> None:
    # --8<-- [start:demo_fp16_range]
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        info = torch.finfo(dtype)
        print(f"{str(dtype):15} max {info.max:.3g}  smallest normal {info.tiny:.3g}"
              f"  eps {info.eps:.3g}")
    grads = torch.tensor([1e-8, 1e-3, 7e4])  # a tiny gradient, a usual one, a huge one
    print(grads.to(torch.float16))  # 1e-8 underflows to 0, 7e4 overflows to inf
    print(grads.to(torch.bfloat16))  # float32's range: all three survive, rounded
    scale = 2.0**16  # GradScaler's first scale factor
    print((grads[0] * scale).to(torch.float16).float() / scale)  # scaled, it survives
    # --8<-- [end:demo_fp16_range]


def demo_tf32_defaults() -> None:
    # --8<-- [start:demo_tf32_defaults]
    print(torch.get_float32_matmul_precision(),  # "highest": full float32 matmuls
          torch.backends.cuda.matmul.allow_tf32,  # False: the default since torch 1.12
          torch.backends.cudnn.allow_tf32)  # True: cuDNN convolutions may use TF32
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):  # newer torch only
        print(torch.backends.cuda.matmul.fp32_precision,  # "none": not set here
              torch.backends.cudnn.conv.fp32_precision)
    # --8<-- [end:demo_tf32_defaults]


def demo_tf32_on() -> None:
    # --8<-- [start:demo_tf32_on]
    torch.set_float32_matmul_precision("high")  # float32 matmuls may use TF32
    print(torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32)
    torch.set_float32_matmul_precision("highest")  # back to full float32
    # --8<-- [end:demo_tf32_on]


def demo_compile_wrap() -> tuple[nn.Module, nn.Module]:
    # --8<-- [start:demo_compile_wrap]
    seed_everything(0)
    model = DigitCNN()
    compiled = torch.compile(model)  # returns at once; compiles on the first call
    print(type(compiled).__name__,
          compiled.features[0].weight is model.features[0].weight)  # shared
    print(list(model.state_dict())[0], list(compiled.state_dict())[0])
    # --8<-- [end:demo_compile_wrap]
    return model, compiled


def demo_compile_save(model, compiled) -> None:
    # --8<-- [start:demo_compile_save]
    torch.save(model.state_dict(), "digits.pt")  # the module you compiled: plain keys
    print(DigitCNN().load_state_dict(torch.load("digits.pt")))
    in_place = DigitCNN()
    in_place.compile()  # compiles in place: same class, same keys
    print(type(in_place).__name__, list(in_place.state_dict())[0])
    missing, unexpected = DigitCNN().load_state_dict(compiled.state_dict(),
                                                     strict=False)
    print(len(missing), unexpected[0])
    print(DigitCNN().load_state_dict(strip_compile_prefix(compiled.state_dict())))
    # --8<-- [end:demo_compile_save]


def demo_compile_run(model, compiled) -> None:
    # --8<-- [start:demo_compile_run]
    x = torch.rand(64, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        start = time.perf_counter()
        y = compiled(x)  # the first call compiles (C++ code, via inductor)
        print(f"first call: {time.perf_counter() - start:.1f} s")
        print(torch.allclose(y, model(x), rtol=1e-4, atol=1e-5))
    # --8<-- [end:demo_compile_run]


def demo_graph_break() -> object:
    # --8<-- [start:demo_graph_break]
    model = DigitCNN().eval()

    def forward_logged(x):
        features = model.features(x)
        # printing is Python I/O, which dynamo cannot put into a graph
        print("features", tuple(features.shape))
        return model.classifier(features)

    with torch.no_grad():
        report = torch._dynamo.explain(forward_logged)(torch.rand(64, 1, 8, 8))
    print(report.graph_count, "graphs,", report.graph_break_count, "graph break")
    for reason in report.break_reasons:
        print("break in:", reason.user_stack[-1].name)  # the function
    # --8<-- [end:demo_graph_break]
    return report


def demo_recompile() -> dict:
    # --8<-- [start:demo_recompile]
    graphs = []

    def count_graphs(gm, example_inputs):  # a backend that only counts the graphs
        graphs.append(gm)
        return gm.forward  # and runs each as it is, without compiling it

    model, counts = DigitCNN().eval(), {}
    for dynamic in (None, False, True):
        torch.compiler.reset()  # forget everything compiled so far
        graphs.clear()
        counted = torch.compile(model, backend=count_graphs, dynamic=dynamic)
        for batch in (64, 29, 256, 104):  # an epoch's batch sizes, then validation's
            counted(torch.rand(batch, 1, 8, 8))
        counts[dynamic] = len(graphs)
        print(f"dynamic={dynamic}: {len(graphs)} graph(s) for 4 batch sizes")
    # --8<-- [end:demo_recompile]
    return counts


def demo_profile(train_loader, device):
    # --8<-- [start:demo_profile]
    seed_everything(0)
    model = DigitCNN().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    data, label = (t.to(device) for t in next(iter(train_loader)))

    def step():
        return labelled_step(model, nn.CrossEntropyLoss(), optimizer, data, label)

    step()  # warm-up, not profiled
    with profile(activities=profiler_activities(device)) as prof:
        step()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)
    Path("profile.txt").write_text(table)  # open it: the top operators
    # --8<-- [end:demo_profile]
    return prof, step


def demo_profile_read(prof) -> dict:
    # --8<-- [start:demo_profile_read]
    averages = {row.key: row for row in prof.key_averages()}  # one row per name
    for name in ("forward", "backward", "step"):
        row = averages[name]
        print(f"{name:8} {row.count} call, CPU total {row.cpu_time_total / 1e3:.2f} ms")
    forward = next(event for event in prof.events() if event.name == "forward")
    print(*(op.name.removeprefix("aten::") for op in forward.cpu_children))
    # --8<-- [end:demo_profile_read]
    return averages


def demo_cuda_timing() -> dict:
    # --8<-- [start:demo_cuda_timing]
    x = torch.randn(4096, 4096, device="cuda")
    x @ x  # warm-up: cuBLAS loads and picks its kernel
    torch.cuda.synchronize()
    start = time.perf_counter()
    x @ x  # queued on the GPU; the call returns at once
    launch = time.perf_counter() - start
    torch.cuda.synchronize()  # wait until the GPU has finished
    work = time.perf_counter() - start
    begin = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    begin.record()  # a mark in the GPU's queue
    x @ x
    end.record()
    end.synchronize()  # wait until the GPU has passed the second mark
    print(f"without synchronize {launch * 1e3:.3f} ms, with {work * 1e3:.3f} ms, "
          f"events {begin.elapsed_time(end):.3f} ms")
    # --8<-- [end:demo_cuda_timing]
    return {"launch": launch * 1e3, "work": work * 1e3,
            "events": begin.elapsed_time(end)}


def demo_time_step(step, device) -> benchmark.Measurement:
    # --8<-- [start:demo_time_step]
    print(f"time_ms: {time_ms(step, device):.2f} ms per step")
    timer = benchmark.Timer(stmt="step()", globals={"step": step},
                            num_threads=torch.get_num_threads())  # default: 1
    measured = timer.blocked_autorange(min_run_time=0.5)
    print(f"Timer:   median {measured.median * 1e3:.2f} ms, "
          f"IQR {measured.iqr * 1e3:.2f} ms")
    # --8<-- [end:demo_time_step]
    return measured


def demo_checkpoint_memory() -> tuple[nn.Module, nn.Module, torch.Tensor]:
    # --8<-- [start:demo_checkpoint_memory]
    torch.manual_seed(0)
    x = torch.randn(256, 128)  # 256 samples of 128 features: 0.125 MiB
    plain = DeepMLP(width=128, depth=8)
    checkpointed = copy.deepcopy(plain)  # the same weights
    checkpointed.checkpointed = True
    for model in (plain, checkpointed):
        output, size = saved_bytes(model, x)
        output.pow(2).mean().backward()
        print(f"checkpointed={model.checkpointed!s:5}  saved for backward: "
              f"{size / 2**20:.3f} MiB")
    same = all(torch.equal(p.grad, q.grad)
               for p, q in zip(plain.parameters(), checkpointed.parameters()))
    print("same gradients:", same)
    # --8<-- [end:demo_checkpoint_memory]
    return plain, checkpointed, x


def demo_checkpoint_cost(plain, checkpointed, x) -> tuple[dict, dict]:
    # --8<-- [start:demo_checkpoint_cost]
    def train_step(model):
        model.zero_grad()
        model(x).pow(2).mean().backward()

    flops, ms = {}, {}
    for model in (plain, checkpointed):
        with FlopCounterMode(display=False) as counter:  # counts, does not time
            train_step(model)
        flops[model.checkpointed] = counter.get_total_flops()
        timer = benchmark.Timer(stmt="train_step(model)",
                                globals={"train_step": train_step, "model": model},
                                num_threads=torch.get_num_threads())
        ms[model.checkpointed] = timer.blocked_autorange(min_run_time=0.5).median * 1e3
    more = flops[True] - flops[False]
    print(f"GFLOP per step: {flops[False] / 1e9:.3f} plain, "
          f"{flops[True] / 1e9:.3f} checkpointed "
          f"(+{more / 1e9:.3f}, +{100 * more / flops[False]:.0f} %)")
    print(f"time per step:  {ms[False]:.1f} ms plain, {ms[True]:.1f} ms checkpointed")
    # --8<-- [end:demo_checkpoint_cost]
    return flops, ms


# --8<-- [start:exercise_confusion_matrix]
def confusion_matrix(model, loader, device, num_classes: int = 10) -> torch.Tensor:
    """counts[i, j]: the images of class i that the model calls j."""
    model.eval()
    counts = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    with torch.no_grad():
        for data, label in loader:
            pred = model(data.to(device)).argmax(dim=1)
            pairs = label.to(device) * num_classes + pred  # a bin per (true, predicted)
            counts += torch.bincount(pairs, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes).cpu()
# --8<-- [end:exercise_confusion_matrix]


def exercise_confusion_matrix(device) -> tuple[torch.Tensor, dict]:
    _, val_loader = digit_loaders(batch_size=64, seed=0)
    # --8<-- [start:exercise_confusion_matrix_check]
    model, history = train_digits(seed=0, device=device)  # as in "Full training"
    cm = confusion_matrix(model, val_loader, device)
    print(cm)
    per_class = cm.diag() / cm.sum(dim=1)  # rows: the true digits
    print(f"accuracy {(cm.diag().sum() / cm.sum()).item():.3f}, "
          f"best in history {max(history['val_acc']):.3f}")
    print(f"weakest digit {per_class.argmin().item()}: {per_class.min().item():.3f}")
    # --8<-- [end:exercise_confusion_matrix_check]
    return cm, history


# --8<-- [start:exercise_warmup]
def warmup_cosine(optimizer, warmup: int, total: int):
    """A linear warm-up over `warmup` epochs, then a cosine towards 0 at `total`."""
    if not 0 < warmup < total:
        raise ValueError(f"need 0 < warmup < total, got warmup={warmup}, total={total}")

    def factor(epoch: int) -> float:  # what the base rate is multiplied by
        if epoch < warmup:
            return (epoch + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / (total - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
# --8<-- [end:exercise_warmup]


def exercise_warmup() -> list[float]:
    # --8<-- [start:exercise_warmup_check]
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = warmup_cosine(optimizer, warmup=3, total=10)
    lrs = []
    for _ in range(10):  # epochs
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    print(" ".join(f"{lr:.4f}" for lr in lrs))
    # --8<-- [end:exercise_warmup_check]
    return lrs


def tour() -> None:
    """The page's demos in order (they write files: run it in an empty folder)."""
    train_loader, val_loader = demo_data()
    device = demo_device()
    demo_device_agnostic(device)
    data, label = next(iter(train_loader))
    model = demo_model(data, device)
    demo_modes(model)
    demo_step(model, data, label, device)
    _, history = demo_fit(device)
    demo_reproducible()
    demo_bad_args(train_loader, val_loader, device)
    demo_scheduler_state(demo_scheduler())
    demo_clip()
    demo_autocast(train_loader)
    demo_fit_scheduled()
    demo_fp16_range()
    demo_tf32_defaults()
    demo_tf32_on()
    model, compiled = demo_compile_wrap()
    demo_compile_save(model, compiled)
    demo_compile_run(model, compiled)
    demo_graph_break()
    demo_recompile()
    prof, step = demo_profile(train_loader, device)
    demo_profile_read(prof)
    if device.type == "cuda":
        demo_cuda_timing()
    demo_time_step(step, device)
    demo_checkpoint_cost(*demo_checkpoint_memory())
    exercise_confusion_matrix(device)
    exercise_warmup()


if __name__ == "__main__":  # in a temporary folder: the demos save files (digits.pt)
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        tour()
