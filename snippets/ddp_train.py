"""Train a digit classifier with DistributedDataParallel (DDP).

torchrun starts the processes (one per GPU, or 2 on a CPU); DDP keeps their
model copies in step. Start it with snippets/ddp_run.sh:

    torchrun --standalone --nproc_per_node=2 snippets/ddp_train.py
    torchrun --standalone --nproc_per_node=gpu snippets/ddp_train.py   # one per GPU
"""
# --8<-- [start:imports]
import argparse
import gc
import hashlib
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

# --8<-- [end:imports]


# --8<-- [start:helpers]
def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def digits(split: str) -> TensorDataset:
    """sklearn's 1,797 real 8x8 digits: the first 1,500 to train, the rest to test."""
    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)
    part = slice(0, 1500) if split == "train" else slice(1500, None)
    return TensorDataset(X[part], y[part])


def params_hash(model: nn.Module) -> str:
    """A fingerprint of all parameters: equal on every rank if the replicas agree."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]
# --8<-- [end:helpers]


# --8<-- [start:setup]
def setup() -> tuple[int, torch.device]:
    """Join the process group that torchrun started; return (local rank, device)."""
    if "LOCAL_RANK" not in os.environ:  # set by torchrun, with RANK and WORLD_SIZE
        raise SystemExit("start this script with torchrun: "
                         f"torchrun --standalone --nproc_per_node=2 {sys.argv[0]}")
    local_rank = int(os.environ["LOCAL_RANK"])
    if not torch.cuda.is_available():
        dist.init_process_group(backend="gloo")  # CPU processes
        return local_rank, torch.device("cpu")
    gpus = torch.cuda.device_count()
    if local_rank >= gpus:
        raise SystemExit(f"local rank {local_rank} but {gpus} GPU(s): "
                         "start one process per GPU: --nproc_per_node=gpu")
    torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl")  # one GPU per process
    return local_rank, torch.device("cuda", local_rank)
# --8<-- [end:setup]


# --8<-- [start:train]
def train(model, loader, sampler, epochs: int, device) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)  # a new shuffle each epoch (the same on every rank)
        model.train()
        total = torch.zeros(2, device=device)  # loss sum, sample count
        for X, y in loader:
            X, y = X.to(device), y.to(device)
            loss = loss_fn(model(X), y)
            opt.zero_grad()
            loss.backward()  # DDP averages the gradients over all ranks here
            opt.step()
            n = torch.tensor(float(len(y)), device=device)
            total += torch.stack([loss.detach() * n, n])
        dist.all_reduce(total)  # sum over the ranks
        if dist.get_rank() == 0:
            mean, n = (total[0] / total[1]).item(), int(total[1])
            print(f"epoch {epoch}: mean loss {mean:.3f} on {n} samples")
# --8<-- [end:train]


# --8<-- [start:finish]
def finish(model: DDP, out: Path, device: torch.device) -> None:
    """Compare the replicas; rank 0 tests and saves; every rank reloads the file."""
    rank, world_size = dist.get_rank(), dist.get_world_size()
    hashes = [None] * world_size
    dist.all_gather_object(hashes, params_hash(model.module))
    if rank == 0:
        identical = len(set(hashes)) == 1
        print(f"parameters identical on all {world_size} ranks: {identical}")
        test_X, test_y = digits("test").tensors
        model.eval()
        with torch.no_grad():
            predicted = model.module(test_X.to(device)).argmax(1).cpu()
        print(f"test accuracy {(predicted == test_y).float().mean().item():.3f}")
        print(f"DDP wrapper keys: {list(model.state_dict())[:2]}")  # 'module.' added
        out.mkdir(parents=True, exist_ok=True)
        torch.save(model.module.state_dict(), out / "model.pt")  # the inner model
        print(f"rank 0 saved {out / 'model.pt'}")
    on_gpu = [device.index] if device.type == "cuda" else None
    dist.barrier(device_ids=on_gpu)  # the other ranks wait until the file exists
    plain = build_model()
    plain.load_state_dict(torch.load(out / "model.pt", map_location="cpu",
                                     weights_only=True))
    same = [None] * world_size
    dist.all_gather_object(same, params_hash(plain) == hashes[rank])
    if rank == 0:
        print(f"the saved file equals each rank's model: {same}")
    dist.barrier(device_ids=on_gpu)  # leave together
# --8<-- [end:finish]


# --8<-- [start:main]
def main() -> None:
    parser = argparse.ArgumentParser(description="DDP on sklearn digits (use torchrun)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default="ddp_out", help="rank 0 saves here")
    args = parser.parse_args()
    local_rank, device = setup()
    try:
        torch.manual_seed(0)  # DDP also copies rank 0's start weights to every rank
        data = digits("train")
        sampler = DistributedSampler(data, shuffle=True, seed=0)  # a share per rank
        loader = DataLoader(data, batch_size=32, sampler=sampler)
        ids = [local_rank] if device.type == "cuda" else None
        model = DDP(build_model().to(device), device_ids=ids)
        if dist.get_rank() == 0:
            print(f"backend {dist.get_backend()}, {dist.get_world_size()} processes, "
                  f"{len(loader)} steps per epoch")
        train(model, loader, sampler, args.epochs, device)
        finish(model, Path(args.out), device)
        del model  # the DDP wrapper holds the group: free it before the group goes
    finally:
        gc.collect()  # now, not at exit: gloo's threads must end while Python is alive
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
# --8<-- [end:main]
