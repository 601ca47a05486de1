"""Claims of the `data` chapter (docs/{zh,en}/data.md), checked on real sklearn digits."""
from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import re
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset, get_worker_info
from torchvision import datasets
from torchvision.transforms import v2

from pagekit.page import expand
from pagekit.project import LANGS
from pagekit.run import nice_prefix, remembered
from snippets.data import (
    MEAN,
    STD,
    CsvImageDataset,
    Cycle,
    DigitsDataset,
    NumberStream,
    RandomShift,
    ShardedStream,
    SimpleDigits,
    WhichProcess,
    balanced_sampler,
    data_transform,
    demo_default_collate_fails,
    demo_ink_sequences,
    demo_pad_collate,
    demo_persistent,
    demo_sampler,
    demo_sharded_stream,
    demo_stream_copies,
    epoch_starts,
    first_batch_of,
    open_image_folder,
    pad_collate,
    save_batch_grid,
    save_figures,
    seed_worker,
    to_numpy_image,
    train_transform,
    val_transform,
    write_digit_folders,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The notes' code, verbatim (section 3 of notes/000_47689c7703e8d658.txt)
NOTES_IMAGEFOLDER = """\
import torch
from torchvision import datasets
train_data = datasets.ImageFolder(train_path, transform=data_transform)
val_data = datasets.ImageFolder(val_path, transform=data_transform)
"""
NOTES_LOADERS = """\
from torch.utils.data import DataLoader

train_loader = torch.utils.data.DataLoader(train_data, batch_size=batch_size, num_workers=4, shuffle=True, drop_last=True)
val_loader = torch.utils.data.DataLoader(val_data, batch_size=batch_size, num_workers=4, shuffle=False)
"""
NOTES_SHOW = """\
images, labels = next(iter(val_loader))
print(images.shape)
plt.imshow(images[0].transpose(1,2,0))
"""

TORCH_RELEASE = tuple(int(n) for n in torch.__version__.split("+")[0].split(".")[:2])  # (2, 14)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_digit_folders(tmp_path_factory.mktemp("tree") / "digits")


@pytest.fixture(scope="module")
def train_data(tree):
    return datasets.ImageFolder(tree[0], transform=data_transform)


@pytest.fixture(scope="module")
def val_data(tree):
    return datasets.ImageFolder(tree[1], transform=data_transform)


def two_cpus(monkeypatch):
    """Make DataLoader see a 2-core machine, whatever this one has."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)


# --- the Dataset subclass ----------------------------------------------------------------------

def test_dataset_len_and_sample(digits):
    dataset = DigitsDataset(digits.images, digits.target)
    image, label = dataset[5]
    assert len(dataset) == 1797
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32
    assert isinstance(label, int) and label == digits.target[5]
    assert torch.equal(image[0], torch.as_tensor(digits.images[5], dtype=torch.float32) / 16)
    assert 0 <= dataset.images.min() and dataset.images.max() == 1


def test_dataset_index_error_ends_iteration(digits):
    dataset = DigitsDataset(digits.images, digits.target)
    with pytest.raises(IndexError, match="index 1797 is out of range for a dataset of 1797 samples"):
        dataset[1797]
    with pytest.raises(IndexError, match="index -1798 is out of range"):
        dataset[-1798]
    assert dataset[-1][1] == digits.target[-1]
    assert not hasattr(dataset, "__iter__")          # plain iteration uses __getitem__ until IndexError
    assert sum(1 for _ in dataset) == 1797


def test_dataset_accepts_numpy_and_tensor_indices(digits):
    dataset = DigitsDataset(digits.images, digits.target)
    assert dataset[np.int64(3)][1] == dataset[torch.tensor(3)][1] == dataset[3][1]


def test_dataset_transform_is_applied(digits):
    dataset = DigitsDataset(digits.images, digits.target, transform=v2.Normalize(MEAN, STD))
    image, _ = dataset[0]
    assert image.min() == -1 and torch.allclose(image, DigitsDataset(digits.images, digits.target)[0][0] * 2 - 1)


@pytest.mark.parametrize("make, error, message", [
    (lambda d: DigitsDataset(d.images, d.target + 1), ValueError, r"labels must lie in 0\.\.9 for num_classes=10, got 1\.\.10"),
    (lambda d: DigitsDataset(d.images, d.target - 1), ValueError, r"labels must lie in 0\.\.9 .* got -1\.\.8"),
    (lambda d: DigitsDataset(d.images, d.target.astype(float)), TypeError, "labels must be integers"),
    (lambda d: DigitsDataset(d.images, d.target[:100]), ValueError, "need one label per image: 1797 images"),
    (lambda d: DigitsDataset(np.stack([d.images] * 3, axis=-1), d.target), ValueError,
     r"colour \(N, H, W, 3\) arrays; DigitsDataset expects grayscale"),
    (lambda d: DigitsDataset(d.images.reshape(1797, 64), d.target), ValueError,
     r"grayscale \(N, H, W\) array with N >= 1, got shape \(1797, 64\)"),
    (lambda d: DigitsDataset(d.images[:0], d.target[:0]), ValueError, r"N >= 1, got shape \(0, 8, 8\)"),
    (lambda d: DigitsDataset(d.images * 255 / 16, d.target), ValueError, "pass max_value=255 for 8-bit images"),
    (lambda d: DigitsDataset(d.images, d.target)[0.5], TypeError, "a sample index must be an integer, got 0.5"),
    (lambda d: DigitsDataset(d.images, d.target)[0:4], TypeError, "use a DataLoader or torch.utils.data.Subset"),
])
def test_dataset_rejects_bad_input(digits, make, error, message):
    with pytest.raises(error, match=message):
        make(digits)


def test_dataset_8bit_images_with_max_value(digits):
    dataset = DigitsDataset(np.round(digits.images * 255 / 16), digits.target, max_value=255)
    assert dataset[0][0].max() <= 1


def test_labels_out_of_range_break_cross_entropy():
    # why DigitsDataset checks labels: label 10 with 10 classes
    with pytest.raises(IndexError, match="Target 10 is out of bounds."):
        F.cross_entropy(torch.zeros(1, 10), torch.tensor([10]))


def test_notes_E5_dataset_without_index_error_never_stops():
    assert list(itertools.islice(iter(Cycle()), 7)) == [0, 1, 2, 0, 1, 2, 0]
    assert list(itertools.islice(iter(Cycle()), 1000))[-1] == 999 % 3  # still going
    batches = list(DataLoader(Cycle(), batch_size=2))                   # the sampler uses len()
    assert [b.tolist() for b in batches] == [[0, 1], [2]]


# --- writing the ImageFolder tree --------------------------------------------------------------

def test_write_digit_folders_layout(tree, digits):
    train_dir, val_dir = tree
    assert train_dir.name == "train" and val_dir.name == "val"
    seen = []
    for digit in range(10):
        train = sorted(int(p.stem) for p in (train_dir / str(digit)).glob("*.png"))
        val = sorted(int(p.stem) for p in (val_dir / str(digit)).glob("*.png"))
        n = int((digits.target == digit).sum())
        assert len(train) + len(val) == n
        assert len(val) == round(n * 0.2)                               # stratified: each digit ~20 %
        assert all(digits.target[i] == digit for i in train + val)      # file name = load_digits index
        seen += train + val
    assert sorted(seen) == list(range(1797))                            # no overlap, nothing missing


def test_written_pngs_are_grayscale_upscaled_digits(tree, digits):
    path = next((tree[0] / "7").glob("*.png"))
    with Image.open(path) as png:
        assert png.mode == "L" and png.size == (32, 32)
        pixels = np.asarray(png)
    expected = np.round(digits.images[int(path.stem)] * 255 / 16).astype(np.uint8)
    assert np.array_equal(pixels[::4, ::4], expected)                   # nearest: 4x4 blocks
    assert np.array_equal(pixels, np.kron(expected, np.ones((4, 4), dtype=np.uint8)))


def test_write_is_seeded_reused_and_redone(tmp_path, tree):
    names = lambda d: sorted(p.relative_to(d).as_posix() for p in d.rglob("*.png"))  # noqa: E731
    root = tmp_path / "digits"
    train_dir, val_dir = write_digit_folders(root, size=8)
    assert names(val_dir) == names(tree[1])                             # same seed, same split (any size)
    stamp = {p: p.stat().st_mtime_ns for p in root.rglob("*.png")}
    assert write_digit_folders(root, size=8) == (train_dir, val_dir)    # same call: files reused
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.png")} == stamp

    marker = root / "digits.json"                                       # an interrupted run is redone
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "complete": False}))
    next((train_dir / "0").glob("*.png")).unlink()
    write_digit_folders(root, size=8)
    assert len(names(root)) == 1797 and json.loads(marker.read_text())["complete"] is True

    write_digit_folders(root, size=8, seed=4)                           # new seed: rewritten, no stale files
    assert names(val_dir) != names(tree[1])
    assert len(names(train_dir)) + len(names(val_dir)) == 1797
    assert json.loads(marker.read_text())["seed"] == 4


def test_write_refuses_foreign_folders(tmp_path):
    (tmp_path / "train" / "cats").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="train/ or val/ folders that write_digit_folders did not write"):
        write_digit_folders(tmp_path)
    assert (tmp_path / "train" / "cats").is_dir()    # untouched


@pytest.mark.parametrize("kwargs, error, message", [
    ({"root": 3}, TypeError, "root must be a folder path"),
    ({"size": 4}, ValueError, r"size must be an int >= 8 \(the digits are 8x8 pixels\), got 4"),
    ({"size": 32.0}, ValueError, "size must be an int >= 8"),
    ({"val_fraction": 0}, ValueError, "val_fraction must be a number between 0 and 1, got 0"),
    ({"val_fraction": 1.5}, ValueError, "val_fraction must be a number between 0 and 1"),
    ({"val_fraction": 0.001}, ValueError, "leaves digit 0 with an empty split"),
    ({"seed": "0"}, TypeError, "seed must be an int"),
])
def test_write_validates_arguments(tmp_path, kwargs, error, message):
    kwargs = {"root": tmp_path / "x", **kwargs}
    with pytest.raises(error, match=message):
        write_digit_folders(**kwargs)
    assert not (tmp_path / "x").exists()             # nothing written


# --- ImageFolder -------------------------------------------------------------------------------

def test_imagefolder_grayscale_png_loads_as_rgb(tree):
    raw = datasets.ImageFolder(tree[0])
    image, label = raw[0]
    with Image.open(raw.samples[0][0]) as png:
        assert png.mode == "L"
    assert image.mode == "RGB" and label == 0
    three = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])(image)
    assert three.shape == (3, 32, 32) and torch.equal(three[0], three[1]) and torch.equal(three[1], three[2])


def test_transform_gives_one_normalised_channel(train_data, tree):
    image, label = train_data[0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert image.min() == -1 and image.max() <= 1   # this 0 has no pixel at full ink: 239/255 -> 0.87
    with Image.open(train_data.samples[0][0]) as png:
        pixels = torch.as_tensor(np.array(png), dtype=torch.float32) / 255
    assert torch.allclose(image[0], (pixels - 0.5) / 0.5)


def test_class_to_idx_for_digits(train_data, val_data):
    assert train_data.classes == [str(d) for d in range(10)]
    assert train_data.class_to_idx == {str(d): d for d in range(10)}
    assert (len(train_data), len(val_data)) == (1438, 359)
    assert all(label == int(path.split(os.sep)[-2]) for path, label in train_data.samples)


def test_imagefolder_classes_sorted_as_strings(tmp_path):
    for name in ["2", "10", "1", "cat", "Dog"]:
        (tmp_path / name).mkdir()
        Image.new("L", (4, 4)).save(tmp_path / name / "x.png")
    assert datasets.ImageFolder(tmp_path).class_to_idx == {"1": 0, "10": 1, "2": 2, "Dog": 3, "cat": 4}


def test_v2_totensor_is_deprecated():
    with pytest.warns(UserWarning, match=r"The transform `ToTensor\(\)` is deprecated"):
        v2.ToTensor()


def test_image_folder_treats_split_parent_and_hidden_folders_as_classes(tree, tmp_path):
    assert datasets.ImageFolder(tree[0].parent).classes == ["train", "val"]   # no error from torchvision
    (tmp_path / "a").mkdir()
    (tmp_path / ".ipynb_checkpoints").mkdir()
    for name in ("a", ".ipynb_checkpoints"):
        Image.new("L", (4, 4)).save(tmp_path / name / "x.png")
    assert datasets.ImageFolder(tmp_path).classes == [".ipynb_checkpoints", "a"]
    with pytest.raises(ValueError, match=r"hidden folders \['.ipynb_checkpoints'\] .* would become classes"):
        open_image_folder(tmp_path)


def test_torchvision_error_for_an_empty_class(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("L", (4, 4)).save(tmp_path / "a" / "x.png")
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes b. Supported extensions are"):
        datasets.ImageFolder(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"class folder .*b holds no images \(.jpg .jpeg .png"):
        open_image_folder(tmp_path)


def test_open_image_folder_errors(tree, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; write one with write_digit_folders"):
        open_image_folder(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
        open_image_folder(tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no class folders; ImageFolder expects"):
        open_image_folder(tmp_path / "empty")
    (tmp_path / "text" / "a").mkdir(parents=True)
    (tmp_path / "text" / "a" / "notes.txt").write_text("not an image")
    with pytest.raises(FileNotFoundError, match="holds no images"):
        open_image_folder(tmp_path / "text")
    with pytest.raises(ValueError, match=r"holds the splits \['train', 'val'\], not classes; pass one split"):
        open_image_folder(tree[0].parent)


def test_open_image_folder_returns_image_folder(tree):
    dataset = open_image_folder(tree[1], transform=data_transform)
    assert isinstance(dataset, datasets.ImageFolder) and len(dataset) == 359
    assert dataset[0][0].shape == (1, 32, 32)


def test_open_image_folder_finds_images_in_subfolders(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    Image.new("L", (4, 4)).save(tmp_path / "a" / "deep" / "x.PNG")   # ImageFolder walks subfolders
    assert len(open_image_folder(tmp_path)) == 1


# --- DataLoader --------------------------------------------------------------------------------

def test_drop_last_length(train_data, val_data):
    loader = DataLoader(train_data, batch_size=64, drop_last=True)
    assert len(loader) == len(train_data) // 64 == 22
    assert len(DataLoader(train_data, batch_size=64)) == 23          # rounds up without drop_last
    sizes = [len(labels) for _, labels in DataLoader(val_data, batch_size=64)]
    assert sizes == [64] * 5 + [359 % 64]


def test_seeded_shuffle_is_reproducible_and_reshuffles_each_epoch(train_data):
    def loader(seed):
        return DataLoader(train_data, batch_size=64, shuffle=True, drop_last=True,
                          generator=torch.Generator().manual_seed(seed))
    a = loader(0)
    first, second = next(iter(a))[1], next(iter(a))[1]
    assert not torch.equal(first, second)
    assert torch.equal(first, next(iter(loader(0)))[1])
    assert not torch.equal(first, next(iter(loader(1)))[1])


def test_unshuffled_val_comes_in_class_order(val_data):
    labels = torch.cat([y for _, y in DataLoader(val_data, batch_size=64)])
    assert torch.equal(labels, labels.sort().values) and labels[:10].tolist() == [0] * 10


def test_next_iter_loader_gives_a_batch(val_data):
    images, labels = next(iter(DataLoader(val_data, batch_size=64)))
    assert images.shape == (64, 1, 32, 32) and labels.shape == (64,) and labels.dtype == torch.int64


def test_notes_E5_next_iter_image_folder_gives_one_sample(tree):
    # the notes' own transform gives 3 channels; either way it is one (image, label) pair
    notes_data = datasets.ImageFolder(tree[1], transform=v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)]))
    sample = next(iter(notes_data))
    assert isinstance(sample, tuple) and len(sample) == 2
    assert sample[0].shape == (3, 32, 32) and sample[1] == 0
    assert not hasattr(datasets.ImageFolder, "__iter__")
    with pytest.raises(IndexError):
        notes_data[len(notes_data)]                  # what ends the fallback iteration


def test_notes_E4_four_workers_warn_on_two_cores(monkeypatch, val_data):
    two_cpus(monkeypatch)
    with pytest.warns(UserWarning, match="This DataLoader will create 4 worker processes in total. "
                                         "Our suggested max number of worker in current system is 2"):
        DataLoader(val_data, batch_size=64, num_workers=4)            # warns when created


def test_suggested_worker_count_does_not_warn(monkeypatch, val_data):
    two_cpus(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DataLoader(val_data, batch_size=64, num_workers=min(2, os.cpu_count() or 1))


@pytest.mark.multiprocess
def test_workers_give_the_same_batches(train_data):
    def first_batch(num_workers):
        loader = DataLoader(train_data, batch_size=64, shuffle=True, drop_last=True, num_workers=num_workers,
                            generator=torch.Generator().manual_seed(0))
        return next(iter(loader))
    images_0, labels_0 = first_batch(0)
    images_2, labels_2 = first_batch(2)
    assert torch.equal(labels_0, labels_2) and torch.equal(images_0, images_2)


@pytest.fixture(scope="module")
def small_train(tree):
    """The first 64 training files with a random transform set per test."""
    data = datasets.ImageFolder(tree[0])
    data.samples = data.samples[::22][:64]
    return data


def with_transform(data, transform):
    copy = datasets.ImageFolder.__new__(datasets.ImageFolder)
    copy.__dict__.update(data.__dict__, transform=transform)
    return copy


FLIP = v2.Compose([v2.Grayscale(1), v2.ToImage(), v2.RandomHorizontalFlip(),
                   v2.ToDtype(torch.float32, scale=True)])


@pytest.mark.multiprocess
@pytest.mark.parametrize("transform", [FLIP, train_transform], ids=["flip", "affine"])
def test_workers_change_random_transforms_not_the_order(small_train, transform):
    """The old claim (workers give identical batches) is false for random transforms."""
    data = with_transform(small_train, transform)
    torch.manual_seed(0)
    images_0, labels_0 = first_batch_of(data, num_workers=0)
    images_2, labels_2 = first_batch_of(data, num_workers=2)
    assert torch.equal(labels_0, labels_2)                             # same order
    assert not torch.equal(images_0, images_2)                         # other random numbers


@pytest.mark.multiprocess
def test_same_generator_seed_repeats_augmented_batches_with_workers(small_train):
    data = with_transform(small_train, FLIP)
    run_1, run_2 = (first_batch_of(data, num_workers=2)[0] for _ in range(2))
    assert torch.equal(run_1, run_2)
    assert not torch.equal(run_1, first_batch_of(data, num_workers=2, seed=1)[0])


def test_without_workers_augmentation_follows_the_global_rng(small_train):
    data = with_transform(small_train, FLIP)
    run_1, run_2 = (first_batch_of(data, num_workers=0)[0] for _ in range(2))
    assert not torch.equal(run_1, run_2)                               # generator alone: not enough
    torch.manual_seed(3)
    run_1 = first_batch_of(data, num_workers=0)[0]
    torch.manual_seed(3)
    assert torch.equal(run_1, first_batch_of(data, num_workers=0)[0])


def shifts(worker_init_fn=None, seed=0):
    loader = DataLoader(RandomShift(), batch_size=2, num_workers=2, worker_init_fn=worker_init_fn,
                        generator=torch.Generator().manual_seed(seed))
    return [(batch % 100).tolist() for batch in loader]


@pytest.mark.multiprocess
def test_seed_worker_gives_each_worker_its_own_repeatable_stream():
    without = shifts()
    assert without[0] == without[1]                                    # both workers: same copy of rng
    first = shifts(seed_worker)
    assert first[0] != first[1] and shifts(seed_worker) == first       # differ, and repeat
    assert shifts(seed_worker, seed=1) != first


@pytest.mark.multiprocess
def test_workers_seed_torch_random_and_numpy_from_the_generator():
    """What the page says torch does in each worker: torch and random get base seed + worker id,
    NumPy a seed derived from both by _generate_state (torch/utils/data/_utils/worker.py)."""
    import random

    class Draws(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            info = torch.utils.data.get_worker_info()
            return info.seed, torch.initial_seed(), random.random(), float(np.random.random_sample())

    def run(seed):
        loader = DataLoader(Draws(), batch_size=1, num_workers=2,
                            generator=torch.Generator().manual_seed(seed))
        return [[x.item() for x in batch] for batch in loader]  # item(): exact int seeds
    first = run(0)
    assert first == run(0) and first != run(1)
    assert first[1][0] == first[0][0] + 1                               # worker 1: base seed + 1
    assert first[0][0] == first[0][1]                                   # = torch's seed in the worker
    assert first[0][2:] != first[1][2:]
    # random gets base seed + k too; NumPy's seed is mixed from (base seed, k) by another function
    from torch.utils.data._utils.worker import _generate_state
    base = first[0][0]
    for k, (seed, _, py, npy) in enumerate(first):
        assert py == random.Random(base + k).random()
        assert npy == np.random.RandomState(_generate_state(base, k)).random_sample()
        assert npy != np.random.RandomState((base + k) % 2**32).random_sample()


# --- training and validation transforms ---------------------------------------------------------

def test_train_transform_is_random_and_val_transform_is_not(train_data, tree):
    aug = datasets.ImageFolder(tree[0], transform=train_transform)
    assert val_transform is data_transform
    assert not torch.equal(aug[0][0], aug[0][0])
    assert torch.equal(train_data[0][0], train_data[0][0])
    image = aug[0][0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1
    torch.manual_seed(0)
    first = aug[0][0]
    torch.manual_seed(0)
    assert torch.equal(first, aug[0][0])                               # global RNG: seedable
    assert not any(isinstance(t, v2.RandomHorizontalFlip) for t in train_transform.transforms)


# --- a lazy Dataset over a CSV of image files -------------------------------------------------

def write_csv(path, rows):
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def val_csv(tree):
    root = tree[1].parent
    rows = ["path,label"] + [f"{Path(p).relative_to(root).as_posix()},{y}"
                             for p, y in datasets.ImageFolder(tree[1]).samples]
    return write_csv(root / "val.csv", rows)


def test_csv_dataset_gives_imagefolders_samples(val_csv, val_data):
    data = CsvImageDataset(val_csv, transform=val_transform)
    assert len(data) == len(val_data) == 359
    for i in (0, 100, 358):
        image, label = data[i]
        assert torch.equal(image, val_data[i][0]) and label == val_data[i][1]
    images, labels = next(iter(DataLoader(data, batch_size=64)))
    assert images.shape == (64, 1, 32, 32) and labels.dtype == torch.int64
    raw, _ = CsvImageDataset(val_csv)[0]
    assert isinstance(raw, Image.Image) and raw.mode == "RGB"


def test_csv_dataset_is_lazy(val_csv, monkeypatch):
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    data = CsvImageDataset(val_csv, transform=val_transform)
    assert opened == []                                                # __init__ reads only the CSV
    data[5]
    assert opened == [data.samples[5][0]]


@pytest.mark.parametrize("row, error, message", [
    ("val/0/9999.png,0", FileNotFoundError, r"bad.csv line 3: image .*val/0/9999.png does not exist"),
    ("val/0/0000.png", ValueError, r"bad.csv line 3: every row needs path,label; got path='val/0/0000.png' label=None"),
    ("val/0/0000.png,", ValueError, r"line 3: every row needs path,label; .* label=''"),
    (",3", ValueError, r"line 3: every row needs path,label; got path=''"),
    ("val/0/0000.png,zero", ValueError, r"line 3: label 'zero' is not a class index \(an integer >= 0\)"),
    ("val/0/0000.png,-1", ValueError, r"line 3: label '-1' is not a class index"),
    ("val/0/0000.png,1.5", ValueError, r"line 3: label '1.5' is not a class index"),
])
def test_csv_dataset_names_the_bad_row(val_csv, row, error, message):
    lines = val_csv.read_text().splitlines()[:2]
    bad = write_csv(val_csv.parent / "bad.csv", [*lines, row])
    with pytest.raises(error, match=message):
        CsvImageDataset(bad)


def test_csv_dataset_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="CSV file .*missing.csv does not exist"):
        CsvImageDataset(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match=r"the first line must name the columns path,label; got \['file', 'y'\]"):
        CsvImageDataset(write_csv(tmp_path / "a.csv", ["file,y", "x.png,0"]))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="must name the columns path,label; got None"):
        CsvImageDataset(tmp_path / "empty.csv")
    with pytest.raises(ValueError, match="lists no images, only a header"):
        CsvImageDataset(write_csv(tmp_path / "c.csv", ["path,label"]))


# --- pin_memory, persistent_workers, prefetch_factor ---------------------------------------------

def test_pin_memory_without_accelerator_warns_and_is_ignored(val_data, monkeypatch):
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    loader = DataLoader(val_data, batch_size=64, pin_memory=True)
    if TORCH_RELEASE == (2, 6):  # the page: torch 2.6 ignores it without a word (it asks torch.cuda)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            images, _ = next(iter(loader))
    else:
        with pytest.warns(UserWarning, match="'pin_memory' argument is set as true but no accelerator is found, "
                                             "then device pinned memory won't be used."):
            images, _ = next(iter(loader))
    assert not images.is_pinned()


def test_pin_memory_only_with_cuda_runs_quietly(val_data):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loader = DataLoader(val_data, batch_size=64, pin_memory=device.type == "cuda")
        images, labels = next(iter(loader))
        assert images.to(device, non_blocking=True).device.type == device.type


@pytest.mark.cuda
def test_pinned_batches_copy_to_cuda_without_blocking(val_data):
    images, labels = next(iter(DataLoader(val_data, batch_size=64, pin_memory=True)))
    assert images.is_pinned() and labels.is_pinned()
    on_gpu = images.to("cuda", non_blocking=True)
    assert on_gpu.is_cuda and torch.equal(on_gpu.cpu(), images)         # later ops wait for the copy


@pytest.mark.multiprocess
def test_persistent_workers_keep_their_processes():
    def processes(persistent):
        loader = DataLoader(WhichProcess(), batch_size=2, num_workers=2, persistent_workers=persistent)
        return {int(pid) for _ in range(3) for batch in loader for pid in batch}
    assert len(processes(False)) == 6 and len(processes(True)) == 2
    assert os.getpid() not in processes(True)


def test_persistent_workers_and_prefetch_need_workers(val_data):
    with pytest.raises(ValueError, match="^persistent_workers option needs num_workers > 0$"):
        DataLoader(val_data, persistent_workers=True)
    with pytest.raises(ValueError) as err:
        DataLoader(val_data, batch_size=64, prefetch_factor=4)
    assert str(err.value) == ("prefetch_factor option could only be specified in multiprocessing."
                              "let num_workers > 0 to enable multiprocessing, otherwise set "
                              "prefetch_factor to None.")
    assert DataLoader(val_data).prefetch_factor is None
    assert DataLoader(val_data, num_workers=2).prefetch_factor == 2  # the default with workers
    assert DataLoader(val_data, num_workers=2, prefetch_factor=4).prefetch_factor == 4


UNGUARDED_SCRIPT = """\
import torch
from torch.utils.data import DataLoader, TensorDataset, get_worker_info

loader = DataLoader(TensorDataset(torch.arange(8.0)), batch_size=4, num_workers=1,
                    multiprocessing_context="spawn")
print(next(iter(loader)))
"""


@pytest.mark.multiprocess
@pytest.mark.slow
def test_notes_E4_spawn_without_main_guard_fails(spawn_runs):
    returncode, _, stderr = spawn_runs["unguarded.py"]
    assert returncode != 0
    message = " ".join(stderr.split())
    assert ("RuntimeError: An attempt has been made to start a new process before the "
            "current process has finished its bootstrapping phase.") in message


@pytest.mark.multiprocess
@pytest.mark.slow
def test_spawned_workers_run_under_a_guarded_main():
    # pytest's own __main__ is guarded, so spawned workers can import it safely
    loader = DataLoader(TensorDataset(torch.arange(8.0)), batch_size=4, num_workers=1,
                        multiprocessing_context="spawn")
    assert next(iter(loader))[0].tolist() == [0.0, 1.0, 2.0, 3.0]


PAGE_SCRIPT_SECTIONS = ["imports_dataset", "imports_endless", "imports_folders", "imports_transform",
                        "stratified_split", "write_pngs", "write_digits", "transform", "workers"]
SPAWN = ("import multiprocessing, runpy, sys; multiprocessing.set_start_method('spawn'); "
         "runpy.run_path(sys.argv[1], run_name='__main__')")


class SpawnRuns:
    """Three scripts whose DataLoader workers start by spawn, run at once (each waits on its
    workers' imports): the notes' unguarded loader, and the page's own code saved as a script,
    with its `if __name__ == "__main__":` guard and without it. Started at the end of collection
    (EARLY, tests/conftest.py), at a lower CPU priority (as run.niced sets it), each remembered by its command
    and script (run.remembered) when it ends as it must; `result()`: name -> (exit status, out, err)."""

    def __init__(self, folder: Path, pages: set[str] | None = None):  # every spawn run
        page = "\n\n".join(expand(f'--8<-- "snippets/data.py:{name}"') for name in PAGE_SCRIPT_SECTIONS) + "\n"
        scripts = {"unguarded.py": ([], UNGUARDED_SCRIPT),
                   "page_guarded.py": (["-c", SPAWN], page + expand('--8<-- "snippets/data.py:guard"')),
                   "page_unguarded.py": (["-c", SPAWN], page + "main()\n")}
        nice = nice_prefix()
        pool = ThreadPoolExecutor(len(scripts))
        self.running = {}
        for name, (args, code) in scripts.items():
            (folder / name[:-3]).mkdir()
            (folder / name[:-3] / name).write_text(code)
            self.running[name] = pool.submit(remembered, [*nice, sys.executable, *args, name], cwd=folder / name[:-3],
                                             depends=[folder / name[:-3]], keep=_ends_as_it_must(name), timeout=240)

    @functools.cache
    def result(self) -> dict[str, tuple[int, str, str]]:
        done = {name: future.result(timeout=240) for name, future in self.running.items()}
        return {name: (run.returncode, run.stdout, run.stderr) for name, run in done.items()}

    def close(self):
        for future in self.running.values():
            future.cancel()  # one that has started ends with its command (240 s at most)


def _ends_as_it_must(name: str):
    """The guarded script exits 0; the unguarded ones fail as the tests below expect."""
    if name == "page_guarded.py":
        return lambda done: done.returncode == 0
    return lambda done: done.returncode != 0 and "bootstrapping phase" in " ".join(done.stderr.split())


EARLY = {"spawn_runs": SpawnRuns}


@pytest.fixture(scope="module")
def spawn_runs(early) -> dict[str, tuple[int, str, str]]:
    return early.result("spawn_runs", SpawnRuns)


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("guarded", [True, False])
def test_page_workers_under_spawn_need_the_guard(spawn_runs, guarded):
    """The page's own code saved as a script, its DataLoader workers started by spawn."""
    returncode, stdout, stderr = spawn_runs["page_guarded.py" if guarded else "page_unguarded.py"]
    if guarded:
        assert returncode == 0, stderr[-2000:]
        assert stdout.split("\n")[:2] == ["torch.Size([64, 1, 32, 32]) torch.Size([64])", "True"]
    else:
        assert returncode != 0
        assert "has finished its bootstrapping phase" in " ".join(stderr.split())


def test_notes_E17_snippets_are_not_self_contained(tree, monkeypatch):
    two_cpus(monkeypatch)
    ns: dict = {}
    with pytest.raises(NameError, match="name 'train_path' is not defined"):
        exec(NOTES_IMAGEFOLDER, ns)
    ns["train_path"], ns["val_path"] = tree
    with pytest.raises(NameError, match="name 'data_transform' is not defined"):
        exec(NOTES_IMAGEFOLDER, ns)
    ns["data_transform"] = data_transform
    exec(NOTES_IMAGEFOLDER, ns)
    with pytest.raises(NameError, match="name 'batch_size' is not defined"):
        exec(NOTES_LOADERS, ns)
    ns["batch_size"] = 64
    with pytest.warns(UserWarning, match="will create 4 worker processes"):
        exec(NOTES_LOADERS, ns)
    assert ns["DataLoader"] is torch.utils.data.DataLoader          # two spellings, one class
    ns["val_loader"] = DataLoader(ns["val_data"], batch_size=64)      # the same loader without workers
    with pytest.raises(NameError, match="name 'plt' is not defined"):
        exec(NOTES_SHOW, ns)


def test_notes_E6_transpose_takes_two_dims(val_data):
    ns = {"val_loader": DataLoader(val_data, batch_size=64), "plt": plt}
    with pytest.raises(TypeError) as err:
        exec(NOTES_SHOW, ns)
    # torch's wording (the page's run compares it exactly on the pin); torch 2.6 and 2.11 list the
    # signatures, "transpose() received an invalid combination of arguments - got (int, int, int)"
    assert str(err.value) in ("transpose() takes 2 positional arguments but 3 were given",
                              "transpose() received an invalid combination of arguments - got (int, int, int), "
                              "but expected one of:\n * (int dim0, int dim1)\n * (name dim0, name dim1)\n")
    images = ns["images"]
    assert images[0].permute(1, 2, 0).shape == (32, 32, 1)
    assert np.array_equal(images[0].permute(1, 2, 0).numpy(), images[0].numpy().transpose(1, 2, 0))
    fig, ax = plt.subplots()
    assert type(ax.imshow(images[0].permute(1, 2, 0).numpy())).__name__ == "AxesImage"
    plt.close(fig)


# --- drawing -----------------------------------------------------------------------------------

def test_to_numpy_image_undoes_normalize(train_data):
    image, _ = train_data[0]
    array = to_numpy_image(image)
    with Image.open(train_data.samples[0][0]) as png:
        pixels = np.asarray(png, dtype=np.float32) / 255
    assert array.shape == (32, 32) and isinstance(array, np.ndarray)
    assert np.allclose(array, pixels, atol=1e-6)
    rgb = to_numpy_image(torch.zeros(3, 4, 5), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert rgb.shape == (4, 5, 3) and np.allclose(rgb, 0.5)


@pytest.mark.parametrize("bad, shown", [
    (torch.zeros(4, 1, 32, 32), r"\(4, 1, 32, 32\)"),
    (torch.zeros(2, 32, 32), r"\(2, 32, 32\)"),
    (np.zeros((1, 32, 32)), "ndarray"),
])
def test_to_numpy_image_rejects_wrong_shapes(bad, shown):
    with pytest.raises(ValueError, match=f"expects one \\(C, H, W\\) image with 1 or 3 channels, got {shown}; "
                                         "take one image of a batch"):
        to_numpy_image(bad)


def test_imshow_clips_a_normalised_colour_image(caplog):
    normalised = v2.Normalize((0.5,) * 3, (0.5,) * 3)(torch.linspace(0, 1, 48).reshape(3, 4, 4))
    fig, ax = plt.subplots()
    with caplog.at_level(logging.WARNING, logger="matplotlib.image"):
        ax.imshow(normalised.permute(1, 2, 0).numpy())
    assert "Clipping input data to the valid range" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="matplotlib.image"):
        ax.imshow(to_numpy_image(normalised, (0.5,) * 3, (0.5,) * 3))
    assert "Clipping" not in caplog.text
    plt.close(fig)


def test_save_batch_grid_draws_the_digits(train_data, tmp_path):
    images, labels = next(iter(DataLoader(train_data, batch_size=10)))
    path = save_batch_grid(images, labels, tmp_path / "grid.png", columns=5)
    with Image.open(path) as png:
        assert png.size == (5 * 1.1 * 80, 2 * 1.25 * 80)
        gray = np.asarray(png.convert("L"), dtype=np.float32)
    assert gray.std() > 20                           # not blank: white ink on black tiles on white paper
    assert plt.get_fignums() == []                   # the figure was closed


def test_save_figures_writes_the_page_picture(tmp_path):
    paths = save_figures(tmp_path)
    assert [p.name for p in paths] == ["data-batch.png"]
    with Image.open(paths[0]) as png:
        assert png.size == (8 * 1.1 * 80, 4 * 1.25 * 80)


def test_each_page_shows_its_own_languages_batch_picture():
    """`make figures` draws data-batch.<lang>.png (digits only: the same in both); each page links its own."""
    root = Path(__file__).resolve().parents[1]
    for lang in LANGS:
        assert (root / "docs" / "assets" / "img" / f"data-batch.{lang}.png").exists(), "run `make figures`"
        page = (root / "docs" / lang / "data.md").read_text("utf-8")
        assert f"](../assets/img/data-batch.{lang}.png)" in page and "data-batch.png" not in page


def test_the_tree_is_under_one_megabyte(tree):
    assert sum(p.stat().st_size for p in tree[0].parent.rglob("*.png")) < 1_000_000


def cpus(monkeypatch, n: int):
    """Make DataLoader see an n-core machine, whatever this one has."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: n)


@pytest.mark.parametrize("n", [4, 8])
def test_notes_E4_four_workers_are_fine_on_four_or_more_cores(monkeypatch, val_data, n):
    cpus(monkeypatch, n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DataLoader(val_data, batch_size=64, num_workers=4)


def test_notes_E4_four_workers_warn_on_three_cores(monkeypatch, val_data):
    cpus(monkeypatch, 3)
    with pytest.warns(UserWarning, match="Our suggested max number of worker in current system is 3"):
        DataLoader(val_data, batch_size=64, num_workers=4)


# --- why this chapter's split is 1438/359 and the training chapter's 1437/360 ---------------------

def test_per_digit_rounding_gives_359_and_train_test_split_360():
    from sklearn.model_selection import train_test_split
    target = load_digits().target
    assert sum(round(int((target == d).sum()) * 0.2) for d in range(10)) == 359
    from snippets.data import stratified_split
    splits = stratified_split(target, 0.2, seed=0)
    assert sum(len(val) for _, val, _ in splits) == 359
    _, val = train_test_split(np.arange(len(target)), test_size=0.2, stratify=target, random_state=0)
    assert len(val) == 360 == -(-len(target) * 2 // 10)  # 20 % of 1797 = 359.4, rounded up


# --- the first Dataset a reader sees is a plain one; one bad-input demo per lesson ---------------

_REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_first_dataset_on_the_page_is_the_plain_one(lang):
    import inspect

    from snippets import data as D
    text = (_REPO / "docs" / lang / "data.md").read_text(encoding="utf-8")
    first = text.index('--8<-- "snippets/data.py:plain_dataset"')
    assert first < text.index('--8<-- "snippets/data.py:digits_dataset"') < text.index(
        '--8<-- "snippets/data.py:check_digits"')
    own = {name for name in vars(D.SimpleDigits) if not name.startswith("__") or name in
           ("__init__", "__len__", "__getitem__")}
    assert own == {"__init__", "__len__", "__getitem__"}
    assert "check" not in inspect.getsource(D.SimpleDigits)


def test_simple_digits_gives_the_samples_digits_dataset_gives():
    from sklearn.datasets import load_digits

    from snippets import data as D
    digits = load_digits()
    simple, checked = D.SimpleDigits(digits.images, digits.target), D.DigitsDataset(digits.images, digits.target)
    assert len(simple) == len(checked) == 1797
    for i in (0, 5, 1796):
        (a, la), (b, lb) = simple[i], checked[i]
        assert torch.equal(a, b) and la == lb and isinstance(la, int)
    assert sum(1 for _ in simple) == 1797            # torch's IndexError past the end ends the loop


@pytest.mark.parametrize("page, section", [("data.md", "snippets/data.py:demo_dataset_errors"),
                                           ("multi-gpu.md", "snippets/multi_gpu.py:demo_helper_errors")])
def test_a_helpers_bad_input_demo_that_repeats_a_lesson_is_not_on_the_page(page, section):
    """Their messages stay tested (test_dataset_rejects_bad_input above, and
    tests/test_multi_gpu.py for load_state_dict_flexible); the page keeps one such demo per lesson."""
    for lang in ("en", "zh"):
        assert section not in (_REPO / "docs" / lang / page).read_text(encoding="utf-8")


# --- exercises -------------------------------------------------------------------------------------
def test_exercise_class_counts_equals_the_files_in_each_class_folder(tree, train_data, val_data):
    from snippets.data import class_counts

    for split, data in zip(tree, (train_data, val_data)):
        files = [len(list((split / name).glob("*.png"))) for name in data.classes]
        assert class_counts(data) == files
    assert class_counts(train_data) == [142, 146, 142, 146, 145, 146, 145, 143, 139, 144]  # as the page shows
    assert sum(class_counts(val_data)) == 359


def test_exercise_random_split_is_repeatable_disjoint_complete_and_not_stratified(digits):
    from snippets.data import SimpleDigits, split_80_20

    simple = SimpleDigits(digits.images, digits.target)
    train_part, val_part = split_80_20(simple, seed=0)
    again, _ = split_80_20(simple, seed=0)
    other, _ = split_80_20(simple, seed=1)
    assert (len(train_part), len(val_part)) == (1438, 359)
    assert train_part.indices == again.indices and train_part.indices != other.indices
    assert sorted(train_part.indices + val_part.indices) == list(range(len(simple)))
    counts = torch.bincount(simple.labels[val_part.indices], minlength=10)
    assert (counts.min().item(), counts.max().item()) == (28, 42)  # stratified: 35 to 37 per digit


# --- Samples of different lengths: collate_fn ------------------------------------------------------

@pytest.fixture(scope="module")
def ink():
    return demo_ink_sequences()


def test_ink_sequences_are_the_inked_pixels_and_vary_in_length(ink, digits):
    lengths = [len(ink[i][0]) for i in range(6)]
    assert (min(lengths), max(lengths)) == (30, 35) and lengths[:2] == [35, 30]  # 30 to 35 values
    image = torch.as_tensor(digits.images[0], dtype=torch.float32).flatten() / 16
    assert torch.equal(ink[0][0], image[image > 0]) and (ink[0][0] > 0).all()
    assert ink[0][1] == 0 and len(ink) == 1797


def test_default_collate_refuses_sequences_of_different_lengths(ink):
    with pytest.raises(RuntimeError, match=r"stack expects each tensor to be equal size, "
                                           r"but got \[35\] at entry 0 and \[30\] at entry 1"):
        demo_default_collate_fails(ink)


def test_pad_collate_pads_to_the_longest_and_returns_lengths(ink):
    padded, lengths, labels = next(iter(DataLoader(ink, batch_size=4, collate_fn=pad_collate)))
    assert padded.shape == (4, 35) and lengths.tolist() == [35, 30, 34, 33]
    assert labels.tolist() == [0, 1, 2, 3]
    for i in range(4):
        seq = ink[i][0]
        assert torch.equal(padded[i, :len(seq)], seq)
        assert (padded[i, len(seq):] == 0).all()
    assert padded[1, 30:].tolist() == [0.0] * 5


def test_masked_mean_leaves_the_padding_out_and_a_plain_mean_does_not(ink, capsys):
    padded, lengths, _ = pad_collate([ink[i] for i in range(4)])
    mask = torch.arange(padded.shape[1]) < lengths[:, None]
    assert mask.sum(dim=1).tolist() == lengths.tolist()
    true_means = torch.stack([ink[i][0].mean() for i in range(4)])
    assert torch.allclose((padded * mask).sum(dim=1) / lengths, true_means)
    assert not torch.allclose(padded.mean(dim=1), true_means)              # the zeros count there
    demo_pad_collate(ink)
    assert capsys.readouterr().out.splitlines()[-1] == "True"


def test_each_batch_is_padded_to_its_own_longest_sample(ink):
    loader = DataLoader(ink, batch_size=64, collate_fn=pad_collate)
    widths = [padded.shape[1] for padded, lengths, _ in loader if padded.shape[1] == lengths.max()]
    assert len(widths) == len(loader) and len(set(widths)) > 1            # batch by batch
    longest = max(len(ink[i][0]) for i in range(len(ink)))
    assert sum(p.numel() for p, _, _ in loader) < len(ink) * longest      # less than padding all


def test_pad_collate_keeps_trailing_dimensions():
    padded, lengths, _ = pad_collate([(torch.ones(3, 2), 0), (torch.ones(1, 2), 1)])
    assert padded.shape == (2, 3, 2) and lengths.tolist() == [3, 1]


@pytest.mark.parametrize("batch, message", [
    ([], "pad_collate got an empty batch"),
    ([(torch.tensor(1.0), 0)], r"sample 0 of the batch is not a sequence: got \(\)"),
    ([(torch.ones(2), 0), ([1, 2], 1)], r"sample 1 of the batch is not a sequence: got \[1, 2\]"),
])
def test_pad_collate_rejects_what_is_not_a_batch_of_sequences(batch, message):
    with pytest.raises(ValueError, match=message):
        pad_collate(batch)


def test_key_padding_mask_marks_the_padding_with_true():
    """The page: attention's key_padding_mask is the opposite of the data mask (True = padding)."""
    torch.manual_seed(0)
    attention = torch.nn.MultiheadAttention(4, 1, batch_first=True)
    x = torch.randn(1, 3, 4)
    short = attention(x[:, :2], x[:, :2], x[:, :2])[0]
    masked = attention(x, x, x, key_padding_mask=torch.tensor([[False, False, True]]))[0]
    assert torch.allclose(masked[:, :2], short, atol=1e-6)


# --- Imbalanced classes: WeightedRandomSampler ---------------------------------------------------

@pytest.fixture(scope="module")
def rare(digits):
    labels = torch.as_tensor(digits.target)
    zeros, ones = (labels == 0).nonzero().flatten(), (labels == 1).nonzero().flatten()[::10]
    indices = torch.cat([zeros, ones])
    return indices, labels[indices], zeros, ones


def test_the_rare_set_holds_every_zero_and_one_one_in_ten(rare, capsys, digits):
    _, labels, zeros, ones = rare
    assert torch.bincount(labels).tolist() == [178, 19] and len(zeros) == 178 and len(ones) == 19
    demo_sampler(SimpleDigits(digits.images, digits.target))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[178, 19]" and len(out) == 4


def test_shuffled_batches_keep_the_imbalance_and_sampled_batches_are_about_even(rare, digits, capsys):
    demo_sampler(SimpleDigits(digits.images, digits.target))
    out = capsys.readouterr().out.splitlines()
    shuffled = json.loads(out[1].removeprefix("shuffle: "))
    balanced = json.loads(out[2].removeprefix("sampler: "))
    assert [sum(c) for c in zip(*shuffled)] == [178, 19]                   # every sample once
    full = shuffled[:-1]
    assert 8 <= sum(z for z, _ in full) / sum(o for _, o in full) <= 11     # about nine 0s per 1
    assert all(zero > 5 * one for zero, one in full)
    assert sum(map(sum, balanced)) == 197                                  # num_samples = len
    assert all(abs(zero - one) <= 0.25 * (zero + one) for zero, one in balanced)


@pytest.mark.parametrize("seed", range(5))
def test_the_sampler_repeats_the_ones_and_skips_most_zeros(rare, seed):
    indices, labels, zeros, ones = rare
    drawn = [indices[i].item() for i in balanced_sampler(labels, torch.Generator().manual_seed(seed))]
    ones_drawn = sum(i in set(ones.tolist()) for i in drawn)
    assert 0.4 < ones_drawn / len(drawn) < 0.6
    assert 4 <= ones_drawn / len(ones) <= 6.5                              # each 1 about five times
    assert len(set(drawn) & set(zeros.tolist())) < len(zeros) / 2         # most 0s not seen


def test_the_sampler_is_repeatable_with_its_generator(rare):
    _, labels, _, _ = rare
    draw = [list(balanced_sampler(labels, torch.Generator().manual_seed(s))) for s in (0, 0, 1)]
    assert draw[0] == draw[1] != draw[2]


def test_weights_are_one_over_the_class_count(rare):
    _, labels, _, _ = rare
    sampler = balanced_sampler(labels)
    assert sampler.replacement and sampler.num_samples == 197
    assert torch.allclose(sampler.weights[labels == 0], torch.tensor(1 / 178, dtype=torch.double))
    assert torch.allclose(sampler.weights[labels == 1], torch.tensor(1 / 19, dtype=torch.double))
    assert sampler.weights[labels == 0].sum() == pytest.approx(sampler.weights[labels == 1].sum())


def test_sampler_and_shuffle_exclude_each_other(rare):
    _, labels, _, _ = rare
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        DataLoader(TensorDataset(labels), sampler=balanced_sampler(labels), shuffle=True)


@pytest.mark.parametrize("labels, error, message", [
    ([], ValueError, r"non-empty 1-D sequence of class indices, got shape \(0,\)"),
    ([[0, 1]], ValueError, r"got shape \(1, 2\)"),
    ([0.0, 1.0], ValueError, "torch.float32"),
    ([0, -1], ValueError, "class indices must be >= 0, got -1"),
])
def test_balanced_sampler_rejects_bad_labels(labels, error, message):
    with pytest.raises(error, match=message):
        balanced_sampler(torch.tensor(labels))


# --- A stream of samples: IterableDataset --------------------------------------------------------

def _seen(dataset, num_workers, epochs=1, batch_size=2, **kwargs):
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                        persistent_workers=num_workers > 0 and epochs > 1, **kwargs)
    return [[int(i) for batch in loader for i in batch] for _ in range(epochs)]


def test_get_worker_info_is_none_in_the_main_process():
    assert get_worker_info() is None
    assert _seen(ShardedStream(5), 0) == [[0, 1, 2, 3, 4]]


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")  # 2-core machines
@pytest.mark.multiprocess
def test_an_unsharded_stream_gives_each_sample_once_per_worker():
    assert sorted(_seen(NumberStream(6), 2)[0]) == sorted(list(range(6)) * 2)
    assert sorted(_seen(NumberStream(6), 3)[0]) == sorted(list(range(6)) * 3)


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")  # 2-core machines
@pytest.mark.multiprocess
@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("num_workers", [0, 1, 2, 3])
def test_sharded_stream_gives_each_sample_once_per_epoch_over_ranks_and_workers(world_size, num_workers):
    n = 10
    per_rank = [_seen(ShardedStream(n, rank, world_size), num_workers, epochs=2)
                for rank in range(world_size)]
    for epoch in range(2):
        seen = [i for rank in per_rank for i in rank[epoch]]
        assert sorted(seen) == list(range(n)), (world_size, num_workers, epoch)


@pytest.mark.multiprocess
def test_the_page_split_rank_0_six_rank_1_four_and_in_worker_turns(capsys):
    demo_sharded_stream()
    assert capsys.readouterr().out.splitlines() == [
        "rank 0: [0, 4, 1, 5, 8, 9] rank 1: [2, 6, 3, 7]", "True"]


@pytest.mark.multiprocess
def test_a_length_that_is_a_multiple_gives_every_rank_the_same_batches():
    world_size, num_workers, batch_size = 2, 2, 2
    n = world_size * num_workers * batch_size * 3
    counts = [len(_seen(ShardedStream(n, rank, world_size), num_workers)[0]) for rank in range(world_size)]
    assert counts == [n // world_size] * world_size
    uneven = [len(_seen(ShardedStream(10, rank, 2), 2)[0]) for rank in range(2)]
    assert uneven == [6, 4]


def test_an_iterable_dataset_takes_no_shuffle_and_no_sampler():
    with pytest.raises(ValueError, match="DataLoader with IterableDataset: expected unspecified shuffle"):
        DataLoader(NumberStream(4), shuffle=True)
    with pytest.raises(ValueError, match="DataLoader with IterableDataset: expected unspecified sampler"):
        DataLoader(NumberStream(4), sampler=range(4))


@pytest.mark.parametrize("kwargs, message", [
    ({"n": -1}, "n must be an int >= 0, got -1"),
    ({"n": 2.0}, "n must be an int >= 0, got 2.0"),
    ({"n": 4, "world_size": 0}, "world_size must be an int >= 1, got 0"),
    ({"n": 4, "rank": 2, "world_size": 2}, r"rank must be an int in 0..1 for world_size=2, got 2"),
    ({"n": 4, "rank": True, "world_size": 2}, "rank must be an int in 0..1"),
])
def test_sharded_stream_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ShardedStream(**kwargs)


@pytest.mark.multiprocess
def test_the_page_shows_an_unsharded_stream_twice_with_two_workers(capsys):
    demo_stream_copies()
    assert capsys.readouterr().out.splitlines() == [
        "None", "[0, 1, 2, 3, 4, 5]", "[0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]"]


# --- persistent_workers: what it changes, measured ------------------------------------------------

@pytest.mark.multiprocess
def test_persistent_workers_start_once_and_later_epochs_get_their_first_batch_sooner():
    starts = demo_persistent()
    assert all(len(t) == 3 for t in starts.values())
    # every epoch without persistent workers starts two processes; with them only the first. Idle, a later
    # epoch's first batch comes ~40x sooner; with the other test worker busy (make test: -n 2), ~4x was seen
    assert min(starts[False]) > 2 * max(starts[True][1:]), starts
    assert starts[True][0] > 2 * max(starts[True][1:]), starts


@pytest.mark.multiprocess
def test_epoch_starts_counts_the_processes_that_served_the_epochs():
    times, pids = epoch_starts(DataLoader(WhichProcess(), batch_size=2, num_workers=2), epochs=2)
    assert len(times) == 2 and len(pids) == 4 and os.getpid() not in pids
    times, pids = epoch_starts(DataLoader(WhichProcess(), batch_size=2), epochs=2)
    assert pids == {os.getpid()}


# --- Workers on Windows and macOS: a notebook's classes, spawn forced on Linux ---------------------

SQUARES_MODULE = """\
from torch.utils.data import Dataset


class Squares(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return i * i
"""
NOTEBOOK_IMPORTS_ITS_CLASS = """\
import multiprocessing
from torch.utils.data import DataLoader
from my_data import Squares
multiprocessing.set_start_method("spawn", force=True)
print(next(iter(DataLoader(Squares(), batch_size=4, num_workers=1))).tolist())
"""
NOTEBOOK_DEFINES_ITS_CLASS = NOTEBOOK_IMPORTS_ITS_CLASS.replace(
    "from my_data import Squares\n", "").replace("import DataLoader\n", "import DataLoader\n" + SQUARES_MODULE)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_notes_E4_a_notebooks_workers_under_spawn_load_classes_from_a_py_file_not_a_cell(tmp_path):
    """The page's notebook advice on Windows and macOS, with spawn forced on Linux: a notebook's
    __main__ has no file (here `python -c`), so a class defined there fails in the worker and the
    loader reports the dead worker; imported from a .py file beside it, the same class works."""
    from concurrent.futures import ThreadPoolExecutor

    (tmp_path / "my_data.py").write_text(SQUARES_MODULE)
    codes = {"imported": NOTEBOOK_IMPORTS_ITS_CLASS, "in a cell": NOTEBOOK_DEFINES_ITS_CLASS}
    with ThreadPoolExecutor() as pool:  # both at once; remembered, as what it may fail with is known
        done = dict(zip(codes, pool.map(lambda code: remembered(
            [sys.executable, "-c", code], cwd=tmp_path, depends=[tmp_path / "my_data.py"], timeout=240,
            keep=lambda done: done.returncode == 0 or "Can't get attribute" in done.stderr), codes.values())))
    assert done["imported"].returncode == 0 and done["imported"].stdout == "[0, 1, 4, 9]\n", done["imported"].stderr
    err = done["in a cell"].stderr
    assert done["in a cell"].returncode != 0
    assert "AttributeError: Can't get attribute 'Squares' on <module '__main__'" in err
    assert re.search(r"RuntimeError: DataLoader worker \(pid\(s\) [\d, ]+\) exited unexpectedly", err)


@pytest.mark.multiprocess
@pytest.mark.slow
def test_a_spawned_worker_starts_much_slower_than_a_forked_one():
    """The page: under spawn each worker imports torch and the script again, much slower than fork."""
    def first(context):
        loader = DataLoader(WhichProcess(), batch_size=2, num_workers=1, multiprocessing_context=context)
        return epoch_starts(loader, epochs=1)[0][0]
    assert first("spawn") > 3 * first("fork")


def test_pack_padded_sequence_takes_pad_collates_lengths(ink):
    """The page: recurrent layers take the lengths through pack_padded_sequence."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    padded, lengths, _ = pad_collate([ink[i] for i in range(4)])
    packed = pack_padded_sequence(padded.unsqueeze(-1), lengths, batch_first=True, enforce_sorted=False)
    assert packed.data.shape[0] == lengths.sum()                          # the padding is left out
    unpacked, back = pad_packed_sequence(packed, batch_first=True)
    assert torch.equal(back, lengths) and torch.equal(unpacked.squeeze(-1), padded)
