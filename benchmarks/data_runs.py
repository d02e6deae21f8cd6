"""Calls over a dataset (`--data PATH`): a train epoch or an evaluation pass per call, in either framework.

A back end gives three things: how its inputs arrive (`feed`: the pipeline's numpy batches
onto its device), what one batch does (`compute`: a train step returning the loss, or a
forward returning the logits, synchronised), and how to return to the built weights
(`restart`). `DataRun` does the rest the same way for both frameworks, so a torch-vs-JAX
comparison differs only in the model step:

- the batches come from one pipeline (benchmarks/pipeline.py) with the same seed and
  epoch number, so both frameworks see the same images in the same order;
- the first call runs one batch only (compiling and warming the step; the weights then
  return to their built state), each later call is one epoch or one evaluation pass;
- the wall time of a call is split into waiting for data (blocked on the next batch) and
  computing (the step, synchronised); `data_wait_fraction` is the first over the whole;
- eval counts top-1 / top-5 on the host over the real images of each batch (padding and
  corrupt files excluded);
- a progress line per call shows batches done, img/s and the data-wait share.

The model's head has the dataset's classes: a model whose weights have another number of
outputs (ImageNet weights on a 10-class folder) keeps its backbone and gets a seeded new
head, and the record says so (`head`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from benchmarks.progress import Progress
from benchmarks.workload import BuildOptions, Combination, DataOptions
from models.registry import ModelSpec, get_family, get_spec

TOP_K = (1, 5)


_DATASETS: dict[str, Any] = {}


def dataset(source: str, label: str = "--data") -> Any:
    """The `DatasetInfo` of `source` (checked once per process and folder); a bad path is an OptionError naming `label`."""
    from benchmarks.datasets import open_dataset

    key = os.path.realpath(source)  # a relative path names another folder after a chdir
    if key not in _DATASETS:
        _DATASETS[key] = open_dataset(source, label)
    return _DATASETS[key]


def data_spec(spec: ModelSpec, num_classes: int) -> ModelSpec:
    """`spec` with a head of `num_classes` outputs."""
    return spec if spec.num_classes == num_classes else dataclasses.replace(spec, num_classes=num_classes)


def split_of(mode: str) -> str:
    """The split a mode reads: train epochs read 'train', evaluation passes 'val'."""
    return "train" if mode == "train" else "val"


def _head_keys(spec: ModelSpec, model: Any) -> set[str]:
    """state_dict keys of the model's output layer(s): the family's `heads`, else its last Linear."""
    import torch

    family = get_family(spec.family)
    heads = family.heads(model) if family.heads is not None else [
        [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]]
    ids = {id(h) for h in heads}
    return {f"{name}.{key}" if name else key
            for name, module in model.named_modules() if id(module) in ids
            for key in module.state_dict()}


@functools.lru_cache(maxsize=None)
def reference_for_data(name: str, num_classes: int, pretrained: bool, weights: str | None, seed: int,
                       input_size: int) -> tuple[Any, str, str]:
    """`(torch model, weights label, head note)`: the CPU float32 starting weights of a dataset run.

    Seeded torchvision init, or the weights file (`--pretrained`/`--weights`: published
    weights or a fine-tuning checkpoint); a head whose shape differs from the file's is left
    at its seeded init (`head` says "new: N classes"), any other difference is an error.
    """
    import torch

    from models.torch_models import build_torch_model, load_pretrained

    spec = data_spec(get_spec(name), num_classes)
    torch.manual_seed(seed)
    model = build_torch_model(spec, input_size)
    if not pretrained:
        return model, f"torchvision-init(seed={seed})", f"seeded init, {num_classes} classes"
    path, kept = load_pretrained(model, get_spec(name), weights, fresh=_head_keys(spec, model))
    head = f"new: {num_classes} classes, seeded init" if kept else "from the weights file"
    return model, f"pretrained:{path}", head


def top_k_correct(logits: np.ndarray, labels: np.ndarray, ks: Iterable[int] = TOP_K) -> dict[int, int]:
    """How many rows of `logits` (N, classes) hold their label among the k highest scores, per k."""
    order = np.argsort(-logits, axis=1, kind="stable")
    hits = order == labels[:, None]
    return {k: int(hits[:, :k].any(axis=1).sum()) for k in ks}


@dataclasses.dataclass
class CallResult:
    """What one call over the dataset measured."""

    images: int
    batches: int
    wall_s: float
    wait_s: float
    losses: list[float]
    correct: dict[int, int]
    skipped: list[tuple[str, str]]


class DataRun:
    """One combination's calls over the dataset: the loop both frameworks share."""

    def __init__(self, combo: Combination, options: BuildOptions, layout: str,
                 feed: Callable[[Iterable[Any]], Iterator[tuple[Any, Any]]],
                 compute: Callable[[Any], Any], restart: Callable[[], None], pin_memory: bool = False) -> None:
        from benchmarks.pipeline import preprocessing

        assert options.data is not None and combo.data is not None
        self.combo = combo
        self.data: DataOptions = options.data
        self.seed = options.seed
        self.info = dataset(self.data.source)
        self.split = split_of(combo.mode)
        self.train = combo.mode == "train"
        self.prep = preprocessing(get_spec(combo.model), combo.input_size)
        self.layout = layout
        self.feed = feed
        self.compute = compute
        self.restart_weights = restart
        self.pin_memory = pin_memory
        self.epoch = 0
        self.warmed = False
        self.timed: list[CallResult] = []

    def loader(self, steps: int | None) -> Any:
        from benchmarks.pipeline import make_loader

        return make_loader(self.info, self.split, self.prep, self.combo.batch_size, train=self.train,
                           layout=self.layout, workers=self.data.workers, seed=self.seed, epoch=self.epoch,
                           steps=steps, pin_memory=self.pin_memory)

    @functools.cached_property
    def batches_per_call(self) -> int:
        return len(self.loader(self.data.steps))

    @property
    def images_per_call(self) -> int:
        """Images one call reads: whole batches in train (the last partial one is dropped), every image in eval."""
        if self.train:
            return self.batches_per_call * self.combo.batch_size
        return min(self.info.size(self.split), self.batches_per_call * self.combo.batch_size)

    def run(self) -> CallResult | None:
        """The first call: one batch (compile, warm), then the built weights again. Later calls: one epoch or pass."""
        if not self.warmed:
            for inputs, _ in self.feed(self.loader(1)):
                self.compute(inputs)
            self.restart_weights()
            self.warmed = True
            return None
        result = self._one_call()
        self.epoch += 1
        self.timed.append(result)
        return result

    def _one_call(self) -> CallResult:
        loader = self.loader(self.data.steps)
        what = f"epoch {self.epoch + 1}" if self.train else "eval"
        progress = Progress(f"{self.combo.id} {what}", len(loader))
        losses: list[float] = []
        correct = {k: 0 for k in TOP_K}
        images = batches = 0
        wait_s = 0.0
        start = mark = time.perf_counter()
        for inputs, batch in self.feed(loader):
            got = time.perf_counter()
            wait_s += got - mark
            if batch.valid == 0:  # every image of it was corrupt: nothing to step on
                mark = time.perf_counter()
                continue
            out = self.compute(inputs)
            if self.train:
                losses.append(float(out))
                images += len(batch.labels)
            else:
                valid = batch.valid
                for k, n in top_k_correct(np.asarray(out)[:valid], np.asarray(batch.labels)[:valid]).items():
                    correct[k] += n
                images += valid
            batches += 1
            progress.update(batches, images, wait_s)
            mark = time.perf_counter()
        wall_s = time.perf_counter() - start
        progress.close(batches, images, wait_s)
        return CallResult(images, batches, wall_s, wait_s, losses, correct, list(getattr(loader, "skipped", [])))

    def restart(self) -> None:
        """Back to the built weights and epoch 0 (the harness reuses an interleaving partner)."""
        self.restart_weights()
        self.epoch = 0
        self.warmed = False

    def start_timing(self) -> None:
        self.timed.clear()

    def timed_extra(self) -> dict[str, Any]:
        """The dataset figures of the timed calls."""
        calls = self.timed
        wall = sum(c.wall_s for c in calls)
        skipped = [path for c in calls for path, _ in c.skipped]
        out: dict[str, Any] = {
            "dataset": self.info.name,
            "dataset_kind": self.info.kind,
            "dataset_split": self.split,
            "dataset_size": self.info.size(self.split),
            "num_classes": self.info.num_classes,
            "data_workers": self.data.workers,
            "steps_per_call": self.batches_per_call,
            "data_wait_fraction": sum(c.wait_s for c in calls) / wall if wall > 0 else None,
            "skipped_images": len(skipped),
            "skipped_paths": sorted(set(skipped))[:10],
        }
        if self.train:
            out.update(epochs=len(calls), images_per_epoch=self.images_per_call, epoch_s=[c.wall_s for c in calls],
                       epoch_losses=[float(np.mean(c.losses)) if c.losses else None for c in calls],
                       first_step_losses=[c.losses[0] if c.losses else None for c in calls])
        elif calls:
            last = calls[-1]
            out.update(eval_passes=len(calls), eval_images=last.images,
                       **{f"top{k}": 100.0 * last.correct[k] / last.images if last.images else None for k in TOP_K})
        return out
