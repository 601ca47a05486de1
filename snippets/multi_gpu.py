"""Chapter `multi-gpu`: nn.DataParallel and its `module.` prefix, the four save/load
combinations, removing the prefix safely, strict=False, checkpoints saved on a GPU,
whole pickled models. DDP lives in snippets/ddp_train.py (run with snippets/ddp_run.sh).

Run it as `python -m snippets.multi_gpu` (the page's runnable demos, in page order), or
`python -m snippets.multi_gpu --table` (writes the table on the pages, one file per
language: generated/multi-gpu-table.zh.md and .en.md). Sections marked
`--8<-- [start:name]` are shown on docs/{zh,en}/multi-gpu.md, which is one program: the
demo sections of `tour()` use what earlier ones defined. The demos of the GPU-saved
checkpoints (tests/fixtures/gpu-checkpoints/) are functions of their own, run by
tests/test_multi_gpu.py in a folder holding those files.
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

# isort: split
# --8<-- [start:imports_ddp]
import itertools
import subprocess
import sys

import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler, TensorDataset
from torch.utils.data.distributed import DistributedSampler

# --8<-- [end:imports_ddp]

# isort: split
# --8<-- [start:imports_workers]
import gc
import tempfile

import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    set_model_state_dict,
)
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP

# --8<-- [end:imports_workers]


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
def load_state_dict_flexible(model: nn.Module, source,
                             map_location="cpu") -> nn.Module:
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


# --8<-- [start:scale_lr]
def scale_lr(base_lr: float, base_batch: int, batch_per_process: int,
             processes: int) -> float:
    """The linear scaling rule: the learning rate grows with the global batch."""
    sizes = {"base_batch": base_batch, "batch_per_process": batch_per_process,
             "processes": processes}
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not base_lr > 0:
        raise ValueError(f"base_lr must be positive, got {base_lr!r}")
    return base_lr * batch_per_process * processes / base_batch

# --8<-- [end:scale_lr]


# --8<-- [start:gathered_mean]
def gathered_mean(indices: torch.Tensor, values: torch.Tensor,
                  num_samples: int) -> float:
    """Mean of values gathered from all ranks, each sample counted once."""
    if indices.shape != values.shape:
        raise ValueError(f"indices {tuple(indices.shape)} and values "
                         f"{tuple(values.shape)} must have the same shape")
    first = {}
    for i, v in zip(indices.tolist(), values.tolist()):
        first.setdefault(i, v)  # a padded duplicate comes later: skipped
    missing = sorted(set(range(num_samples)) - set(first))
    if missing or len(first) != num_samples:
        last = num_samples - 1
        raise ValueError(f"expected each index 0..{last}, missing {missing[:5]}; "
                         "gather the indices of every rank (drop_last=False)")
    return sum(first.values()) / num_samples

# --8<-- [end:gathered_mean]


# --8<-- [start:in_child]
def in_child(code: str, **env: str) -> str:
    """Run Python code in a new process with extra environment variables."""
    if not isinstance(code, str):
        raise TypeError(f"code must be a string of Python, got {type(code).__name__}")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env},
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the child process failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip()

# --8<-- [end:in_child]


# --8<-- [start:accumulate_step]
def accumulate_step(model: nn.Module, micro_batches: list, criterion) -> None:
    """Backward over micro-batches; DDP all-reduces only after the last one."""
    *first, last = micro_batches
    with model.no_sync():  # gradients add up on each rank, no communication
        for inputs, targets in first:
            (criterion(model(inputs), targets) / len(micro_batches)).backward()
    inputs, targets = last
    last_loss = criterion(model(inputs), targets) / len(micro_batches)
    last_loss.backward()  # all-reduce here

# --8<-- [end:accumulate_step]


# --8<-- [start:check_sync_batchnorm]
def check_sync_batchnorm(rank: int) -> None:
    """Inside a process group, SyncBatchNorm wants GPU tensors."""
    bn = nn.SyncBatchNorm(4)
    try:
        bn(torch.randn(4, 4, 3, 3))  # CPU tensors, gloo group
        result = "ran"
    except ValueError as err:
        result = f"ValueError: {err}"
    if rank == 0:
        print(f"SyncBatchNorm on CPU tensors: {result}")

# --8<-- [end:check_sync_batchnorm]


# --8<-- [start:check_no_sync]
def count_allreduce(calls: list, bucket):
    """A DDP communication hook: note the call, then all-reduce as usual."""
    calls.append(bucket.index())
    return allreduce_hook(None, bucket)


def check_no_sync(rank: int, world_size: int) -> None:
    """Accumulated DDP gradients equal one step on the whole batch."""
    torch.manual_seed(0)  # the same data and weights on every rank
    X, y = torch.randn(16, 4), torch.randn(16, 1)
    reference = nn.Linear(4, 1)
    nn.functional.mse_loss(reference(X), y).backward()  # one process, 16 samples
    per_rank = 16 // world_size
    mine = slice(rank * per_rank, (rank + 1) * per_rank)
    micro = list(zip(X[mine].split(4), y[mine].split(4)))  # micro-batches of 4
    for use_no_sync in (True, False):
        model = DDP(nn.Linear(4, 1))
        model.module.load_state_dict(reference.state_dict())
        calls = []
        model.register_comm_hook(calls, count_allreduce)
        if use_no_sync:
            accumulate_step(model, micro, nn.functional.mse_loss)
        else:  # the same loop without no_sync
            for xb, yb in micro:
                (nn.functional.mse_loss(model(xb), yb) / len(micro)).backward()
        same = torch.allclose(model.module.weight.grad, reference.weight.grad)
        if rank == 0:
            print(f"no_sync={use_no_sync}: {len(micro)} micro-batches per rank, "
                  f"{len(calls)} all-reduce(s), same gradient as one step: {same}")

# --8<-- [end:check_no_sync]


# --8<-- [start:launch]
def join(rank: int, world_size: int, init_file: str) -> None:
    """Join the group: every process opens the same file to find the others."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}",
                            rank=rank, world_size=world_size)


def leave() -> None:
    """Leave the group while Python is fully alive: free the wrapped models first (they
    sit in reference cycles that only the garbage collector frees), then destroy the
    group, so that gloo's threads end now, not while the interpreter shuts down (a rare
    'terminate called without an active exception' at exit)."""
    gc.collect()
    dist.destroy_process_group()


def ddp_checks(rank: int, world_size: int, init_file: str) -> None:
    join(rank, world_size, init_file)
    try:
        check_sync_batchnorm(rank)
        check_no_sync(rank, world_size)
    finally:
        leave()


def launch(worker, world_size: int = 2) -> None:
    """Run worker(rank, world_size, init_file) in world_size new processes."""
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        mp.spawn(worker, args=(world_size, init_file), nprocs=world_size)

# --8<-- [end:launch]


# --8<-- [start:fsdp_model]
def mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def sharded_mlp(seed: int) -> nn.Module:
    """The same MLP, its Linear layers sharded by FSDP2 over all ranks."""
    model = mlp(seed)
    for layer in (model[0], model[2]):
        fully_shard(layer)  # each layer: gathered just before it runs
    return fully_shard(model)  # the root: the rest, and the training step


def full_state(model: nn.Module) -> dict:
    """The whole state_dict of a sharded model, on rank 0 (empty elsewhere)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options)

# --8<-- [end:fsdp_model]


# --8<-- [start:fsdp_checks]
def check_fsdp(rank: int, world_size: int) -> nn.Module:
    """Each rank holds a shard; one step equals a step on the whole batch."""
    model, reference = sharded_mlp(seed=0), mlp(seed=0)  # equal weights
    counts = [None] * world_size
    held = sum(p.to_local().numel() for p in model.parameters())  # this rank's share
    dist.all_gather_object(counts, held)
    torch.manual_seed(1)  # the same batch on every rank
    X, y = torch.randn(16, 8), torch.randn(16, 4)
    mine = slice(rank * 16 // world_size, (rank + 1) * 16 // world_size)
    for net, xb, yb in ((model, X[mine], y[mine]), (reference, X, y)):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        nn.functional.mse_loss(net(xb), yb).backward()  # FSDP: reduce-scatter
        opt.step()
    full, w = full_state(model), model[0].weight  # w: a DTensor
    if rank == 0:
        total = sum(p.numel() for p in reference.parameters())
        print(f"parameters held per rank: {counts} of {total}")
        print(f"0.weight: global {tuple(w.shape)}, local {tuple(w.to_local().shape)}, "
              f"{w.placements[0]!r}")
        expected = reference.state_dict()
        same = all(torch.allclose(full[k], v) for k, v in expected.items())
        print(f"one step on {world_size} ranks equals one on the whole batch: {same}")
    return model

# --8<-- [end:fsdp_checks]


# --8<-- [start:dcp_checks]
def check_dcp(model: nn.Module, rank: int, folder: str = "checkpoint") -> None:
    """Save the shards in parallel, load them into a fresh sharded model."""
    dcp.save({"model": get_model_state_dict(model)}, checkpoint_id=folder)
    fresh = sharded_mlp(seed=1)  # other weights
    state = {"model": get_model_state_dict(fresh)}
    dcp.load(state, checkpoint_id=folder)  # each rank reads what it holds
    set_model_state_dict(fresh, state["model"])
    saved, loaded = full_state(model), full_state(fresh)
    if rank == 0:
        print(f"dcp.save wrote {sorted(os.listdir(folder))}")
        same = all(torch.equal(saved[k], loaded[k]) for k in saved)
        print(f"loaded equals saved: {same}")
        torch.save(saved, "model.pt")  # one plain file: loads without FSDP
        plain = mlp(seed=2)
        print("model.pt into a plain model:",
              plain.load_state_dict(torch.load("model.pt", weights_only=True)))


def fsdp_worker(rank: int, world_size: int, init_file: str) -> None:
    join(rank, world_size, init_file)
    try:
        check_dcp(check_fsdp(rank, world_size), rank)
    finally:
        leave()

# --8<-- [end:dcp_checks]


# --8<-- [start:skip_ahead]
class SkipAhead(Sampler[int]):
    """A sampler's indices from position `start` on: resuming inside an epoch."""

    def __init__(self, sampler, start: int = 0):
        if not hasattr(sampler, "__len__"):
            raise TypeError("sampler must have a length (a Sampler such as "
                            f"DistributedSampler), got {type(sampler).__name__}")
        if isinstance(start, bool) or not isinstance(start, int) \
                or not 0 <= start <= len(sampler):
            raise ValueError(f"start must be an int from 0 to {len(sampler)} "
                             f"(the sampler's length), got {start!r}")
        self.sampler, self.start = sampler, start

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.start, None)  # reads no data

    def __len__(self) -> int:
        return len(self.sampler) - self.start

# --8<-- [end:skip_ahead]


# --8<-- [start:resume_checkpoint]
def rng_state(device: torch.device) -> dict:
    """The generators a rank draws from: the CPU's, and its GPU's on CUDA."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":  # dropout on a GPU draws from the GPU's generator
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def save_resume_point(path: str, model: DDP, opt, epoch: int, batch: int) -> None:
    """Rank 0 saves the model, the optimizer, the position and every rank's
    generator state; every rank waits until the file is complete."""
    states = [None] * dist.get_world_size()
    device = next(model.parameters()).device
    dist.all_gather_object(states, rng_state(device))  # one state per rank
    if dist.get_rank() == 0:
        torch.save({"model": model.module.state_dict(), "optimizer": opt.state_dict(),
                    "epoch": epoch, "batch": batch, "rng": states}, path)
    dist.barrier()  # no rank reads the file, or quits, before it is complete


def load_resume_point(path: str, model: DDP, opt, device: torch.device):
    """Each rank reads the file onto its own device; returns (epoch, batch)."""
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    model.module.load_state_dict(checkpoint["model"])
    opt.load_state_dict(checkpoint["optimizer"])
    state = checkpoint["rng"][dist.get_rank()]  # its own
    torch.set_rng_state(state["cpu"].cpu())  # set_rng_state takes CPU tensors only
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    return checkpoint["epoch"], checkpoint["batch"]

# --8<-- [end:resume_checkpoint]


# --8<-- [start:resume_training]
def toy_data() -> TensorDataset:
    """24 random samples of 3 classes, the same on every rank."""
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(24, 4, generator=g),
                         torch.randint(0, 3, (24,), generator=g))


def new_run(rank: int, seed: int):
    """A DDP model with dropout and its optimizer, built from `seed`."""
    torch.manual_seed(seed)
    model = DDP(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.5),
                              nn.Linear(16, 3)))  # rank 0's weights on every rank
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(seed + 1 + rank)  # each rank draws its own dropout masks
    return model, opt


def train_from(model, opt, data, epochs: int, epoch: int = 0, batch: int = 0,
               stop_after: int | None = None, batch_size: int = 3):
    """Train from batch `batch` of epoch `epoch`; stop after `stop_after` steps.
    Returns the losses and the position reached, (epoch, batch)."""
    sampler, losses = DistributedSampler(data, shuffle=True, seed=0), []
    for e in range(epoch, epochs):
        sampler.set_epoch(e)  # the saved epoch's order, then the next ones
        skip = batch if e == epoch else 0  # batches already trained on
        rest = SkipAhead(sampler, skip * batch_size)
        loader = DataLoader(data, batch_size, sampler=rest,
                            generator=torch.Generator())  # not the global one
        for b, (X, y) in enumerate(loader, start=skip):
            loss = nn.functional.cross_entropy(model(X), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if len(losses) == stop_after:
                return losses, (e, b + 1)
    return losses, (epochs, 0)

# --8<-- [end:resume_training]


# --8<-- [start:resume_runs]
def interrupted_run(rank: int, world_size: int, init_file: str) -> None:
    """Train 6 of the 12 steps, save a resume point, and stop, as if killed."""
    join(rank, world_size, init_file)
    try:
        model, opt = new_run(rank, seed=0)
        losses, (epoch, batch) = train_from(model, opt, toy_data(), 3, stop_after=6)
        save_resume_point("resume.pt", model, opt, epoch, batch)
        if rank == 0:
            print(f"run 1: stopped after {len(losses)} steps, in epoch {epoch} "
                  f"after batch {batch}; rank 0 saved resume.pt")
        del model
    finally:
        leave()


def resumed_run(rank: int, world_size: int, init_file: str) -> None:
    """New processes load the file and finish; then the whole run in one go."""
    join(rank, world_size, init_file)
    try:
        model, opt = new_run(rank, seed=1)  # other weights: all must come from the file
        device = torch.device("cpu")  # one GPU per rank: torch.device("cuda", rank)
        epoch, batch = load_resume_point("resume.pt", model, opt, device)
        resumed, _ = train_from(model, opt, toy_data(), 3, epoch, batch)
        whole, whole_opt = new_run(rank, seed=0)
        uninterrupted, _ = train_from(whole, whole_opt, toy_data(), 3)
        same = resumed == uninterrupted[-len(resumed):] and all(
            torch.equal(a, b) for a, b in zip(model.parameters(), whole.parameters()))
        everyone = [None] * world_size
        dist.all_gather_object(everyone, same)
        if rank == 0:
            print(f"run 2: resumed in epoch {epoch} at batch {batch}")
            print("rank 0, last 6 losses, resumed:      ",
                  " ".join(f"{v:.4f}" for v in resumed))
            print("rank 0, last 6 losses, uninterrupted:",
                  " ".join(f"{v:.4f}" for v in uninterrupted[-6:]))
            print(f"same losses and weights on each rank: {everyone}")
        del model, whole
    finally:
        leave()

# --8<-- [end:resume_runs]


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
    partial = {k: v for k, v in model.state_dict().items()
               if k.startswith("features.")}
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
    # with one GPU, DataParallel(...) moved its module to cuda:0: compare on the CPU
    print(torch.equal(dp_from_net.module.submodule.weight.cpu(), weight))
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
    torch.save(Net().state_dict(), "cpu_net.pt")  # a model on the CPU
    print(saved_devices("cpu_net.pt"))
    # --8<-- [end:demo_saved_devices_cpu]

    # --8<-- [start:demo_global_batch]
    dataset = TensorDataset(torch.arange(1500))  # 1,500 samples, as in ddp_train.py
    for procs in (1, 2, 4):
        share = DistributedSampler(dataset, num_replicas=procs, rank=0)
        batches = DataLoader(dataset, batch_size=32, sampler=share)  # 32 per process
        lr = scale_lr(0.1, base_batch=32, batch_per_process=32, processes=procs)
        print(f"{procs} process(es): {len(share)} samples, {len(batches)} steps "
              f"each; global batch {32 * procs}, lr {lr:.1f}")
    # --8<-- [end:demo_global_batch]

    # --8<-- [start:demo_set_epoch]
    samplers = [DistributedSampler(range(8), num_replicas=2, rank=r, seed=0)
                for r in (0, 1)]  # what rank 0 and rank 1 would each build
    for e in range(3):
        print(f"epoch {e}, no set_epoch:", [list(s) for s in samplers])
    for e in range(3):
        for s in samplers:
            s.set_epoch(e)  # every rank, the same epoch
        print(f"epoch {e}, set_epoch({e}):", [list(s) for s in samplers])
    # --8<-- [end:demo_set_epoch]

    # --8<-- [start:demo_padding]
    shares = [list(DistributedSampler(range(10), num_replicas=3, rank=r,
                                      shuffle=False)) for r in range(3)]
    print(shares)
    gathered = [i for share in shares for i in share]
    print(len(gathered), "indices, repeated:", sorted({i for i in gathered
                                                     if gathered.count(i) > 1}))
    # --8<-- [end:demo_padding]

    # --8<-- [start:demo_padding_metric]
    correct = torch.tensor([1, 1, 0, 0, 0, 1, 0, 1, 0, 0])  # per sample: 4 of 10
    indices = torch.tensor(gathered)  # what all_gather collects from the 3 ranks
    print(f"true accuracy {correct.float().mean():.3f}")
    print(f"mean of everything gathered {correct[indices].float().mean():.3f}")
    print(f"each sample once {gathered_mean(indices, correct[indices], 10):.3f}")
    # --8<-- [end:demo_padding_metric]

    # --8<-- [start:demo_drop_last]
    shares = [list(DistributedSampler(range(10), num_replicas=3, rank=r,
                                      shuffle=False, drop_last=True)) for r in range(3)]
    print(shares)  # sample 9 is never seen
    # --8<-- [end:demo_drop_last]

    # --8<-- [start:demo_sync_bn]
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(cnn))
    print(synced)
    x = torch.randn(8, 1, 6, 6)
    print(dist.is_initialized(), torch.equal(synced(x), cnn(x)))  # no group: plain BN
    # --8<-- [end:demo_sync_bn]

    # --8<-- [start:demo_bn_per_rank]
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(4)  # training mode: normalises with the batch's statistics
    features = torch.randn(8, 4, 5, 5)
    per_rank = torch.cat([bn(features[:4]), bn(features[4:])])  # 2 ranks, 4 samples
    full_batch = bn(features)  # what SyncBatchNorm computes on every rank
    gap = (per_rank - full_batch).abs().max()
    print(torch.allclose(per_rank, full_batch), f"{gap:.3f}")
    # --8<-- [end:demo_bn_per_rank]

    # --8<-- [start:demo_skip_ahead]
    data = TensorDataset(torch.arange(12))
    sampler = DistributedSampler(data, num_replicas=2, rank=0, seed=0)
    sampler.set_epoch(1)  # the epoch saved in the checkpoint
    whole = DataLoader(data, batch_size=2, sampler=sampler)
    print("epoch 1 on rank 0:", [b.tolist() for (b,) in whole])
    done = 2 * 2  # 2 batches of 2 samples already trained on
    rest = DataLoader(data, batch_size=2, sampler=SkipAhead(sampler, done))
    print("after 2 batches:  ", [b.tolist() for (b,) in rest])
    # --8<-- [end:demo_skip_ahead]

    # --8<-- [start:demo_visible_devices]
    code = ("import torch; from torch import nn; print(torch.cuda.device_count(), "
            "nn.DataParallel(nn.Linear(2, 2)).device_ids)")
    print(in_child(code, CUDA_VISIBLE_DEVICES=""))  # no GPU visible
    # --8<-- [end:demo_visible_devices]


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


def run_ddp_checks() -> None:
    """Start 2 processes (gloo) that run the no_sync and SyncBatchNorm checks."""
    # --8<-- [start:run_ddp_checks]
    launch(ddp_checks)  # in a script: under `if __name__ == "__main__":`
    # --8<-- [end:run_ddp_checks]


def run_resume_checks() -> None:
    """Start 2 processes that train and stop, then 2 new ones that resume."""
    # --8<-- [start:run_resume_checks]
    launch(interrupted_run)  # 6 steps, rank 0 saves resume.pt, the processes end
    launch(resumed_run)  # new processes: load, train the rest, compare
    # --8<-- [end:run_resume_checks]


def run_fsdp_checks() -> None:
    """Start 2 processes (gloo) that shard a model with FSDP2 and use dcp."""
    # --8<-- [start:run_fsdp_checks]
    launch(fsdp_worker)  # in a script: under `if __name__ == "__main__":`
    # --8<-- [end:run_fsdp_checks]


SPAWN_DEMOS = {"ddp": run_ddp_checks, "resume": run_resume_checks,
               "fsdp": run_fsdp_checks}
SPAWN_SEPARATOR = "\f"  # between the runs' outputs, for tests/test_multi_gpu.py

# ---- the table of the four combinations (generated/multi-gpu-table.{zh,en}.md) ----

# (saved from, loaded into) -> expressions that load `sd` into `target` correctly
FIXES = {
    ("single", "DataParallel"): ["target.module.load_state_dict(sd)"],
    ("DataParallel", "single"): [
        'target.load_state_dict({k.removeprefix("module."): v for k, v in sd.items()})',
        "nn.DataParallel(target).load_state_dict(sd)",
    ],
}
CONSTRUCTORS = {"single": "Net()", "DataParallel": "nn.DataParallel(Net())"}
TABLE_COMMAND = "python -m snippets.multi_gpu --table"
TABLE_DIR = Path(__file__).resolve().parents[1] / "generated"
TABLE_FILE = "multi-gpu-table.{lang}.md"  # one per language, each page includes its own
# the table's corner, per language; everything else in it is code, the same in both
TABLE_CORNER = {"zh": "`sd` 来自 ↓ · 加载进 `target` →",
                "en": "`sd` from ↓ · loaded into `target` →"}


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


def combination_table(lang: str = "en") -> str:
    """The Markdown table on the `lang` page, made by really loading each combination.

    Rows: what `sd` was saved from; columns: what `target` is. Each ✗ is numbered; the
    list under the table gives its error and its fixes, ✓ when a fix loads every key."""
    if lang not in TABLE_CORNER:
        raise ValueError(f"lang must be one of {list(TABLE_CORNER)}, got {lang!r}")
    rows = combination_rows()
    kinds = list(CONSTRUCTORS)
    ok = "<All keys matched successfully>"
    head = " | ".join(f"`{CONSTRUCTORS[k]}`" for k in kinds)
    lines = [f"| {TABLE_CORNER[lang]} | {head} |", "| --- |" + " :-: |" * len(kinds)]
    notes = []
    for saved_from in kinds:
        cells = []
        for row in (r for r in rows if r["saved_from"] == saved_from):
            if row["result"] == ok:
                cells.append("✓")
                continue
            notes.append(row)
            cells.append(f"✗ ({len(notes)})")
        lines.append(f"| `{CONSTRUCTORS[saved_from]}` | " + " | ".join(cells) + " |")
    lines.append("")
    for n, row in enumerate(notes, 1):
        fixes = " · ".join(f"{'✓' if out == ok else f'`{out}`'} `{code}`"
                           for code, out in row["fixes"])
        lines.append(f"({n}) {short_error(row['result'])}<br>⇒ {fixes}")
        lines.append("")
    return "\n".join(lines)


def write_tables(folder: Path = TABLE_DIR) -> list[Path]:
    """Write each language's table into folder (generated/ by default)."""
    paths = []
    for lang in TABLE_CORNER:
        paths.append(Path(folder) / TABLE_FILE.format(lang=lang))
        paths[-1].write_text(combination_table(lang), encoding="utf-8")
    return paths


def main(argv: list[str]) -> None:
    if argv[:1] == ["--table"] and len(argv) <= 2:
        for path in write_tables(*argv[1:]):
            print(f"wrote {path}")
        return
    if argv[:1] == ["--spawn"] and set(argv[1:]) <= set(SPAWN_DEMOS) and argv[1:]:
        for n, name in enumerate(argv[1:]):  # in the current folder
            if n:
                print(SPAWN_SEPARATOR, flush=True)
            SPAWN_DEMOS[name]()
        return
    if argv:
        raise SystemExit(f"unknown arguments {argv}; use none (demos), "
                         f"--table [FOLDER], or --spawn with some of "
                         f"{list(SPAWN_DEMOS)}")
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        tour()
        exercise_rank_indices()
        exercise_ddp_grads()


# --8<-- [start:exercise_rank_indices]
def rank_indices(size: int, num_replicas: int, rank: int, epoch: int,
                 seed: int = 0) -> list[int]:
    """What DistributedSampler(shuffle=True) gives `rank`: one permutation seeded
    with seed + epoch, padded to a multiple of num_replicas, every num_replicas-th."""
    generator = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(size, generator=generator).tolist()  # the same on every rank
    order += order[:-size % num_replicas]  # pad with the first indices
    return order[rank::num_replicas]
# --8<-- [end:exercise_rank_indices]


def exercise_rank_indices() -> None:
    # --8<-- [start:exercise_rank_indices_check]
    for epoch in (0, 1):
        mine = [rank_indices(10, 3, rank, epoch) for rank in range(3)]
        samplers = [DistributedSampler(range(10), num_replicas=3, rank=rank, seed=0)
                    for rank in range(3)]
        for sampler in samplers:
            sampler.set_epoch(epoch)
        print(f"epoch {epoch}: {mine}", mine == [list(s) for s in samplers])
    # --8<-- [end:exercise_rank_indices_check]


# --8<-- [start:exercise_ddp_grads]
def mean_loss_grads(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> list:
    """The gradient of the mean cross-entropy over (X, y), one tensor per parameter."""
    model.zero_grad()
    nn.functional.cross_entropy(model(X), y).backward()
    return [p.grad.clone() for p in model.parameters()]


def ddp_grads(model: nn.Module, X: torch.Tensor, y: torch.Tensor, num_replicas: int):
    """Each rank's gradient on its share, averaged as DDP's all-reduce averages them."""
    shares = zip(X.tensor_split(num_replicas), y.tensor_split(num_replicas))
    per_rank = [mean_loss_grads(model, xs, ys) for xs, ys in shares]
    return [torch.stack(grads).mean(dim=0) for grads in zip(*per_rank)]
# --8<-- [end:exercise_ddp_grads]


def exercise_ddp_grads() -> None:
    # --8<-- [start:exercise_ddp_grads_check]
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    X, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    for n in (16, 10):  # shares of 4, 4, 4, 4, or of 3, 3, 2, 2
        ddp = ddp_grads(model, X[:n], y[:n], num_replicas=4)
        one = mean_loss_grads(model, X[:n], y[:n])
        same = all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ddp, one))
        print(f"{n} samples on 4 ranks: same gradient as one process: {same}")
    # --8<-- [end:exercise_ddp_grads_check]


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
