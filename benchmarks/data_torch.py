"""torch on a dataset: train epochs and evaluation passes (benchmarks/data_runs.py runs the loop)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from benchmarks import backend_torch
from benchmarks.data_runs import DataRun, dataset, reference_for_data
from benchmarks.train_torch import TrainStep, prepare, set_train_mode, train_flops_per_image
from benchmarks.training import precision_policy
from benchmarks.workload import BuildOptions, Combination, Workload
from models.freezing import count_trainable, frozen_stages
from models.registry import get_spec

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
LAYOUT = "NCHW"
CHECKPOINT_SUFFIX = ".pt"


def feed(device: str) -> Any:
    """The pipeline's numpy batches as torch tensors on `device` (pinned, copied without blocking on CUDA)."""
    from benchmarks.pipeline import to_torch

    def batches_on_device(batches: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
        for batch in batches:
            yield to_torch(batch, device), batch

    return batches_on_device


class Trainer:
    """`combo`'s model from the run's starting weights, with one train step and an evaluation of its current weights."""

    def __init__(self, combo: Combination, options: BuildOptions) -> None:
        assert options.data is not None
        spec = get_spec(combo.model)
        self.combo = combo
        self.size = combo.input_size or spec.input_size
        info = dataset(options.data.source)
        torch.set_num_threads(options.threads)
        torch.backends.cuda.matmul.allow_tf32 = options.tf32
        torch.backends.cudnn.allow_tf32 = options.tf32
        reference, self.weights_label, self.head = reference_for_data(combo.model, info.num_classes, options.pretrained,
                                                                      options.weights, options.seed, self.size)
        self.model, self.trainable = prepare(reference, combo.model, options.train, combo.device)
        self.config = options.train
        self.step = TrainStep(self.model, options.train, combo.dtype)
        self.restart = self.step.restart_point()
        self.params = sum(p.numel() for p in self.model.parameters())
        self.extra = {**options.train.record(), "frozen_stages": frozen_stages(spec, options.train.freeze),
                      "trainable_params": count_trainable(self.model, self.trainable)}

    def train_step(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """One step on a batch; returns the loss once the device is done."""
        loss = self.step(*inputs)
        backend_torch._sync(self.combo.device)
        return loss

    def evaluate(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> Any:
        """Logits of the current weights (eval mode: running norm statistics), as a host array."""
        self.model.eval()
        try:
            with torch.inference_mode(), self.step.autocast():
                logits = self.model(inputs[0])
            return logits.float().cpu().numpy()
        finally:
            set_train_mode(self.model, self.config.stochastic)

    def save(self, path: Path) -> Path:
        """The current weights as a torch state_dict (loadable with --pretrained --weights PATH)."""
        path = path.with_suffix(CHECKPOINT_SUFFIX)
        torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, path)
        return path


def _evaluator(combo: Combination, options: BuildOptions) -> tuple[Any, Any, str, str]:
    """(model, forward to host logits, weights label, head) of an evaluation pass in `combo`'s dtype."""
    spec = get_spec(combo.model)
    info = dataset(options.data.source)
    size = combo.input_size or spec.input_size
    torch.set_num_threads(options.threads)
    reference, label, head = reference_for_data(combo.model, info.num_classes, options.pretrained, options.weights,
                                                options.seed, size)
    model = copy.deepcopy(reference).to(device=combo.device, dtype=_DTYPES[combo.dtype]).eval()

    def forward(inputs: tuple[torch.Tensor, torch.Tensor]) -> Any:
        with torch.inference_mode():
            logits = model(inputs[0].to(_DTYPES[combo.dtype]))
        return logits.float().cpu().numpy()  # the copy to the host synchronises

    return model, forward, label, head


def _no_restart() -> None:
    return None  # evaluation changes no weights


def build_data_workload(combo: Combination, options: BuildOptions) -> Workload:
    """`combo` over its dataset: one train epoch or one evaluation pass per call, the shared starting weights."""
    spec = get_spec(combo.model)
    size = combo.input_size or spec.input_size
    if combo.mode == "train":
        trainer = Trainer(combo, options)
        model, compute, restart = trainer.model, trainer.train_step, trainer.restart
        label, head, extra = trainer.weights_label, trainer.head, trainer.extra
        flops_per_image = train_flops_per_image(combo.model, size, options.train)
    else:
        model, compute, label, head = _evaluator(combo, options)
        restart, extra = _no_restart, {}
        flops_per_image = backend_torch.flops_per_image(combo.model, size)
    run = DataRun(combo, options, LAYOUT, feed(combo.device), compute, restart, pin_memory=combo.device == "cuda")
    images = run.images_per_call
    return Workload(
        combo=combo,
        run=run.run,
        device_name=backend_torch.device_name(combo.device),
        input_shape=(combo.batch_size, 3, size, size),
        params=sum(p.numel() for p in model.parameters()),
        flops=flops_per_image * images,
        flops_source="torch.utils.flop_counter per image (the model's own head) x images per call",
        threads=torch.get_num_threads(),
        weights=label,
        reset_memory=lambda: (run.start_timing(), backend_torch.reset_memory(combo.device)),
        memory=functools.partial(backend_torch.memory, combo.device),
        timed_extra=run.timed_extra,
        restart=run.restart,
        images_per_call=images,
        extra={"tf32": options.tf32, "head": head, "precision_policy": precision_policy("torch", combo.dtype), **extra},
    )
