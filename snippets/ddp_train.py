"""Train a digit classifier with DistributedDataParallel: one process per GPU, or 2 on a CPU.

    torchrun --standalone --nproc_per_node=2 snippets/ddp_train.py
    torchrun --standalone --nproc_per_node=gpu snippets/ddp_train.py   # one process per GPU
"""
import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description="DDP training on sklearn digits (start with torchrun)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", default="ddp_out", help="folder for the checkpoint (rank 0 writes it)")
    args = parser.parse_args()
    if "LOCAL_RANK" not in os.environ:
        raise SystemExit(f"start this script with torchrun: torchrun --standalone --nproc_per_node=2 {sys.argv[0]}")
    local_rank = int(os.environ["LOCAL_RANK"])
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise SystemExit(f"local rank {local_rank} but only {torch.cuda.device_count()} GPU(s); "
                             "start one process per GPU: --nproc_per_node=gpu")
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    try:
        torch.manual_seed(0)  # same start everywhere; DDP also broadcasts rank 0's weights
        train = digits("train")
        sampler = DistributedSampler(train, num_replicas=world_size, rank=rank, shuffle=True, seed=0)
        loader = DataLoader(train, batch_size=32, sampler=sampler)  # each rank gets its own share
        model = DDP(build_model().to(device), device_ids=[local_rank] if use_cuda else None)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()
        if rank == 0:
            print(f"backend {dist.get_backend()}, {world_size} processes, {len(loader)} steps per epoch")
        for epoch in range(args.epochs):
            sampler.set_epoch(epoch)  # a new shuffle each epoch (the same on every rank)
            model.train()
            total = torch.zeros(2, device=device)  # loss sum, sample count
            for X, y in loader:
                X, y = X.to(device), y.to(device)
                loss = loss_fn(model(X), y)
                opt.zero_grad()
                loss.backward()  # DDP averages the gradients over all ranks here
                opt.step()
                total += torch.stack([loss.detach() * len(y), torch.tensor(float(len(y)), device=device)])
            dist.all_reduce(total)  # sum over the ranks
            if rank == 0:
                print(f"epoch {epoch}: mean loss {(total[0] / total[1]).item():.3f} on {int(total[1])} samples")

        hashes = [None] * world_size
        dist.all_gather_object(hashes, params_hash(model.module))
        out = Path(args.out)
        if rank == 0:
            print(f"parameters identical on all {world_size} ranks: {len(set(hashes)) == 1}")
            test_X, test_y = digits("test").tensors
            model.eval()
            with torch.no_grad():
                accuracy = (model.module(test_X.to(device)).argmax(1).cpu() == test_y).float().mean().item()
            print(f"test accuracy {accuracy:.3f}")
            print(f"DDP wrapper keys: {list(model.state_dict())[:2]}")  # the wrapper adds 'module.'
            out.mkdir(parents=True, exist_ok=True)
            torch.save(model.module.state_dict(), out / "model.pt")  # the inner model: no prefix
            print(f"rank 0 saved {out / 'model.pt'}")
        if use_cuda:
            dist.barrier(device_ids=[local_rank])  # the other ranks wait until the file exists
        else:
            dist.barrier()
        plain = build_model()
        plain.load_state_dict(torch.load(out / "model.pt", map_location="cpu", weights_only=True))
        same = params_hash(plain) == params_hash(model.module)
        print(f"rank {rank}/{world_size} done: params {params_hash(model.module)}, checkpoint equals replica: {same}")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
