"""The labs: the glue between chapters that the two lab notebooks run.

docs/{zh,en}/labs/task1.ipynb and task3.ipynb are generated from sections of the
chapter modules plus the sections below (`make notebooks`, snippets/labs.cells.yml).
Run both labs as one script: `python -m snippets.labs` (it works in a temporary folder).

Reusable helpers:
    in_memory(dataset) -> TensorDataset
    predict(model, loader, device) -> (predicted, labels)
    save_predictions_grid(images, labels, predicted, path, columns=8) -> Path
    digit_features(val_fraction=0.2, seed=0) -> X_train, X_val, y_train, y_val
"""
from __future__ import annotations

import contextlib
import tempfile

# --8<-- [start:imports]
from pathlib import Path

import IPython.display as ipd  # shows a saved picture in Jupyter
import matplotlib.pyplot as plt
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# --8<-- [end:imports]
# Defined by the chapters' sections that the notebooks show before these ones.
from snippets.containers import MLP, make_sequential_named
from snippets.data import (
    data_transform,
    open_image_folder,
    to_numpy_image,
    write_digit_folders,
)
from snippets.environment import pick_device
from snippets.init import init_weights
from snippets.multi_gpu import load_state_dict_flexible
from snippets.training import (
    DigitCNN,
    check_labels,
    evaluate,
    fit,
    plot_history,
    seed_everything,
    train_one_epoch,
)


# --8<-- [start:in_memory]
def in_memory(dataset) -> TensorDataset:
    """Every (image, label) of a dataset, loaded and transformed once, as two tensors.

    ImageFolder opens and transforms each file again in every epoch. For a small
    dataset whose transform has no randomness (no augmentation), doing that once is
    enough.
    """
    if len(dataset) == 0:
        raise ValueError("the dataset is empty; check the folder it reads")
    images, labels = zip(*(dataset[i] for i in range(len(dataset))))
    if not isinstance(images[0], torch.Tensor):
        raise TypeError(
            f"the dataset gives {type(images[0]).__name__} images, not tensors; "
            "give it a transform that makes tensors (e.g. v2.ToImage() and "
            "v2.ToDtype(torch.float32, scale=True))"
        )
    return TensorDataset(torch.stack(images), torch.as_tensor(labels))
# --8<-- [end:in_memory]


# --8<-- [start:predict]
def predict(
    model: nn.Module, loader: DataLoader, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's class for every sample of loader and the true labels, on the CPU."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(loader, DataLoader):
        raise TypeError(f"loader must be a DataLoader, got {type(loader).__name__}; "
                        "wrap a dataset with DataLoader(dataset, batch_size=...)")
    model.eval()                                  # dropout off
    predicted, labels = [], []
    with torch.no_grad():
        for data, label in loader:
            predicted.append(model(data.to(device)).argmax(dim=1).cpu())
            labels.append(label)
    return torch.cat(predicted), torch.cat(labels)
# --8<-- [end:predict]


# --8<-- [start:predictions_grid]
def save_predictions_grid(images, labels, predicted, path, columns: int = 8) -> Path:
    """Draw images titled with the predicted class.

    A wrong one is in red, with the true class in brackets.
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        if isinstance(images, torch.Tensor):
            shape = tuple(images.shape)
        else:
            shape = type(images).__name__
        raise ValueError(
            f"images must be a (N, C, H, W) tensor, got {shape}; "
            "stack single images with torch.stack"
        )
    if not len(images) == len(labels) == len(predicted):
        raise ValueError(
            f"need one label and one prediction per image: {len(images)} images, "
            f"{len(labels)} labels, {len(predicted)} predictions"
        )
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * 1.1, rows * 1.3), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label, guess in zip(axes.flat, images, labels, predicted):
        ax.imshow(to_numpy_image(image), cmap="gray", vmin=0, vmax=1)
        wrong = int(guess) != int(label)
        ax.set_title(f"{int(guess)} ({int(label)})" if wrong else str(int(guess)),
                     color="red" if wrong else "black")
    fig.subplots_adjust(
        left=0.01, right=0.99, bottom=0.01, top=0.92, wspace=0.1, hspace=0.4
    )
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)
# --8<-- [end:predictions_grid]


# --8<-- [start:digit_features]
def digit_features(val_fraction: float = 0.2, seed: int = 0):
    """sklearn's digits as (N, 64) float features in [0, 1].

    Split stratified into train and val.
    """
    digits = load_digits()
    # each 8x8 image as one row of 64
    X = torch.tensor(digits.data / 16, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    return train_test_split(
        X, y, test_size=val_fraction, stratify=y, random_state=seed
    )
# --8<-- [end:digit_features]


# ---- Task1 lab ----

def demo_task1_data():
    # --8<-- [start:task1_data]
    # 8x8 PNGs, one folder per digit
    train_path, val_path = write_digit_folders("digits", size=8)
    train_folder = open_image_folder(train_path, transform=data_transform)
    val_folder = open_image_folder(val_path, transform=data_transform)
    print(len(train_folder), "training images,", len(val_folder), "validation images")
    print(train_folder.classes)
    # each PNG read once
    train_data, val_data = in_memory(train_folder), in_memory(val_folder)
    train_loader = DataLoader(train_data, batch_size=64, shuffle=True,
                              generator=torch.Generator().manual_seed(0))
    val_loader = DataLoader(val_data, batch_size=256)
    images, labels = next(iter(train_loader))
    print(
        images.shape,
        images.dtype,
        f"{images.min():.0f} .. {images.max():.0f}",
        labels[:10].tolist(),
    )
    # --8<-- [end:task1_data]
    return train_data, val_data, train_loader, val_loader


def demo_task1_model():
    # --8<-- [start:task1_model]
    seed_everything(0)
    device = pick_device()
    # the init chapter's initialisation
    model = DigitCNN().apply(init_weights).to(device)
    conv, linear = model.features[0], model.classifier[2]
    print("device:", device.type)
    print("conv bias:", conv.bias.detach().unique().tolist())
    print(f"linear weight std: {linear.weight.std():.3f}")
    print(sum(p.numel() for p in model.parameters()), "parameters")
    # --8<-- [end:task1_model]
    return model, device


def demo_task1_train(model, train_loader, val_loader, device):
    # --8<-- [start:task1_train]
    for loader in (train_loader, val_loader):  # once, before training
        check_labels(loader.dataset.tensors[1], num_classes=10)
    history = fit(model, train_loader, val_loader, epochs=6, lr=3e-3, device=device)
    # --8<-- [end:task1_train]
    return history


def demo_task1_evaluate(model, val_loader, device):
    # --8<-- [start:task1_evaluate]
    val_loss, val_acc = evaluate(model, val_loader, nn.CrossEntropyLoss(), device)
    print(f"validation: loss {val_loss:.3f}, accuracy {val_acc:.3f}")
    predicted, labels = predict(model, val_loader, device)
    for digit in range(10):
        mine = labels == digit
        right = (predicted[mine] == digit).sum().item()
        print(f"digit {digit}: {right:2} of {mine.sum().item()} right")
    # --8<-- [end:task1_evaluate]
    return predicted, labels


def demo_task1_curves(history):
    # --8<-- [start:task1_curves]
    curves = plot_history(history, "curves.png")
    ipd.display(
        ipd.Image(
            filename=curves,
            alt="training and validation loss, and validation accuracy, per epoch",
        )
    )
    # --8<-- [end:task1_curves]
    return curves


def demo_task1_predictions(val_data, predicted, labels):
    # --8<-- [start:task1_predictions]
    wrong = (predicted != labels).nonzero().flatten()
    print(
        len(wrong),
        "mistakes (true->predicted):",
        [f"{labels[i]}->{predicted[i]}" for i in wrong.tolist()],
    )
    spread = torch.linspace(0, len(val_data) - 1, 16).long()  # two rows of all digits
    shown = torch.cat([spread, wrong[:8]])                     # then a row of mistakes
    images = torch.stack([val_data[int(i)][0] for i in shown])
    grid = save_predictions_grid(
        images, labels[shown], predicted[shown], "predictions.png"
    )
    ipd.display(
        ipd.Image(
            filename=grid,
            alt="validation digits titled with the predicted class, mistakes in red",
        )
    )
    # --8<-- [end:task1_predictions]
    return grid


# ---- Task3 lab ----

def demo_task3_same_keys():
    # --8<-- [start:task3_same_keys]
    torch.manual_seed(0)
    seq, sub = make_sequential_named(), MLP()
    print(list(seq.state_dict()))
    # same names: the containers do not matter
    print(list(seq.state_dict()) == list(sub.state_dict()))
    print(sub.load_state_dict(seq.state_dict()))
    x = torch.rand(3, 64)
    print(torch.equal(seq(x), sub(x)))
    # --8<-- [end:task3_same_keys]


def demo_task3_train():
    # --8<-- [start:task3_train]
    seed_everything(0)
    X_train, X_val, y_train, y_val = digit_features()
    check_labels(y_train, num_classes=10)  # once, before training
    train_loader = DataLoader(
        TensorDataset(X_train, y_train),
        batch_size=64,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    device = pick_device()
    model = make_sequential_named().to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(1, 6):
        loss = train_one_epoch(model, train_loader, loss_fn, optimizer, device)
        print(f"epoch {epoch}: train loss {loss:.3f}")
    # --8<-- [end:task3_train]
    return model, device, X_val, y_val


def demo_task3_wrap(model, device, X_val, y_val):
    # --8<-- [start:task3_wrap]
    # one process, the batch split over the visible GPUs
    dp = nn.DataParallel(model).to(device)
    print(dp.module is model)
    print(list(dp.state_dict())[:2])
    dp.eval()
    with torch.no_grad():
        wrapped_out = dp(X_val.to(device)).cpu()
    print(f"accuracy {(wrapped_out.argmax(dim=1) == y_val).float().mean():.3f}")
    # --8<-- [end:task3_wrap]
    return dp, wrapped_out


def demo_task3_save(dp):
    # --8<-- [start:task3_save]
    # the inner model: keys without a prefix
    torch.save(dp.module.state_dict(), "mlp.pt")
    # the wrapper: every key starts with module.
    torch.save(dp.state_dict(), "mlp_wrapped.pt")
    for name in ("mlp.pt", "mlp_wrapped.pt"):
        print(name, list(torch.load(name, map_location="cpu", weights_only=True))[:2])
    # --8<-- [end:task3_save]


def demo_task3_load(wrapped_out, X_val):
    # --8<-- [start:task3_load]
    plain = MLP()  # written as a subclass, never wrapped
    # map_location="cpu": works without a GPU
    sd = torch.load("mlp.pt", map_location="cpu", weights_only=True)
    print(plain.load_state_dict(sd))
    plain.eval()
    with torch.no_grad():
        plain_out = plain(X_val)
    print(
        "same predictions:",
        torch.equal(plain_out.argmax(dim=1), wrapped_out.argmax(dim=1)),
    )
    print("same outputs:", torch.allclose(plain_out, wrapped_out, atol=1e-5))
    # --8<-- [end:task3_load]
    return plain_out


def demo_task3_load_wrapped(plain_out, X_val):
    # --8<-- [start:task3_load_wrapped]
    try:
        MLP().load_state_dict(
            torch.load("mlp_wrapped.pt", map_location="cpu", weights_only=True)
        )
    except RuntimeError as err:
        print(str(err).splitlines()[0])
        print(str(err).splitlines()[1].strip()[:60], "...")
    # removes the prefix
    flexible = load_state_dict_flexible(MLP(), "mlp_wrapped.pt").eval()
    with torch.no_grad():
        print("same outputs:", torch.equal(flexible(X_val), plain_out))
    # --8<-- [end:task3_load_wrapped]


def run_task1() -> None:
    train_data, val_data, train_loader, val_loader = demo_task1_data()
    model, device = demo_task1_model()
    history = demo_task1_train(model, train_loader, val_loader, device)
    predicted, labels = demo_task1_evaluate(model, val_loader, device)
    demo_task1_curves(history)
    demo_task1_predictions(val_data, predicted, labels)


def run_task3() -> None:
    demo_task3_same_keys()
    model, device, X_val, y_val = demo_task3_train()
    dp, wrapped_out = demo_task3_wrap(model, device, X_val, y_val)
    demo_task3_save(dp)
    plain_out = demo_task3_load(wrapped_out, X_val)
    demo_task3_load_wrapped(plain_out, X_val)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        for lab in (run_task1, run_task3):
            print(f"=== {lab.__name__}")
            lab()
