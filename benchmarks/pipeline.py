"""One input pipeline for both frameworks: dataset images -> preprocessed numpy batches.

The same `Loader` feeds torch (`to_torch`) and JAX (`device_prefetch`): with the same
arguments two loaders yield identical batches, so both frameworks see the same images in
the same order with the same augmentation.

Why a torch DataLoader with torchvision transforms, rather than grain, tf.data or a
hand-written loader: both are well kept and already dependencies (no TensorFlow or grain
to install), the DataLoader decodes in several processes, the transforms are the ones the
torchvision weights were evaluated with (`preprocessing` reads their metadata), and
seeding it is simple and exact: the shuffle comes from a `torch.Generator` seeded by
(seed, epoch) and each image's augmentation from (seed, epoch, index), so a batch does not
depend on how many workers made it.

Batches are numpy, built in the worker processes by the collate function, already in the
layout the model step takes (NCHW for torch, NHWC for Flax); in a worker they are written
to shared memory, so handing them to the main process copies nothing.

Corrupt images (`datasets.CorruptImage`) are dropped by the collate function and listed in
`Batch.skipped`. An eval batch keeps its good images first and pads the rest (zeros, label
-1); `valid` says how many rows are real. A train batch always has `batch_size` rows, so
every step has the same shape: the places of corrupt images are filled with repeats of the
batch's own good images and labels (rows `valid:` repeat rows `:valid`), which weights
those images slightly more in that one step.
"""

from __future__ import annotations

import collections
import dataclasses
import inspect
import multiprocessing
import sys
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, get_worker_info
from torchvision.transforms import InterpolationMode, v2

from benchmarks.datasets import CorruptImage, DatasetInfo, load_split, open_dataset
from benchmarks.options import OptionError, one_of, whole_number
from models.registry import ModelSpec

LAYOUTS = ("NCHW", "NHWC")
# The usual ImageNet evaluation crop (resize to size / 0.875, centre crop), for models
# whose weights publish no transform of their own.
CROP_FRACTION = 0.875
DEFAULT_INTERPOLATION = "bilinear"
PAD_LABEL = -1  # the label of an eval batch's padding rows: no class, and loud if a loss meets it
PREFETCH_FACTOR = 2  # batches each worker prepares ahead


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How images become model inputs: resize the short side, centre crop (eval), normalise.

    `source` says where the numbers come from (a torchvision weights name, or the default crop).
    """

    size: int  # side of the square input
    resize_size: int  # short side before the eval centre crop
    interpolation: str  # an InterpolationMode value: "bilinear", "bicubic"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str = ""


@dataclasses.dataclass
class Batch:
    """One batch: `images` float32 in the loader's layout, `labels` int64, `valid` real rows, `skipped` images.

    `skipped` lists `(path, reason)` of the corrupt images left out of this batch.
    """

    images: np.ndarray
    labels: np.ndarray
    valid: int
    skipped: list[tuple[str, str]]

    def __reduce__(self):
        # Across processes the arrays travel as torch tensors: torch's multiprocessing pickler
        # passes their (shared) memory instead of copying the bytes through a pipe.
        return (_batch_from_tensors, (_as_tensor(self.images), _as_tensor(self.labels), self.valid, self.skipped))

    def pin_memory(self) -> "Batch":
        """This batch in page-locked memory (DataLoader's pin_memory thread calls it), for asynchronous copies to CUDA."""
        return Batch(torch.from_numpy(self.images).pin_memory().numpy(),
                     torch.from_numpy(self.labels).pin_memory().numpy(), self.valid, self.skipped)


def preprocessing(spec: ModelSpec, input_size: int | None = None) -> Preprocessing:
    """The evaluation preprocessing of `spec`'s torchvision weights, else the default crop, for `input_size`."""
    size = input_size or spec.input_size
    if spec.torchvision_weights:
        from torchvision.models import get_weight

        # `transforms` is functools.partial(ImageClassification, crop_size=..., ...): read its
        # arguments (the class's defaults for those left out); nothing is downloaded.
        partial = get_weight(spec.torchvision_weights).transforms
        defaults = {name: p.default for name, p in inspect.signature(partial.func).parameters.items()}
        arguments = {**defaults, **partial.keywords}
        crop, resize = arguments["crop_size"], arguments["resize_size"]
        if size != crop:  # another input size keeps the weights' resize-to-crop ratio
            resize = round(resize * size / crop)
        return Preprocessing(size=size, resize_size=resize, interpolation=InterpolationMode(arguments["interpolation"]).value,
                             mean=tuple(spec.mean), std=tuple(spec.std), source=spec.torchvision_weights)
    return Preprocessing(size=size, resize_size=round(size / CROP_FRACTION), interpolation=DEFAULT_INTERPOLATION,
                         mean=tuple(spec.mean), std=tuple(spec.std), source=f"crop {CROP_FRACTION}")


def eval_transform(prep: Preprocessing) -> v2.Compose:
    """PIL image -> (3, size, size) float32: resize the short side, centre crop, scale to [0, 1], normalise."""
    return v2.Compose([
        v2.Resize(prep.resize_size, interpolation=InterpolationMode(prep.interpolation), antialias=True),
        v2.CenterCrop(prep.size),
        *_to_normalised(prep),
    ])


def train_transform(prep: Preprocessing) -> v2.Compose:
    """PIL image -> (3, size, size) float32: random resized crop, random horizontal flip, then as eval."""
    return v2.Compose([
        v2.RandomResizedCrop(prep.size, interpolation=InterpolationMode(prep.interpolation), antialias=True),
        v2.RandomHorizontalFlip(),
        *_to_normalised(prep),
    ])


def _to_normalised(prep: Preprocessing) -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(prep.mean), list(prep.std))]


class Loader:
    """The batches of one epoch of one split; iterate it (again) for the same batches.

    `len(loader)` is the number of steps, `images_per_epoch` the real images they hold
    (train: steps x batch size), and `skipped` the `(path, reason)` of the corrupt images
    met so far in the current pass.
    """

    def __init__(self, dataloader: DataLoader, *, info: DatasetInfo, split: str, prep: Preprocessing, batch_size: int,
                 train: bool, layout: str, epoch: int, images_per_epoch: int):
        self.dataloader = dataloader
        self.info, self.split, self.prep = info, split, prep
        self.batch_size, self.train, self.layout, self.epoch = batch_size, train, layout, epoch
        self.images_per_epoch = images_per_epoch
        self.skipped: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.dataloader)

    def __iter__(self) -> Iterator[Batch]:
        self.skipped = []
        for batch in self.dataloader:
            self.skipped.extend(batch.skipped)
            yield batch


def make_loader(info: DatasetInfo, split: str, prep: Preprocessing, batch_size: int, *, train: bool, layout: str,
                workers: int, seed: int, epoch: int = 0, steps: int | None = None, pin_memory: bool = False,
                multiprocessing_context: str | None = None) -> Loader:
    """A `Loader` of `split`: train shuffled and augmented with whole batches, eval in order with the last one padded.

    Same arguments, same batches. `steps` caps the batches of the epoch. `pin_memory` pins
    batches for CUDA (ignored without CUDA). `multiprocessing_context` chooses how workers
    start; by default as `worker_start`.
    """
    if split not in info.splits:
        raise OptionError(f"split: unknown split {split!r} of {info.name}; choose from {', '.join(info.splits)}")
    batch_size = whole_number("batch_size", batch_size, 1)
    workers = whole_number("workers", workers, 0)
    seed, epoch = whole_number("seed", seed, 0), whole_number("epoch", epoch, 0)
    steps = None if steps is None else whole_number("steps", steps, 1)
    layout = one_of("layout", layout, LAYOUTS)
    count = info.size(split)
    generator = torch.Generator().manual_seed(_mix(seed, epoch))
    if train:
        order = torch.randperm(count, generator=generator).tolist()
        batches = [order[start:start + batch_size] for start in range(0, count - batch_size + 1, batch_size)]
        if not batches:
            raise OptionError(f"batch_size: {batch_size} is more than the {count} {split} images of {info.name}, and "
                              f"training drops incomplete batches; give a batch size <= {count}")
    else:
        batches = [list(range(start, min(start + batch_size, count))) for start in range(0, count, batch_size)]
    batches = batches[:steps]
    dataset = _Prepared(load_split(info, split), train_transform(prep) if train else eval_transform(prep),
                        seed=seed, epoch=epoch, augment=train)
    if multiprocessing_context is None and workers > 0:
        multiprocessing_context = worker_start()
    dataloader = DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=_Collate(batch_size, layout, prep.size, train),
        pin_memory=pin_memory and torch.cuda.is_available(),
        prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
        generator=generator,  # seeds the workers' own RNGs; the batches do not depend on them
        multiprocessing_context=multiprocessing_context if workers > 0 else None,
    )
    return Loader(dataloader, info=info, split=split, prep=prep, batch_size=batch_size, train=train, layout=layout,
                  epoch=epoch, images_per_epoch=sum(len(b) for b in batches))


def worker_start() -> Any:
    """How DataLoader workers start here: fork, or a fork server once JAX is imported in this process.

    Forking a process that runs JAX's threads can deadlock (JAX warns of it). The fork server
    is a fresh process that has imported this module (torch, torchvision) and no JAX; workers
    fork from it, so after the first loader (a few seconds) they start in about a second.
    """
    if "jax" not in sys.modules:
        return None  # the platform default: fork on Linux, the cheapest
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return "spawn"
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # read when the server starts, once per process
    return context


def to_torch(batch: Batch, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """`(images, labels)` of `batch` as torch tensors on `device`; pinned batches copy to CUDA asynchronously."""
    device = torch.device(device)
    images, labels = _as_tensor(batch.images), _as_tensor(batch.labels)  # the pinned tensors of a pinned batch
    if device.type == "cpu":
        return images, labels
    non_blocking = device.type == "cuda" and images.is_pinned()
    return images.to(device, non_blocking=non_blocking), labels.to(device, non_blocking=non_blocking)


def device_prefetch(batches: Iterable[Batch], device: Any = None, depth: int = 2) -> Iterator[tuple[Any, Any, Batch]]:
    """`(images, labels, batch)` with images and labels on a JAX device, `depth` batches put ahead of use.

    `device` is a jax Device, a platform name ("cpu", "cuda" or "gpu"), or None for JAX's default.
    """
    import jax  # here, so that this module imports without JAX

    depth = whole_number("depth", depth, 1)
    if device is None:
        target = jax.devices()[0]
    elif isinstance(device, str):
        target = jax.devices("gpu" if device == "cuda" else device)[0]
    else:
        target = device
    ahead: collections.deque = collections.deque()
    batches = iter(batches)

    def put_next() -> None:
        batch = next(batches, None)
        if batch is not None:  # device_put returns at once; the copy overlaps the step that uses earlier batches
            ahead.append((jax.device_put(batch.images, target), jax.device_put(batch.labels, target), batch))

    for _ in range(depth):
        put_next()
    while ahead:
        item = ahead.popleft()
        put_next()
        yield item


# --- inside the workers ---------------------------------------------------------------------------------------------


class _Prepared:
    """`(transformed image (3, S, S) float32 or CorruptImage, label)` items of a split's dataset."""

    def __init__(self, images: Any, transform: v2.Compose, *, seed: int, epoch: int, augment: bool):
        self.images, self.transform = images, transform
        self.seed, self.epoch, self.augment = seed, epoch, augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.images[index]
        if isinstance(image, CorruptImage):
            return image, label
        if not self.augment:
            return self.transform(image), label
        # torchvision's random transforms draw from torch's global RNG: seed it per image, and
        # put it back afterwards (with workers=0 this runs in the caller's process).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix(self.seed, self.epoch, index))
            return self.transform(image), label


class _Collate:
    """Items -> `Batch`: corrupt images dropped, train batches filled to full size, eval batches padded."""

    def __init__(self, batch_size: int, layout: str, size: int, train: bool):
        self.batch_size, self.layout, self.size, self.train = batch_size, layout, size, train

    def __call__(self, items: list[tuple[Any, int]]) -> Batch:
        good = [(x, y) for x, y in items if not isinstance(x, CorruptImage)]
        skipped = [(x.path, x.reason) for x, _ in items if isinstance(x, CorruptImage)]
        rows = good
        if self.train and good:  # every train step has the same shape: repeat good images in the lost places
            rows = [good[i % len(good)] for i in range(self.batch_size)]
        side, n = self.size, self.batch_size
        images = _new_array((n, 3, side, side) if self.layout == "NCHW" else (n, side, side, 3))
        labels = np.full(n, PAD_LABEL, dtype=np.int64)
        for i, (x, y) in enumerate(rows):
            pixels = x.numpy()  # (C, H, W)
            images[i] = pixels if self.layout == "NCHW" else pixels.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
            labels[i] = y
        images[len(rows):] = 0
        return Batch(images=images, labels=labels, valid=len(good), skipped=skipped)


def _new_array(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float32 array; in a DataLoader worker, in shared memory (sent without a copy)."""
    if get_worker_info() is None:
        return np.empty(shape, dtype=np.float32)
    return torch.empty(shape, dtype=torch.float32).share_memory_().numpy()


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """`array` as a tensor on the same memory: the tensor it views (shared memory stays shared), else from_numpy."""
    base = array.base
    if (isinstance(base, torch.Tensor) and base.is_contiguous() and array.flags.c_contiguous
            and tuple(base.shape) == array.shape and base.data_ptr() == array.ctypes.data):
        return base
    return torch.from_numpy(np.ascontiguousarray(array))


def _batch_from_tensors(images: torch.Tensor, labels: torch.Tensor, valid: int, skipped: list) -> Batch:
    return Batch(images=images.numpy(), labels=labels.numpy(), valid=valid, skipped=skipped)


def _mix(*numbers: int) -> int:
    """One 63-bit seed from several whole numbers (numpy's SeedSequence hash)."""
    return int(np.random.SeedSequence(list(numbers)).generate_state(1, np.uint64)[0] >> 1)


def create_dataloader(data_source: str, model_name: str, batch_size: int, *, split: str = "val", train: bool = False,
                      layout: str = "NCHW", workers: int = 0, seed: int = 0, epoch: int = 0,
                      input_size: int | None = None) -> Loader:
    """The benchmarking guide's `utils.data.create_dataloader`: a `Loader` of `data_source`'s `split`,
    preprocessed as `model_name`'s weights expect (`make_loader` with the dataset opened and checked)."""
    from models.registry import get_spec

    info = open_dataset(data_source, "data_source")
    return make_loader(info, split, preprocessing(get_spec(model_name), input_size), batch_size, train=train,
                       layout=layout, workers=workers, seed=seed, epoch=epoch)
