"""Small generated datasets on disk, in the layouts benchmarks/datasets.py reads, with a learnable signal.

Class k's images are mostly one colour of `PALETTE` (noise on top) with a lighter square at
a random place, so a tiny CNN tells the classes apart within a few epochs while no two
images are alike.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

# Well-separated colours, one per class (classes past the palette's length get random ones).
PALETTE = np.array([
    (220, 40, 40), (40, 180, 60), (50, 80, 220), (230, 200, 40), (160, 60, 200), (40, 200, 210),
    (240, 130, 30), (120, 120, 120), (250, 250, 250), (20, 20, 20),
], dtype=np.float64)


def class_colours(classes: int, seed: int = 0) -> np.ndarray:
    """One RGB colour per class, (classes, 3) float64 in [0, 255]."""
    extra = np.random.default_rng(seed + 12345).uniform(0, 255, size=(max(0, classes - len(PALETTE)), 3))
    return np.concatenate([PALETTE, extra])[:classes]


def make_images(labels: np.ndarray, size: int, rng: np.random.Generator, classes: int) -> np.ndarray:
    """Images (N, size, size, 3) uint8 of classes `labels`: the class colour, noise, a lighter square."""
    colours = class_colours(classes)
    n = len(labels)
    images = colours[labels][:, None, None, :] + rng.normal(0, 25, size=(n, size, size, 3))
    side = max(2, size // 4)
    for image, (row, col) in zip(images, rng.integers(0, size - side + 1, size=(n, 2))):
        image[row:row + side, col:col + side] = 0.5 * image[row:row + side, col:col + side] + 0.5 * 255
    return np.clip(images, 0, 255).astype(np.uint8)


def make_image_folder(root: str | os.PathLike, classes: int = 4, per_class: tuple[int, int] = (6, 3), size: int = 40,
                      seed: int = 0, fmt: str = "png") -> Path:
    """`root/train/<class>/*.<fmt>` and `root/val/<class>/*.<fmt>`, `per_class` (train, val) images a class; returns root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "val"), per_class):
        labels = np.repeat(np.arange(classes), count)
        for index, (image, label) in enumerate(zip(make_images(labels, size, rng, classes), labels)):
            folder = root / split / class_name(int(label))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{split}_{index:05d}.{fmt}")
    return root


def class_name(label: int) -> str:
    """The folder name of class `label` in `make_image_folder`."""
    return f"class_{label:02d}"


def make_cifar(root: str | os.PathLike, variant: str = "cifar10", train: int = 40, test: int = 20, seed: int = 0,
               train_batches: int = 2) -> Path:
    """CIFAR-10/100's python version under `root` (file names and pickles as distributed); returns its folder.

    The train images are spread over `train_batches` data_batch files (CIFAR-10; CIFAR-100
    has one `train` file).
    """
    classes = {"cifar10": 10, "cifar100": 100}[variant]
    folder = Path(root) / {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[variant]
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def batch(count: int, label_key: bytes, name: str) -> dict:
        labels = rng.integers(0, classes, size=count)
        images = make_images(labels, 32, rng, classes)  # (N, H, W, C)
        rows = images.transpose(0, 3, 1, 2).reshape(count, 3 * 32 * 32)  # (N, H, W, C) -> (N, C*H*W), as CIFAR
        content = {b"batch_label": name.encode(), label_key: [int(v) for v in labels], b"data": rows,
                   b"filenames": [f"img_{i:05d}.png".encode() for i in range(count)]}
        if variant == "cifar100":
            content[b"coarse_labels"] = [int(v) // 5 for v in labels]
        return content

    if variant == "cifar10":
        for index, part in enumerate(np.array_split(np.arange(train), train_batches), start=1):
            _dump(folder / f"data_batch_{index}", batch(len(part), b"labels", f"training batch {index} of {train_batches}"))
        _dump(folder / "test_batch", batch(test, b"labels", "testing batch 1 of 1"))
        _dump(folder / "batches.meta", {b"num_cases_per_batch": train // train_batches, b"num_vis": 3072,
                                        b"label_names": [f"label{i}".encode() for i in range(classes)]})
    else:
        _dump(folder / "train", batch(train, b"fine_labels", "training batch 1 of 1"))
        _dump(folder / "test", batch(test, b"fine_labels", "testing batch 1 of 1"))
        _dump(folder / "meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(classes)],
                                b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    return folder


def _dump(path: Path, content: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(content, f, protocol=2)


def corrupt(path: str | os.PathLike, how: str = "truncate") -> Path:
    """Damage the image file at `path` so that it no longer decodes: "truncate" keeps its first third,
    "garbage" replaces it with random bytes; returns the path."""
    path = Path(path)
    if how == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[:max(1, len(data) // 3)])
    elif how == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, size=2048, dtype=np.uint8).tobytes())
    else:
        raise ValueError(f"unknown way to corrupt {how!r}; use truncate or garbage")
    return path


def write_garbage_image(folder: str | os.PathLike, name: str = "garbage.jpg") -> Path:
    """A file named like a JPEG in `folder` that holds random bytes; returns its path."""
    return corrupt(_touch(Path(folder) / name), "garbage")


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path
