"""Datasets read from a local path (`--data PATH`), never downloaded: ImageFolder, CIFAR-10, CIFAR-100.

`open_dataset` recognises the layout and counts the images without decoding any (it does
read the CIFAR pickles, ~180 MB, to check and count them); bad input gives one line,
`<label>: <problem>; <fix>` (benchmarks/options.py). `load_split` gives a torch Dataset of
`(image, label)` items, images as RGB PIL images. The module imports neither torch nor
torchvision until a function needs them, so option checking stays cheap.

Accepted layouts:
- ImageFolder: `root/<class>/<image>` (torchvision's IMG_EXTENSIONS, nested folders walked),
  or `root/train/<class>/<image>` beside `root/val/...` (or `root/test/...`), ImageNet-100
  style. A class folder with no images is not a class; both splits must have the same classes.
  A plain `root/<class>/<image>` has one set of images: its "train" and "val" splits are the
  same images (`DatasetInfo.shared_splits`; records say so).
- CIFAR-10 / CIFAR-100, python version, as distributed: `cifar-10-batches-py` (data_batch_*,
  test_batch, batches.meta) or `cifar-100-python` (train, test, meta); the folder itself or
  the folder the tarball was extracted into. Their "val" split is the test set.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pickle
import re
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

from benchmarks.options import OptionError

if TYPE_CHECKING:
    import numpy as np
    import torch.utils.data

SPLITS = ("train", "val")
# Evaluation split folder names of an ImageFolder root, in order of preference.
EVAL_FOLDERS = ("val", "test")
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"
CIFAR_SIDE = 32
_ACCEPTED = (
    "an ImageFolder (<root>/<class>/<image>, or <root>/train/<class>/<image> beside val/ or test/), "
    f"CIFAR-10's {CIFAR10_FOLDER} or CIFAR-100's {CIFAR100_FOLDER} (python version; the folder or the one it was "
    "extracted into)"
)
_ARCHIVES = (".tar.gz", ".tgz", ".tar", ".zip")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """A dataset found on disk: its name, layout, classes and the image count of each split.

    `sources` maps each split to what it reads (an ImageFolder split's folder, a CIFAR
    split's pickle files).
    """

    name: str  # in benchmark ids: cifar10, cifar100, or the ImageFolder root's folder name in [A-Za-z0-9_.]
    kind: str  # "imagefolder" | "cifar10" | "cifar100"
    root: str  # absolute, symlinks resolved
    classes: tuple[str, ...]  # in label order
    splits: Mapping[str, int] = dataclasses.field(hash=False)  # split -> number of images
    sources: Mapping[str, tuple[str, ...]] = dataclasses.field(hash=False, default_factory=dict)

    @property
    def num_classes(self) -> int:
        """How many classes (labels are 0 .. num_classes - 1)."""
        return len(self.classes)

    @property
    def shared_splits(self) -> bool:
        """Whether "train" and "val" are the same images (an ImageFolder root without train/ and val/)."""
        return bool(self.sources) and self.sources.get("train") == self.sources.get("val")

    def size(self, split: str) -> int:
        """The number of images in `split`."""
        return self.splits[_check_split(self, split)]


@dataclasses.dataclass(frozen=True)
class CorruptImage:
    """An image file that could not be decoded, in place of the image: the pipeline counts and skips it."""

    path: str
    reason: str


def open_dataset(source: str, label: str = "--data") -> DatasetInfo:
    """The dataset at `source` (a folder), its layout checked and its images counted; OptionError if unusable."""
    if not isinstance(source, (str, os.PathLike)) or not str(source):
        raise OptionError(f"{label}: expected a folder path, got {source!r}; give the folder that holds the dataset")
    given = os.path.abspath(os.path.expanduser(os.fspath(source)))
    if not os.path.exists(given):
        raise OptionError(f"{label}: no such folder {given!r}; give the folder that holds the dataset: {_ACCEPTED}")
    if not os.path.isdir(given):
        if given.lower().endswith(_ARCHIVES):
            raise OptionError(f"{label}: {given!r} is an archive, not a folder; extract it and give the folder it makes")
        raise OptionError(f"{label}: {given!r} is a file, not a folder; give the folder that holds the dataset: {_ACCEPTED}")
    return _detect(given, os.path.basename(given.rstrip(os.sep)), label)


def load_split(info: DatasetInfo, split: str) -> "torch.utils.data.Dataset":
    """`split` of `info` as a torch Dataset of `(RGB PIL image or CorruptImage, label)` items."""
    return _load_split(info, _check_split(info, split))


@functools.lru_cache(maxsize=4)  # a loader per epoch need not list the folders or read the pickles again
def _load_split(info: DatasetInfo, split: str) -> "torch.utils.data.Dataset":
    if info.kind == "imagefolder":
        return _image_folder(info, split)
    data, labels = _read_cifar_split(info.kind, info.sources[split], "--data")
    return CifarSplit(data, labels)


def load_rgb(path: str) -> Any:
    """The image at `path` as an RGB PIL image, or a CorruptImage saying why it could not be decoded."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            return image.convert("RGB")  # decodes here: a truncated file raises now, not later
    except Exception as exc:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, struct.error... on bad files
        return CorruptImage(str(path), f"{type(exc).__name__}: {exc}".replace("\n", " "))


def dataset_name(folder: str) -> str:
    """`folder`'s base name as a benchmark id accepts it: runs of other characters than [A-Za-z0-9_.] become '_'."""
    return re.sub(r"[^A-Za-z0-9_.]+", "_", os.path.basename(folder.rstrip(os.sep))).strip("_") or "data"


# --- layout detection --------------------------------------------------------------------------------------------


def _detect(folder: str, name: str, label: str) -> DatasetInfo:
    entries = _list(folder, label)
    if not entries:
        raise OptionError(f"{label}: folder {folder!r} is empty; put the dataset there or give the folder that holds it")
    files = {n for n, is_dir in entries.items() if not is_dir}
    dirs = {n for n, is_dir in entries.items() if is_dir}
    base = os.path.basename(folder)
    if base == CIFAR10_FOLDER or "batches.meta" in files or any(_DATA_BATCH.match(f) for f in files):
        return _open_cifar("cifar10", folder, files, label)
    if base == CIFAR100_FOLDER or {"meta", "train", "test"} <= files:
        return _open_cifar("cifar100", folder, files, label)
    cifars = sorted(dirs & {CIFAR10_FOLDER, CIFAR100_FOLDER})
    if len(cifars) == 2:
        raise OptionError(f"{label}: {folder!r} holds both {CIFAR10_FOLDER} and {CIFAR100_FOLDER}; give one of them")
    if cifars:
        return _detect(os.path.join(folder, cifars[0]), cifars[0], label)
    split_dirs = dirs & {"train", *EVAL_FOLDERS}
    if "train" in split_dirs and split_dirs - {"train"}:
        return _open_split_folders(folder, name, label)
    if split_dirs and split_dirs == dirs:
        have = ", ".join(f"{d}/" for d in sorted(split_dirs))
        raise OptionError(f"{label}: {folder!r} has {have} but needs train/ and val/ (or test/); add the missing split, "
                          f"or give {os.path.join(folder, sorted(split_dirs)[0])!r} to use one set of images for both")
    classes, count = _scan_classes(folder, label)
    if not classes:
        if dirs:
            raise OptionError(f"{label}: {folder!r} has folders but no images ({', '.join(_image_extensions())}) in "
                              "them; an ImageFolder is <root>/<class>/<image>")
        if any(f.lower().endswith(_image_extensions()) for f in files):
            raise OptionError(f"{label}: {folder!r} holds images but no class folders; an ImageFolder keeps each "
                              "class's images in its own folder, <root>/<class>/<image>")
        raise OptionError(f"{label}: {folder!r} is not a dataset layout this suite reads; expected {_ACCEPTED}")
    real = os.path.realpath(folder)
    return DatasetInfo(name=dataset_name(name), kind="imagefolder", root=real, classes=classes,
                       splits=MappingProxyType({"train": count, "val": count}),
                       sources=MappingProxyType({"train": (real,), "val": (real,)}))


def _open_split_folders(folder: str, name: str, label: str) -> DatasetInfo:
    eval_name = next(d for d in EVAL_FOLDERS if os.path.isdir(os.path.join(folder, d)))
    found = {}
    for split, sub in (("train", "train"), ("val", eval_name)):
        path = os.path.join(folder, sub)
        classes, count = _scan_classes(path, label)
        if not classes:
            raise OptionError(f"{label}: {path!r} has no class folders with images ({', '.join(_image_extensions())}); "
                              f"each split is an ImageFolder, {sub}/<class>/<image>")
        found[split] = (classes, count, os.path.realpath(path))
    train_classes, eval_classes = found["train"][0], found["val"][0]
    if train_classes != eval_classes:
        only_train = _some(sorted(set(train_classes) - set(eval_classes)))
        only_eval = _some(sorted(set(eval_classes) - set(train_classes)))
        raise OptionError(f"{label}: the splits of {folder!r} disagree on classes (train/ {len(train_classes)}, "
                          f"{eval_name}/ {len(eval_classes)}; only in train/: {only_train}; only in {eval_name}/: "
                          f"{only_eval}); give both the same class folders (a folder with no images is no class)")
    return DatasetInfo(name=dataset_name(name), kind="imagefolder", root=os.path.realpath(folder),
                       classes=train_classes, splits=MappingProxyType({s: found[s][1] for s in SPLITS}),
                       sources=MappingProxyType({s: (found[s][2],) for s in SPLITS}))


def _scan_classes(folder: str, label: str) -> tuple[tuple[str, ...], int]:
    """The class folders of an ImageFolder that hold images (sorted, as torchvision) and their image count."""
    extensions = _image_extensions()
    classes, total = [], 0
    for name, is_dir in sorted(_list(folder, label).items()):
        if not is_dir:
            continue
        count = 0
        # As torchvision's make_dataset: nested folders walked, symlinks followed; an unreadable one is an error here.
        for _, _, names in os.walk(os.path.join(folder, name), followlinks=True, onerror=_raise(label)):
            count += sum(1 for n in names if n.lower().endswith(extensions))
        if count:
            classes.append(name)
            total += count
    return tuple(classes), total


def _list(folder: str, label: str) -> dict[str, bool]:
    """`folder`'s entries: name -> is a folder (symlinks followed)."""
    try:
        with os.scandir(folder) as entries:
            return {entry.name: entry.is_dir() for entry in entries}
    except PermissionError:
        raise OptionError(f"{label}: cannot read folder {folder!r} (permission denied); make it readable "
                          f"(chmod -R a+rX) or give another path") from None
    except OSError as exc:
        raise OptionError(f"{label}: cannot read folder {folder!r} ({exc.strerror or exc}); give another path") from None


def _raise(label: str):
    def onerror(exc: OSError) -> None:
        if isinstance(exc, PermissionError):
            raise OptionError(f"{label}: cannot read folder {exc.filename!r} (permission denied); make it readable "
                              f"(chmod -R a+rX) or give another path") from None
        raise OptionError(f"{label}: cannot read folder {exc.filename!r} ({exc.strerror or exc}); give another path")

    return onerror


def _some(names: list[str], limit: int = 5) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _image_extensions() -> tuple[str, ...]:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return tuple(IMG_EXTENSIONS)


def _check_split(info: DatasetInfo, split: str) -> str:
    if split not in info.splits:
        raise OptionError(f"split: unknown split {split!r} of {info.name}; choose from {', '.join(info.splits)}")
    return split


# --- ImageFolder ---------------------------------------------------------------------------------------------------


def _image_folder(info: DatasetInfo, split: str) -> "torch.utils.data.Dataset":
    # torchvision's ImageFolder: well kept, the layout everyone has, and the sample order its
    # users expect (classes sorted, files sorted, nested folders walked, symlinks followed).
    from torchvision.datasets import ImageFolder

    folder = info.sources[split][0]
    dataset = ImageFolder(folder, loader=load_rgb, allow_empty=True)
    if dataset.classes != list(info.classes):
        # torchvision makes every folder a class; here a folder without images is none, so labels are renumbered.
        index = {name: i for i, name in enumerate(info.classes)}
        dataset.samples = [(path, index[dataset.classes[target]]) for path, target in dataset.samples]
        dataset.imgs, dataset.targets = dataset.samples, [target for _, target in dataset.samples]
        dataset.classes, dataset.class_to_idx = list(info.classes), index
    if len(dataset) != info.splits[split]:
        raise OptionError(f"--data: {folder!r} held {info.splits[split]} images when opened and {len(dataset)} now; "
                          "leave the dataset unchanged during a run")
    return dataset


# --- CIFAR ---------------------------------------------------------------------------------------------------------

_DATA_BATCH = re.compile(r"^data_batch_(\d+)$")
# What each variant's pickles hold: files per split, the label key, the names file and key.
_CIFAR = {
    "cifar10": {"folder": CIFAR10_FOLDER, "eval": "test_batch", "labels": b"labels", "meta": "batches.meta",
                "names": b"label_names", "tarball": "cifar-10-python.tar.gz"},
    "cifar100": {"folder": CIFAR100_FOLDER, "eval": "test", "labels": b"fine_labels", "meta": "meta",
                 "names": b"fine_label_names", "tarball": "cifar-100-python.tar.gz"},
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and numpy arrays only: the file comes from a path, and pickle can run code."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are expected)")
        return super().find_class(module, name)


def _expected_files(kind: str) -> str:
    if kind == "cifar10":
        return "data_batch_1 .. data_batch_5, test_batch and batches.meta"
    return "train, test and meta"


def _open_cifar(kind: str, folder: str, files: set[str], label: str) -> DatasetInfo:
    spec = _CIFAR[kind]
    if kind == "cifar10":
        train = sorted((f for f in files if _DATA_BATCH.match(f)), key=lambda f: int(_DATA_BATCH.match(f).group(1)))
    else:
        train = ["train"] if "train" in files else []
    missing = ([] if train else ["data_batch_*" if kind == "cifar10" else "train"])
    missing += [f for f in (spec["eval"], spec["meta"]) if f not in files]
    if missing:
        raise OptionError(f"{label}: {folder!r} looks like {_pretty(kind)} but lacks {', '.join(missing)}; expected "
                          f"{_expected_files(kind)}, as extracted from {spec['tarball']}")
    sources = {"train": tuple(os.path.join(os.path.realpath(folder), f) for f in train),
               "val": (os.path.join(os.path.realpath(folder), spec["eval"]),)}
    names = _cifar_names(kind, os.path.join(folder, spec["meta"]), label)
    counts = {split: len(_read_cifar_split(kind, paths, label, len(names))[1]) for split, paths in sources.items()}
    return DatasetInfo(name=kind, kind=kind, root=os.path.realpath(folder), classes=names,
                       splits=MappingProxyType(counts), sources=MappingProxyType(sources))


def _pretty(kind: str) -> str:
    return {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}[kind]


def _unpickle(path: str, label: str, kind: str) -> dict:
    try:
        with open(path, "rb") as f:
            content = _ArrayUnpickler(f, encoding="bytes").load()
    except PermissionError:
        raise OptionError(f"{label}: cannot read {path!r} (permission denied); make it readable (chmod a+r)") from None
    except Exception as exc:  # noqa: BLE001 - a damaged pickle raises anything from EOFError to UnicodeDecodeError
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        raise OptionError(f"{label}: cannot unpickle {_pretty(kind)} file {path!r} ({reason}); extract it again from "
                          f"{_CIFAR[kind]['tarball']}") from None
    if not isinstance(content, dict):
        raise OptionError(f"{label}: {_pretty(kind)} file {path!r} holds a {type(content).__name__}, not the "
                          f"expected dict; extract it again from {_CIFAR[kind]['tarball']}")
    return content


def _bad_file(label: str, kind: str, path: str, problem: str) -> OptionError:
    return OptionError(f"{label}: {_pretty(kind)} file {path!r} {problem}; extract it again from {_CIFAR[kind]['tarball']}")


def _cifar_names(kind: str, path: str, label: str) -> tuple[str, ...]:
    key = _CIFAR[kind]["names"]
    content = _unpickle(path, label, kind)
    names = content.get(key)
    if not isinstance(names, list) or not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise _bad_file(label, kind, path, f"lacks the class names (key {key!r})")
    return tuple(n.decode("utf-8") if isinstance(n, bytes) else n for n in names)


def _read_cifar_split(kind: str, paths: tuple[str, ...], label: str,
                      num_classes: int | None = None) -> tuple["np.ndarray", "np.ndarray"]:
    """The images (N, 32, 32, 3) uint8 and labels (N,) int64 of the pickle files `paths`, checked."""
    import numpy as np

    key = _CIFAR[kind]["labels"]
    images, labels = [], []
    for path in paths:
        content = _unpickle(path, label, kind)
        data, batch_labels = content.get(b"data"), content.get(key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise _bad_file(label, kind, path, "lacks b'data' as uint8 rows of 3072 values (N, 3072)")
        if batch_labels is None or len(batch_labels) != len(data):
            raise _bad_file(label, kind, path, f"lacks {key!r} with one label per row of b'data'")
        batch_labels = np.asarray(batch_labels, dtype=np.int64)
        if num_classes is not None and len(batch_labels) and not (0 <= batch_labels.min() and batch_labels.max() < num_classes):
            raise _bad_file(label, kind, path, f"has labels outside 0..{num_classes - 1}")
        # Each row is one image, channels first: 1024 red, 1024 green, 1024 blue values.
        images.append(data.reshape(-1, 3, CIFAR_SIDE, CIFAR_SIDE).transpose(0, 2, 3, 1))  # (N, C, H, W) -> (N, H, W, C)
        labels.append(batch_labels)
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


class CifarSplit:
    """One CIFAR split in memory, a map-style dataset: items `(RGB PIL image, label)`, like an ImageFolder's.

    Not a subclass of torch's Dataset so that this module imports without torch; DataLoader
    needs only `__len__` and `__getitem__`.
    """

    def __init__(self, images: "np.ndarray", labels: "np.ndarray"):
        self.images = images  # (N, 32, 32, 3) uint8
        self.labels = labels  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        from PIL import Image

        return Image.fromarray(self.images[index]), int(self.labels[index])
