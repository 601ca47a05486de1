"""Chapter `data`: a Dataset subclass over real digits, an ImageFolder tree written from
them, DataLoader arguments, `next(iter(...))`, and drawing a batch with matplotlib.

Run it as `python -m snippets.data` (or `python snippets/data.py`).
Sections marked `--8<-- [start:name]` are shown on the pages docs/{zh,en}/data.md.

Reusable helpers (the lab notebooks import them):
    write_digit_folders(root, size=32, val_fraction=0.2, seed=0) -> (train_dir, val_dir)
    open_image_folder(folder, transform=None) -> datasets.ImageFolder
    DigitsDataset(images, labels, num_classes=10, max_value=16.0, transform=None)
    to_numpy_image(image, mean=MEAN, std=STD) -> np.ndarray
    save_batch_grid(images, labels, path, mean=MEAN, std=STD, columns=8) -> Path
"""

from __future__ import annotations

import contextlib
import io
import tempfile

# isort: split
# --8<-- [start:imports_dataset]
import operator

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch.utils.data import Dataset

# --8<-- [end:imports_dataset]
# isort: split
# --8<-- [start:imports_endless]
import itertools

from torch.utils.data import DataLoader

# --8<-- [end:imports_endless]
# isort: split
# --8<-- [start:imports_folders]
import json
import os
import shutil
from pathlib import Path

from PIL import Image

# --8<-- [end:imports_folders]
# isort: split
# --8<-- [start:imports_transform]
from torchvision import datasets
from torchvision.transforms import v2

# --8<-- [end:imports_transform]
# isort: split
# --8<-- [start:imports_open]
from torchvision.datasets.folder import IMG_EXTENSIONS

# --8<-- [end:imports_open]
# isort: split
# --8<-- [start:imports_csv]
import csv

# --8<-- [end:imports_csv]
# isort: split
# --8<-- [start:imports_show]
import matplotlib.pyplot as plt

# --8<-- [end:imports_show]
# isort: split
# --8<-- [start:imports_seed]
from torch.utils.data import get_worker_info

# --8<-- [end:imports_seed]
# isort: split
# --8<-- [start:imports_pad]
from torch.nn.utils.rnn import pad_sequence

# --8<-- [end:imports_pad]
# isort: split
# --8<-- [start:imports_sampler]
from torch.utils.data import Subset, WeightedRandomSampler

# --8<-- [end:imports_sampler]
# isort: split
# --8<-- [start:imports_stream]
from torch.utils.data import IterableDataset

# --8<-- [end:imports_stream]
# isort: split
# --8<-- [start:imports_time]
import time

# --8<-- [end:imports_time]


# --8<-- [start:plain_dataset]
class SimpleDigits(Dataset):
    """The three methods and nothing else: (image [1, 8, 8] in [0, 1], label)."""

    def __init__(self, images, labels):
        self.images = torch.as_tensor(images, dtype=torch.float32) / 16
        self.labels = torch.as_tensor(labels, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index].unsqueeze(0), int(self.labels[index])
# --8<-- [end:plain_dataset]


def demo_plain_dataset() -> SimpleDigits:
    # --8<-- [start:demo_plain_dataset]
    digits = load_digits()  # 1,797 real 8x8 digits, values 0..16
    simple = SimpleDigits(digits.images, digits.target)
    image, label = simple[0]
    print(len(simple), image.shape, image.dtype, label)
    # --8<-- [end:demo_plain_dataset]
    return simple


# --8<-- [start:digits_dataset]
class DigitsDataset(Dataset):
    """Grayscale images and integer labels as (image [1, H, W] in [0, 1], label)."""

    def __init__(self, images, labels, num_classes=10, max_value=16.0, transform=None):
        images, labels = np.asarray(images), np.asarray(labels)
        check_digits(images, labels, num_classes, max_value)  # clear errors first
        self.images = torch.as_tensor(images, dtype=torch.float32) / max_value
        self.labels = torch.as_tensor(labels, dtype=torch.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        try:
            index = operator.index(index)  # ints, NumPy ints, 0-d integer tensors
        except TypeError:
            raise TypeError(
                f"a sample index must be an integer, got {index!r}; use a DataLoader "
                "or torch.utils.data.Subset for several samples") from None
        if not -len(self) <= index < len(self):
            # IndexError is also the signal that ends `for sample in dataset`
            raise IndexError(f"index {index} is out of range for a dataset "
                             f"of {len(self)} samples")
        image = self.images[index].unsqueeze(0)  # (H, W) -> (1, H, W): one channel
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])
# --8<-- [end:digits_dataset]


# --8<-- [start:check_digits]
def check_digits(images, labels, num_classes, max_value) -> None:
    """Say what is wrong with the arrays, and how to fix it, before training does."""
    if images.ndim == 4 and images.shape[-1] in (3, 4):
        raise ValueError(
            f"images have shape {images.shape}, colour (N, H, W, {images.shape[-1]}) "
            "arrays; DigitsDataset expects grayscale (N, H, W): convert first, "
            "e.g. images.mean(axis=-1)")
    if images.ndim != 3 or len(images) == 0:
        raise ValueError("images must be a grayscale (N, H, W) array with N >= 1, "
                         f"got shape {images.shape}")
    if images.min() < 0 or images.max() > max_value:
        raise ValueError(
            f"pixel values must lie in 0..{max_value:g}, "
            f"got {images.min():g}..{images.max():g}; "
            "pass max_value=255 for 8-bit images")
    if labels.shape != (len(images),):
        raise ValueError(f"need one label per image: {len(images)} images "
                         f"but labels of shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError("labels must be integers (class indices), "
                        f"got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1} for num_classes={num_classes}, "
            f"got {labels.min()}..{labels.max()}; CrossEntropyLoss would fail on them")
# --8<-- [end:check_digits]


def demo_dataset() -> DigitsDataset:
    digits = load_digits()
    # --8<-- [start:demo_dataset]
    dataset = DigitsDataset(digits.images, digits.target)
    image, label = dataset[0]
    print(len(dataset), image.shape, image.dtype, label)
    print(f"pixels {image.min().item()} .. {image.max().item()}")
    try:
        dataset[len(dataset)]
    except IndexError as err:
        print("IndexError:", err)
    print(sum(1 for _ in dataset), "samples seen by a for loop")
    # --8<-- [end:demo_dataset]
    return dataset


def demo_dataset_errors() -> None:
    digits = load_digits()
    # --8<-- [start:demo_dataset_errors]
    images, target = digits.images, digits.target
    attempts = {
        "labels 1..10": lambda: DigitsDataset(images, target + 1),
        "float labels": lambda: DigitsDataset(images, target.astype(float)),
        "too few labels": lambda: DigitsDataset(images, target[:100]),
        "colour images": lambda: DigitsDataset(np.stack([images] * 3, -1), target),
        "8-bit pixels": lambda: DigitsDataset(images * 255 / 16, target),
        "a float index": lambda: DigitsDataset(images, target)[0.5],
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except (ValueError, TypeError) as err:
            print(f"{name}: {type(err).__name__}: {err}")
    # --8<-- [end:demo_dataset_errors]


# --8<-- [start:endless]
class Cycle(Dataset):
    """A Dataset whose __getitem__ never raises IndexError."""

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index):
        return index % 3
# --8<-- [end:endless]


def demo_endless() -> None:
    # --8<-- [start:demo_endless]
    print(list(itertools.islice(iter(Cycle()), 7)))  # iter() alone would never stop
    print(list(DataLoader(Cycle(), batch_size=2)))  # a DataLoader asks len() instead
    # --8<-- [end:demo_endless]


# --8<-- [start:write_digit_folders]
# --8<-- [start:stratified_split]
def stratified_split(target, val_fraction: float, seed: int) -> list:
    """Per digit: (digit, val indices, train indices), with val_fraction in val."""
    rng = np.random.default_rng(seed)
    splits = []
    for digit in range(10):
        indices = rng.permutation(np.flatnonzero(target == digit))
        n_val = round(len(indices) * val_fraction)
        if n_val in (0, len(indices)):
            raise ValueError(
                f"val_fraction={val_fraction} leaves digit {digit} with an empty "
                "split; use a value between 0.01 and 0.99")
        splits.append((digit, indices[:n_val], indices[n_val:]))
    return splits
# --8<-- [end:stratified_split]


# --8<-- [start:write_pngs]
def write_pngs(images, splits, train_dir: Path, val_dir: Path, size: int) -> None:
    """Save each image as split/<digit>/<index>.png, 8-bit grayscale, size x size."""
    pixels = np.round(images * (255 / 16)).astype(np.uint8)  # 0..16 -> 0..255
    for digit, val_indices, train_indices in splits:
        for split_dir, indices in ((train_dir, train_indices), (val_dir, val_indices)):
            folder = split_dir / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            for i in sorted(indices):
                image = Image.fromarray(pixels[i])  # 2-D uint8 -> mode 'L'
                # nearest neighbour: each pixel becomes a block
                image = image.resize((size, size), Image.Resampling.NEAREST)
                image.save(folder / f"{i:04d}.png", compress_level=1)
# --8<-- [end:write_pngs]


# --8<-- [start:write_digits]
def write_digit_folders(root, size=32, val_fraction=0.2,
                        seed=0) -> tuple[Path, Path]:
    """Write sklearn's digits as root/{train,val}/<digit>/NNNN.png (reused if done)."""
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError("root must be a folder path (str or Path), "
                        f"got {type(root).__name__}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError("size must be an int >= 8 (the digits are 8x8 pixels), "
                         f"got {size!r}")
    if (isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float))
            or not 0 < val_fraction < 1):
        raise ValueError("val_fraction must be a number between 0 and 1, "
                         f"got {val_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    root = Path(root)
    train_dir, val_dir, marker = root / "train", root / "val", root / "digits.json"
    params = {"size": size, "val_fraction": val_fraction, "seed": seed}
    digits = load_digits()
    splits = stratified_split(digits.target, val_fraction, seed)
    if marker.exists():
        if json.loads(marker.read_text()) == {**params, "complete": True}:
            return train_dir, val_dir  # already written with these arguments
        shutil.rmtree(train_dir, ignore_errors=True)  # other arguments, or interrupted
        shutil.rmtree(val_dir, ignore_errors=True)
    elif train_dir.exists() or val_dir.exists():
        raise FileExistsError(f"{root} already has train/ or val/ folders that "
                              "write_digit_folders did not write; pass an empty "
                              "or new folder")
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({**params, "complete": False}))
    write_pngs(digits.images, splits, train_dir, val_dir, size)
    marker.write_text(json.dumps({**params, "complete": True}))
    return train_dir, val_dir
# --8<-- [end:write_digits]
# --8<-- [end:write_digit_folders]


def demo_write() -> tuple[Path, Path]:
    # --8<-- [start:demo_write]
    train_path, val_path = write_digit_folders("digits")
    for split in (train_path, val_path):
        counts = [len(list((split / str(d)).glob("*.png"))) for d in range(10)]
        print(split, sum(counts), counts)
    with Image.open(next((train_path / "3").glob("*.png"))) as png:
        print(png.mode, png.size)
    # --8<-- [end:demo_write]
    return train_path, val_path


# --8<-- [start:transform]
MEAN, STD = (0.5,), (0.5,)  # Normalize: (x - 0.5) / 0.5 maps [0, 1] to [-1, 1]
data_transform = v2.Compose([
    v2.Grayscale(num_output_channels=1),  # ImageFolder opens every file as RGB
    v2.ToImage(),  # PIL image -> (C, H, W) uint8 tensor
    v2.ToDtype(torch.float32, scale=True),  # 0..255 -> 0.0..1.0
    v2.Normalize(MEAN, STD),
])
# --8<-- [end:transform]


# --8<-- [start:train_transform]
train_transform = v2.Compose([
    v2.Grayscale(num_output_channels=1),
    v2.ToImage(),
    # each time a sample is read: a new small rotation, shift and zoom
    v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
    v2.ToDtype(torch.float32, scale=True),
    v2.Normalize(MEAN, STD),
])
val_transform = data_transform  # validation: deterministic, no augmentation
# --8<-- [end:train_transform]


def demo_augment(train_path: Path) -> datasets.ImageFolder:
    # --8<-- [start:demo_augment]
    torch.manual_seed(0)  # random transforms draw from torch's global RNG
    aug_data = datasets.ImageFolder(train_path, transform=train_transform)
    plain_data = datasets.ImageFolder(train_path, transform=val_transform)
    print("train_transform, sample 0 twice:",
          torch.equal(aug_data[0][0], aug_data[0][0]))
    print("val_transform, sample 0 twice:",
          torch.equal(plain_data[0][0], plain_data[0][0]))
    print(aug_data[0][0].shape, plain_data[0][0].shape)
    # --8<-- [end:demo_augment]
    return aug_data


def demo_image_folder(train_path: Path, val_path: Path):
    # --8<-- [start:demo_raw_folder]
    raw = datasets.ImageFolder(train_path)  # no transform: PIL images
    image, label = raw[0]
    with Image.open(raw.samples[0][0]) as png:
        print("file:", png.mode, "-> loaded:", image.mode, image.size, label)
    print(v2.ToImage()(image).shape)  # three identical channels
    # --8<-- [end:demo_raw_folder]
    # --8<-- [start:demo_image_folder]
    train_data = datasets.ImageFolder(train_path, transform=data_transform)
    val_data = datasets.ImageFolder(val_path, transform=data_transform)
    image, label = train_data[0]
    low, high = image.min().item(), image.max().item()
    print(image.shape, image.dtype, f"{low:.2f} .. {high:.2f}", label)
    print(len(train_data), len(val_data), train_data.classes)
    print(train_data.class_to_idx)
    # --8<-- [end:demo_image_folder]
    return train_data, val_data


def demo_class_order() -> None:
    # --8<-- [start:demo_class_order]
    for name in ["2", "10", "1", "cat", "Dog"]:
        folder = Path("pets") / name
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("L", (4, 4)).save(folder / "x.png")
    print(datasets.ImageFolder("pets").class_to_idx)
    # --8<-- [end:demo_class_order]


# --8<-- [start:open_image_folder]
def open_image_folder(folder, transform=None) -> datasets.ImageFolder:
    """datasets.ImageFolder after checking the folder/<class>/<image> layout."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise FileNotFoundError(f"image folder {folder} {what}; write one with "
                                "write_digit_folders(root) or fix the path")
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if not classes:
        raise FileNotFoundError(f"{folder} has no class folders; ImageFolder "
                                f"expects {folder}/<class>/<image>.png")
    hidden = [name for name in classes if name.startswith(".")]
    if hidden:
        raise ValueError(f"hidden folders {hidden} in {folder} would become "
                         "classes; delete them")
    if set(classes) <= {"train", "val", "test"}:
        raise ValueError(f"{folder} holds the splits {classes}, not classes; "
                         f"pass one split, e.g. {folder / classes[0]}")
    for name in classes:
        files = (folder / name).rglob("*")
        if not any(p.is_file() and p.name.lower().endswith(IMG_EXTENSIONS)
                   for p in files):
            raise FileNotFoundError(
                f"class folder {folder / name} holds no images "
                f"({' '.join(IMG_EXTENSIONS)}); add images or delete the folder")
    return datasets.ImageFolder(folder, transform=transform)
# --8<-- [end:open_image_folder]


def demo_folder_errors() -> None:
    # --8<-- [start:demo_folder_errors]
    Path("empty").mkdir(exist_ok=True)
    (Path("one_empty_class") / "a").mkdir(parents=True, exist_ok=True)
    (Path("one_empty_class") / "b").mkdir(exist_ok=True)
    Image.new("L", (4, 4)).save(Path("one_empty_class") / "a" / "x.png")
    attempts = {
        "a typo": lambda: open_image_folder("digit/train"),
        "no classes": lambda: open_image_folder("empty"),
        "an empty class": lambda: open_image_folder("one_empty_class"),
        "the parent folder": lambda: open_image_folder("digits"),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except (FileNotFoundError, ValueError) as err:
            print(f"{name}: {type(err).__name__}: {err}")
    # --8<-- [end:demo_folder_errors]


# --8<-- [start:read_image_csv]
def read_image_csv(csv_file) -> list[tuple[Path, int]]:
    """Rows `path,label` of a CSV -> [(image path, label)], paths relative to it."""
    csv_file = Path(csv_file)
    if not csv_file.is_file():
        raise FileNotFoundError(f"CSV file {csv_file} does not exist")
    samples = []
    with open(csv_file, newline="") as f:
        reader = csv.DictReader(f)
        if not {"path", "label"} <= set(reader.fieldnames or []):
            raise ValueError(f"{csv_file}: the first line must name the columns "
                             f"path,label; got {reader.fieldnames}")
        for row in reader:
            where = f"{csv_file} line {reader.line_num}"
            path, label = row["path"], row["label"]  # None when a row is short
            if not path or not label:
                raise ValueError(f"{where}: every row needs path,label; "
                                 f"got path={path!r} label={label!r}")
            try:
                label = int(label)
            except ValueError:
                label = -1
            if label < 0:
                raise ValueError(f"{where}: label {row['label']!r} is not a class "
                                 "index (an integer >= 0)")
            image = csv_file.parent / path
            if not image.is_file():
                raise FileNotFoundError(f"{where}: image {image} does not exist")
            samples.append((image, label))
    if not samples:
        raise ValueError(f"{csv_file} lists no images, only a header")
    return samples
# --8<-- [end:read_image_csv]


# --8<-- [start:csv_dataset]
class CsvImageDataset(Dataset):
    """Images listed in a CSV file (columns path,label), each opened when asked for."""

    def __init__(self, csv_file, transform=None):
        self.samples = read_image_csv(csv_file)  # checks every row, opens no image
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        with Image.open(path) as image:  # read from disk only now
            image = image.convert("RGB")  # as ImageFolder's loader does
        if self.transform is not None:
            image = self.transform(image)
        return image, label
# --8<-- [end:csv_dataset]


def demo_csv(val_data) -> CsvImageDataset:
    # --8<-- [start:demo_write_csv]
    with open("digits/val.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        for path, label in val_data.samples:  # digits/val/0/0000.png -> val/0/...
            writer.writerow([Path(path).relative_to("digits").as_posix(), label])
    print(Path("digits/val.csv").read_text().splitlines()[:3])
    # --8<-- [end:demo_write_csv]
    # --8<-- [start:demo_csv]
    csv_data = CsvImageDataset("digits/val.csv", transform=val_transform)
    image, label = csv_data[0]
    print(len(csv_data), image.shape, label, torch.equal(image, val_data[0][0]))
    images, labels = next(iter(DataLoader(csv_data, batch_size=64)))
    print(images.shape, labels[:5])
    # --8<-- [end:demo_csv]
    return csv_data


def demo_csv_errors() -> None:
    # --8<-- [start:demo_csv_errors]
    header_and_row_1 = Path("digits/val.csv").read_text().splitlines()[:2]
    bad_rows = {
        "a missing file": "val/0/9999.png,0",
        "no label": "val/0/0000.png",
        "a word for a label": "val/0/0000.png,zero",
    }
    for name, row in bad_rows.items():
        Path("digits/bad.csv").write_text("\n".join([*header_and_row_1, row]) + "\n")
        try:
            CsvImageDataset("digits/bad.csv")
        except (FileNotFoundError, ValueError) as err:
            print(f"{name}: {type(err).__name__}: {err}")
    # --8<-- [end:demo_csv_errors]


def demo_loader(train_data, val_data):
    # --8<-- [start:demo_loader]
    batch_size = 64
    train_loader = DataLoader(train_data, batch_size=batch_size, shuffle=True,
                              drop_last=True,
                              generator=torch.Generator().manual_seed(0))
    val_loader = DataLoader(val_data, batch_size=batch_size, shuffle=False)
    print(len(train_data), "//", batch_size, "=", len(train_loader),
          "batches (drop_last)")
    print(len(val_data), "->", len(val_loader), "batches, the last holds",
          len(val_data) % batch_size)
    # --8<-- [end:demo_loader]
    # --8<-- [start:demo_epochs]
    epoch_1 = next(iter(train_loader))[1]  # labels of the first batch of an epoch
    epoch_2 = next(iter(train_loader))[1]  # a new iter() is a new epoch: new order
    again = DataLoader(train_data, batch_size=batch_size, shuffle=True,
                       drop_last=True, generator=torch.Generator().manual_seed(0))
    print(torch.equal(epoch_1, epoch_2), torch.equal(epoch_1, next(iter(again))[1]))
    print(next(iter(val_loader))[1][:10])  # no shuffle: files in class order
    # --8<-- [end:demo_epochs]
    return train_loader, val_loader


def demo_next_iter(val_loader, val_data) -> None:
    # --8<-- [start:demo_next_iter]
    images, labels = next(iter(val_loader))  # a DataLoader yields batches
    print(images.shape, labels.shape)
    sample = next(iter(val_data))  # an ImageFolder yields single samples
    print(type(sample).__name__, sample[0].shape, sample[1])
    print(hasattr(val_data, "__iter__"), len(list(iter(val_data))) == len(val_data))
    # --8<-- [end:demo_next_iter]


# --8<-- [start:show]
# --8<-- [start:to_numpy_image]
def to_numpy_image(image: torch.Tensor, mean=MEAN, std=STD) -> np.ndarray:
    """One normalised (C, H, W) tensor -> an (H, W) or (H, W, 3) array in [0, 1]."""
    if (not isinstance(image, torch.Tensor) or image.dim() != 3
            or image.shape[0] not in (1, 3)):
        shape = (tuple(image.shape) if isinstance(image, torch.Tensor)
                 else type(image).__name__)
        raise ValueError(f"expects one (C, H, W) image with 1 or 3 channels, got "
                         f"{shape}; take one image of a batch, e.g. images[0]")
    mean = torch.as_tensor(mean, dtype=image.dtype).reshape(-1, 1, 1)
    std = torch.as_tensor(std, dtype=image.dtype).reshape(-1, 1, 1)
    image = (image * std + mean).clamp(0, 1)  # undo Normalize
    image = image.permute(1, 2, 0)  # CHW -> HWC, the layout imshow wants
    if image.shape[2] == 1:
        image = image[:, :, 0]  # grayscale: a plain (H, W) array
    return image.numpy()
# --8<-- [end:to_numpy_image]


# --8<-- [start:save_batch_grid]
def save_batch_grid(images, labels, path, mean=MEAN, std=STD, columns=8) -> Path:
    """Draw a batch as a grid of images titled with their labels; save a picture."""
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.25),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, images, labels):
        ax.imshow(to_numpy_image(image, mean, std), cmap="gray", vmin=0, vmax=1)
        ax.set_title(str(int(label)))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.94,
                        wspace=0.1, hspace=0.35)
    fig.savefig(path, dpi=80)
    plt.close(fig)  # in Jupyter, plt.show() instead
    return Path(path)
# --8<-- [end:save_batch_grid]
# --8<-- [end:show]


def demo_show(train_loader) -> Path:
    # --8<-- [start:demo_show]
    images, labels = next(iter(train_loader))
    print(images[0].shape, "->", images[0].permute(1, 2, 0).shape)
    first = to_numpy_image(images[0])
    print(type(first).__name__, first.shape, first.min(), first.max())
    print(save_batch_grid(images[:32], labels[:32], "batch.png"))
    # --8<-- [end:demo_show]
    return Path("batch.png")


def demo_notes_transpose(val_loader) -> None:
    # --8<-- [start:demo_notes_transpose]
    images, labels = next(iter(val_loader))
    plt.imshow(images[0].transpose(1, 2, 0))  # the notes' line
    # --8<-- [end:demo_notes_transpose]


# --8<-- [start:ink_sequences]
class InkSequences(SimpleDigits):
    """Each digit as a sequence: the values of its inked pixels, row by row."""

    def __getitem__(self, index):
        pixels = self.images[index].flatten()
        return pixels[pixels > 0], int(self.labels[index])  # its length varies
# --8<-- [end:ink_sequences]


def demo_ink_sequences() -> InkSequences:
    digits = load_digits()
    # --8<-- [start:demo_ink_sequences]
    ink = InkSequences(digits.images, digits.target)  # SimpleDigits' __init__
    print([len(ink[i][0]) for i in range(6)], ink[0][0][:4])
    # --8<-- [end:demo_ink_sequences]
    return ink


def demo_default_collate_fails(ink) -> None:
    # --8<-- [start:demo_default_collate_fails]
    next(iter(DataLoader(ink, batch_size=4)))  # default collate: torch.stack
    # --8<-- [end:demo_default_collate_fails]


# --8<-- [start:pad_collate]
def pad_collate(batch):
    """(sequence, label) samples -> padded [B, T], lengths [B], labels [B]."""
    if len(batch) == 0:
        raise ValueError("pad_collate got an empty batch")
    sequences, labels = zip(*batch)
    for i, seq in enumerate(sequences):
        if not isinstance(seq, torch.Tensor) or seq.dim() == 0:
            shape = tuple(seq.shape) if isinstance(seq, torch.Tensor) else seq
            raise ValueError(f"sample {i} of the batch is not a sequence: got "
                             f"{shape!r}; each sample must be (tensor [T, ...], label)")
    lengths = torch.tensor([len(seq) for seq in sequences])
    padded = pad_sequence(sequences, batch_first=True, padding_value=0.0)
    return padded, lengths, torch.tensor(labels)
# --8<-- [end:pad_collate]


def demo_pad_collate(ink) -> None:
    # --8<-- [start:demo_pad_collate]
    loader = DataLoader(ink, batch_size=4, collate_fn=pad_collate)
    padded, lengths, labels = next(iter(loader))
    print(padded.shape, lengths, labels)
    mask = torch.arange(padded.shape[1]) < lengths[:, None]  # True where real data
    print(mask.sum(dim=1), padded[1, 30:].tolist())  # sample 1: 5 zeros
    mean = (padded * mask).sum(dim=1) / lengths  # padding left out of the mean
    print(torch.allclose(mean, torch.stack([ink[i][0].mean() for i in range(4)])))
    # --8<-- [end:demo_pad_collate]


# --8<-- [start:balanced_sampler]
def balanced_sampler(labels, generator=None) -> WeightedRandomSampler:
    """Draw each class about equally often: weight 1 / (its class's count)."""
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or len(labels) == 0 or labels.is_floating_point():
        raise ValueError("labels must be a non-empty 1-D sequence of class "
                         f"indices, got shape {tuple(labels.shape)}, {labels.dtype}")
    if labels.min() < 0:
        raise ValueError(f"class indices must be >= 0, got {labels.min().item()}")
    counts = torch.bincount(labels)  # samples per class
    weights = 1.0 / counts[labels].double()  # a rare class weighs more
    return WeightedRandomSampler(weights, num_samples=len(labels),
                                 replacement=True, generator=generator)
# --8<-- [end:balanced_sampler]


def demo_sampler(simple: SimpleDigits) -> None:
    # --8<-- [start:demo_imbalanced]
    zeros = (simple.labels == 0).nonzero().flatten()
    ones = (simple.labels == 1).nonzero().flatten()[::10]  # keep one 1 in ten
    rare = Subset(simple, torch.cat([zeros, ones]).tolist())
    rare_labels = simple.labels[rare.indices]
    print(torch.bincount(rare_labels).tolist()[:2])  # 0s, 1s
    # --8<-- [end:demo_imbalanced]
    # --8<-- [start:demo_balanced]
    def batch_counts(**how):
        loader = DataLoader(rare, batch_size=50, **how)
        return [torch.bincount(labels, minlength=2).tolist() for _, labels in loader]

    shuffled = batch_counts(shuffle=True, generator=torch.Generator().manual_seed(0))
    sampler = balanced_sampler(rare_labels, torch.Generator().manual_seed(0))
    balanced = batch_counts(sampler=sampler)
    print("shuffle:", shuffled)
    print("sampler:", balanced)
    drawn = set(rare.indices[i] for i in sampler)  # one more epoch's samples
    print("different samples drawn:",
          f"zeros {len(drawn & set(zeros.tolist()))} of {len(zeros)},",
          f"ones {len(drawn & set(ones.tolist()))} of {len(ones)}")
    # --8<-- [end:demo_balanced]


# --8<-- [start:workers]
def main() -> None:
    train_path, _ = write_digit_folders("digits")  # same call as above: files reused
    train_data = datasets.ImageFolder(train_path, transform=data_transform)

    def first_batch(num_workers):
        loader = DataLoader(train_data, batch_size=64, shuffle=True, drop_last=True,
                            num_workers=num_workers,
                            generator=torch.Generator().manual_seed(0))
        return next(iter(loader))

    images, labels = first_batch(min(2, os.cpu_count() or 1))  # <= cores
    print(images.shape, labels.shape)
    print(torch.equal(labels, first_batch(0)[1]))  # workers only read the data
# --8<-- [end:workers]


def demo_guard() -> None:
    # --8<-- [start:guard]
    if __name__ == "__main__":  # a spawned worker imports this file as __mp_main__
        main()
    # --8<-- [end:guard]


# --8<-- [start:first_batch_of]
def first_batch_of(dataset, num_workers, seed=0, worker_init_fn=None):
    """The first batch of a shuffled loader whose generator has this seed."""
    loader = DataLoader(dataset, batch_size=16, shuffle=True, num_workers=num_workers,
                        generator=torch.Generator().manual_seed(seed),
                        worker_init_fn=worker_init_fn)
    return next(iter(loader))
# --8<-- [end:first_batch_of]


def demo_random_workers(aug_data) -> None:
    # --8<-- [start:demo_random_workers]
    images_0, labels_0 = first_batch_of(aug_data, num_workers=0)
    images_2, labels_2 = first_batch_of(aug_data, num_workers=2)
    print("same labels:", torch.equal(labels_0, labels_2))
    print("same images:", torch.equal(images_0, images_2))
    # --8<-- [end:demo_random_workers]
    # --8<-- [start:demo_repeat_workers]
    run_1, run_2 = (first_batch_of(aug_data, num_workers=2)[0] for _ in range(2))
    print("2 workers, seed 0 twice:", torch.equal(run_1, run_2))
    run_1, run_2 = (first_batch_of(aug_data, num_workers=0)[0] for _ in range(2))
    print("no workers, seed 0 twice:", torch.equal(run_1, run_2))
    # --8<-- [end:demo_repeat_workers]


# --8<-- [start:random_shift]
class RandomShift(Dataset):
    """Four samples; the augmentation draws from an RNG the dataset owns."""

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index):
        return index * 100 + int(self.rng.integers(10))  # shift by 0..9
# --8<-- [end:random_shift]


# --8<-- [start:seed_worker]
def seed_worker(worker_id: int) -> None:
    """worker_init_fn: reseed the dataset's own RNG in each worker."""
    info = get_worker_info()  # this worker's copy of the dataset, and its seed
    info.dataset.rng = np.random.default_rng(info.seed)  # base seed + worker_id
# --8<-- [end:seed_worker]


def demo_seed_worker() -> None:
    # --8<-- [start:demo_seed_worker]
    def shifts(worker_init_fn=None, seed=0):
        loader = DataLoader(RandomShift(), batch_size=2, num_workers=2,
                            generator=torch.Generator().manual_seed(seed),
                            worker_init_fn=worker_init_fn)
        return [(batch % 100).tolist() for batch in loader]  # worker 0, worker 1

    print("without seed_worker:", shifts())
    print("with seed_worker:   ", shifts(seed_worker), shifts(seed_worker))
    print("another seed:       ", shifts(seed_worker, seed=1))
    # --8<-- [end:demo_seed_worker]


# --8<-- [start:number_stream]
class NumberStream(IterableDataset):
    """Samples 0..n-1 read one after the other, as from a file or a socket."""

    def __init__(self, n: int):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        self.n = n

    def __iter__(self):
        return iter(range(self.n))  # every copy of the dataset reads everything
# --8<-- [end:number_stream]


def demo_stream_copies() -> None:
    # --8<-- [start:demo_stream_copies]
    def seen(dataset, num_workers):
        loader = DataLoader(dataset, batch_size=4, num_workers=num_workers)
        return sorted(int(i) for batch in loader for i in batch)

    print(get_worker_info())  # None: this is the main process
    print(seen(NumberStream(6), num_workers=0))
    print(seen(NumberStream(6), num_workers=2))  # each worker reads it all
    # --8<-- [end:demo_stream_copies]


# --8<-- [start:sharded_stream]
class ShardedStream(NumberStream):
    """Each (rank, worker) pair reads its own share: every sample once per epoch."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        super().__init__(n)
        if isinstance(world_size, bool) or not isinstance(world_size, int) \
                or world_size < 1:
            raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) \
                or not 0 <= rank < world_size:
            raise ValueError(f"rank must be an int in 0..{world_size - 1} "
                             f"for world_size={world_size}, got {rank!r}")
        self.rank, self.world_size = rank, world_size

    def __iter__(self):
        info = get_worker_info()  # None without workers
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        shards = self.world_size * workers  # readers in all processes
        shard = self.rank * workers + worker  # this reader's number
        return itertools.islice(super().__iter__(), shard, None, shards)
# --8<-- [end:sharded_stream]


def demo_sharded_stream() -> None:
    # --8<-- [start:demo_sharded_stream]
    def seen_by(rank, epochs=2):
        loader = DataLoader(ShardedStream(10, rank, world_size=2), batch_size=2,
                            num_workers=2, persistent_workers=True)
        return [[int(i) for batch in loader for i in batch] for _ in range(epochs)]

    rank_0, rank_1 = seen_by(0), seen_by(1)  # in DDP: each rank in its process
    print("rank 0:", rank_0[0], "rank 1:", rank_1[0])
    print(all(sorted(a + b) == list(range(10)) for a, b in zip(rank_0, rank_1)))
    # --8<-- [end:demo_sharded_stream]


def demo_pin_memory(val_data) -> None:
    # --8<-- [start:demo_pin_memory]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu_loader = DataLoader(val_data, batch_size=64,
                            pin_memory=device.type == "cuda")  # only with CUDA
    for images, labels in gpu_loader:
        images = images.to(device, non_blocking=True)  # from pinned memory: async
        labels = labels.to(device, non_blocking=True)
    print(images.device.type == device.type, images.shape, labels.shape)
    # --8<-- [end:demo_pin_memory]


# --8<-- [start:which_process]
class WhichProcess(Dataset):
    """Four samples, each the id of the process that loaded it."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index):
        return os.getpid()
# --8<-- [end:which_process]


# --8<-- [start:epoch_starts]
def epoch_starts(loader, epochs=3) -> tuple[list[float], set[int]]:
    """Per epoch, seconds from iter(loader) to its first batch; the pids seen."""
    times, pids = [], set()
    for _ in range(epochs):
        start = time.perf_counter()
        batches = iter(loader)  # a new epoch: new workers, unless persistent
        first = next(batches)
        times.append(time.perf_counter() - start)
        pids.update(int(pid) for batch in (first, *batches) for pid in batch)
    return times, pids
# --8<-- [end:epoch_starts]


def demo_persistent() -> dict:
    # --8<-- [start:demo_persistent]
    starts = {}
    for persistent in (False, True):
        loader = DataLoader(WhichProcess(), batch_size=2, num_workers=2,
                            persistent_workers=persistent)
        starts[persistent], pids = epoch_starts(loader)
        print(f"persistent_workers={persistent}: {len(pids)} worker processes "
              "in 3 epochs")
        times = ", ".join(f"{t:.2f} s" for t in starts[persistent])
        print("  first batch after", times)
    # --8<-- [end:demo_persistent]
    return starts


def demo_prefetch(val_data) -> None:
    # --8<-- [start:demo_prefetch]
    loader = DataLoader(val_data, batch_size=64, num_workers=2, prefetch_factor=4)
    print(loader.prefetch_factor, "batches ahead per worker")
    print(DataLoader(val_data, batch_size=64, num_workers=2).prefetch_factor)
    # --8<-- [end:demo_prefetch]


def demo_prefetch_error(val_data) -> None:
    # --8<-- [start:demo_prefetch_error]
    DataLoader(val_data, batch_size=64, prefetch_factor=4)  # num_workers=0
    # --8<-- [end:demo_prefetch_error]


def save_figures(out_dir) -> list[Path]:
    """`make figures`: the batch grid that demo_show draws -> data-batch.png."""
    target = Path(out_dir) / "data-batch.png"
    with (tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp),
          contextlib.redirect_stdout(io.StringIO())):
        train_data, val_data = demo_image_folder(*demo_write())
        train_loader, _ = demo_loader(train_data, val_data)
        shutil.copyfile(demo_show(train_loader), target)
    return [target]


def run_demos() -> None:
    """Every demo in order (they write files: `python -m snippets.data` runs them in a
    temporary folder)."""
    print("--- demo_plain_dataset")
    simple = demo_plain_dataset()
    for demo in (demo_dataset, demo_dataset_errors, demo_endless):
        print(f"--- {demo.__name__}")
        demo()
    print("--- demo_write")
    train_path, val_path = demo_write()
    print("--- demo_image_folder")
    train_data, val_data = demo_image_folder(train_path, val_path)
    print("--- demo_augment")
    aug_data = demo_augment(train_path)
    print("--- demo_class_order")
    demo_class_order()
    print("--- demo_folder_errors")
    demo_folder_errors()
    print("--- demo_csv")
    demo_csv(val_data)
    demo_csv_errors()
    print("--- demo_loader")
    train_loader, val_loader = demo_loader(train_data, val_data)
    print("--- demo_next_iter")
    demo_next_iter(val_loader, val_data)
    print("--- demo_show")
    demo_show(train_loader)
    print("--- collate_fn: sequences of different lengths")
    ink = demo_ink_sequences()
    with contextlib.suppress(RuntimeError):
        demo_default_collate_fails(ink)
    demo_pad_collate(ink)
    print("--- WeightedRandomSampler")
    demo_sampler(simple)
    print("--- demo_guard (worker processes)")
    demo_guard()
    print("--- random transforms in workers")
    demo_random_workers(aug_data)
    demo_seed_worker()
    print("--- IterableDataset")
    demo_stream_copies()
    demo_sharded_stream()
    print("--- pin_memory, persistent_workers, prefetch_factor")
    demo_pin_memory(val_data)
    demo_persistent()
    demo_prefetch(val_data)
    print("--- exercises")
    exercise_class_counts(train_data, val_data)
    exercise_random_split()


# --8<-- [start:exercise_class_counts]
def class_counts(folder: datasets.ImageFolder) -> list[int]:
    """Images per class, in `folder.classes` order, from the labels alone."""
    labels = torch.tensor(folder.targets)  # one label per file; no image is opened
    return torch.bincount(labels, minlength=len(folder.classes)).tolist()
# --8<-- [end:exercise_class_counts]


def exercise_class_counts(train_data, val_data) -> tuple[list[int], list[int]]:
    # --8<-- [start:exercise_class_counts_check]
    print(class_counts(train_data))
    print(class_counts(val_data))
    # --8<-- [end:exercise_class_counts_check]
    return class_counts(train_data), class_counts(val_data)


# --8<-- [start:exercise_random_split]
def split_80_20(dataset: Dataset, seed: int):
    """A random 80 % / 20 % split of any Dataset, the same for the same seed."""
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.random_split(dataset, [0.8, 0.2], generator=generator)
# --8<-- [end:exercise_random_split]


def exercise_random_split(simple: SimpleDigits | None = None):
    if simple is None:
        digits = load_digits()
        simple = SimpleDigits(digits.images, digits.target)
    # --8<-- [start:exercise_random_split_check]
    train_part, val_part = split_80_20(simple, seed=0)
    again, _ = split_80_20(simple, seed=0)
    print(len(train_part), len(val_part), train_part.indices == again.indices)
    print(set(train_part.indices).isdisjoint(val_part.indices))
    val_labels = simple.labels[val_part.indices]
    print(torch.bincount(val_labels, minlength=10).tolist())  # not stratified
    # --8<-- [end:exercise_random_split_check]
    return train_part, val_part


if __name__ == "__main__":  # in a temporary folder: the demos write images, CSV files
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        run_demos()
