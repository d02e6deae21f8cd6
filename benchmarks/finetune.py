"""Fine-tune one model on a dataset in both frameworks from the same starting weights (`python -m benchmarks.finetune`).

    python -m benchmarks.finetune --model resnet18 --data data/imagenet100 --epochs 5 \\
        --freeze 2 --batch-size 64 --output-dir out/finetune-resnet18

Each framework starts from the same weights (`--pretrained` / `--weights FILE`, or the
seeded torchvision init; a head of another size than the dataset's classes starts new),
reads the same batches from one input pipeline (benchmarks/pipeline.py), trains `--epochs`
epochs with the first `--freeze` stages frozen, and is evaluated on the 'val' split after
every epoch. Written to `--output-dir`:

- `torch/epoch_<k>.pt` (a state_dict: `--pretrained --weights` takes it) and
  `jax/epoch_<k>.npz` (one array per variable, '/'-joined Flax paths; benchmarks/data_jax.py);
- `log.jsonl`: one line per framework and epoch: train loss, top-1, top-5, epoch seconds,
  img/s, data-wait fraction (`python -m reports finetune log.jsonl --out DIR` plots it);
- `records.jsonl`: a run journal, one record per framework in the benchmarks' schema
  (mode train, time per epoch, final accuracy; the JAX record carries its top-1
  difference to torch), which `python -m reports table` reads.

Exit codes: 0 done, 1 a framework failed (its error is in the log), 2 bad input (one line).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Sequence

from benchmarks import options as opts
from benchmarks.options import OptionError
from benchmarks.training import OPTIMIZERS, TrainConfig
from benchmarks.workload import BuildOptions, Combination, DataOptions

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """A fine-tuning run, validated."""

    model: str
    frameworks: tuple[str, ...]
    device: str
    batch_size: int
    dtype: str
    options: BuildOptions
    output_dir: Path
    input_size: int | None = None

    @property
    def data(self) -> DataOptions:
        assert self.options.data is not None
        return self.options.data


def parse(argv: Sequence[str] | None = None) -> FinetuneConfig:
    """The command line, validated (OptionError: one line); the dataset is checked on disk."""
    from models.freezing import parse_freeze

    args = _parser().parse_args(argv)
    model = opts.parse_model("--model", args.model)
    frameworks = opts.parse_frameworks("--framework", args.framework)
    device = opts.resolve_device(opts.parse_device("--device", args.device))
    batch_size = opts.whole_number("--batch-size", args.batch_size, 1)
    dtype = opts.parse_dtype("--dtype", args.dtype)
    optimizer = opts.one_of("--optimizer", args.optimizer, OPTIMIZERS)
    try:
        freeze = parse_freeze(args.freeze)
    except ValueError as exc:
        raise OptionError(f"--freeze: {exc}") from None
    threads = len(os.sched_getaffinity(0)) if args.threads is None else opts.whole_number("--threads", args.threads, 1)
    data = opts.parse_data_options(args.data, args.epochs, args.steps, args.data_workers, ("train",))
    if data is None:
        raise OptionError("--data: fine-tuning needs a dataset; give --data PATH (an ImageFolder tree or CIFAR batches)")
    sizes = opts.parse_input_sizes("--input-size", [args.input_size] if args.input_size else None)
    output_dir = Path(args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise OptionError(f"--output-dir: {output_dir} is a file; give a folder (it is created if missing)")
    opts.check_device_present("--device", device)
    opts.check_weights([model], args.pretrained or args.weights is not None, args.weights)
    from models.freezing import freeze_reason
    from models.registry import get_spec

    reason = freeze_reason(get_spec(model), freeze)
    if reason:
        raise OptionError(f"--freeze: {reason}")
    options = BuildOptions(threads=threads, pretrained=args.pretrained or args.weights is not None, weights=args.weights,
                           seed=opts.whole_number("--seed", args.seed, 0),
                           train=TrainConfig(optimizer=optimizer, freeze=freeze), data=data)
    return FinetuneConfig(model, frameworks, device, batch_size, dtype, options, output_dir, sizes[0])


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="python -m benchmarks.finetune",
                            description="Fine-tune a model on a dataset in torch and JAX from the same weights.",
                            epilog="Exit codes: 0 done, 1 a framework failed, 2 bad input.")
    parser.add_argument("--model", required=True, help="a registered model name")
    parser.add_argument("--data", required=True, metavar="PATH", help="ImageFolder tree (train/ and val/) or CIFAR batches")
    parser.add_argument("--epochs", default="3", help="epochs (default: 3)")
    parser.add_argument("--steps", default=None, help="at most N batches per epoch")
    parser.add_argument("--batch-size", default="32", help="images per step (default: 32)")
    parser.add_argument("--freeze", default="0", metavar="N|backbone", help="frozen stages from the stem (default: 0)")
    parser.add_argument("--optimizer", default="sgd", help=f"{' or '.join(OPTIMIZERS)} (default: sgd)")
    parser.add_argument("--framework", default="both", help="torch, jax or both (default: both)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16 or float16 (default: float32)")
    parser.add_argument("--input-size", default=None, help="square input side (default: the model's)")
    parser.add_argument("--pretrained", action="store_true", help="start from the published weights (local file)")
    parser.add_argument("--weights", default=None, metavar="FILE", help="start from this state_dict / checkpoint")
    parser.add_argument("--seed", default="0", help="weights init, shuffling and augmentation seed (default: 0)")
    parser.add_argument("--threads", default=None, help="CPU threads (default: the usable cores)")
    parser.add_argument("--data-workers", default=None, help="input pipeline processes (default: cores, at most 4)")
    parser.add_argument("--output-dir", required=True, help="checkpoints, log.jsonl and records.jsonl go here")
    return parser


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _append(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def finetune_framework(config: FinetuneConfig, framework: str, log: Path) -> dict[str, Any]:
    """Train and evaluate `framework` for the run's epochs; returns its record (benchmarks' schema)."""
    from benchmarks.data_runs import DataRun, dataset
    from benchmarks.record import make_record
    from benchmarks.workload import Workload, get_backend

    backend = get_backend(framework).data_backend()
    name = dataset(config.data.source).name
    train_combo = Combination(config.model, framework, config.device, config.batch_size, config.dtype, "train",
                              config.input_size, data=name)
    eval_combo = dataclasses.replace(train_combo, mode="eval")
    start = time.perf_counter()
    trainer = backend.Trainer(train_combo, config.options)
    train = DataRun(train_combo, config.options, backend.LAYOUT, backend.feed(config.device), trainer.train_step,
                    trainer.restart, pin_memory=config.device == "cuda")
    evaluate = DataRun(eval_combo, config.options, backend.LAYOUT, backend.feed(config.device), trainer.evaluate,
                       lambda: None, pin_memory=config.device == "cuda")
    train.run()  # one batch: compile and warm the step, then the starting weights again
    evaluate.run()
    first_call_ms = (time.perf_counter() - start) * 1e3
    folder = config.output_dir / framework
    folder.mkdir(parents=True, exist_ok=True)
    epoch_s: list[float] = []
    for epoch in range(1, config.data.epochs + 1):
        result = train.run()
        scores = evaluate.run()
        assert result is not None and scores is not None
        epoch_s.append(result.wall_s)
        row = {
            "framework": framework, "model": config.model, "dataset": name, "epoch": epoch,
            "train_loss": sum(result.losses) / len(result.losses),
            "top1": 100.0 * scores.correct[1] / scores.images, "top5": 100.0 * scores.correct[5] / scores.images,
            "epoch_s": result.wall_s, "images_per_s": result.images / result.wall_s,
            "data_wait_fraction": result.wait_s / result.wall_s, "eval_s": scores.wall_s,
            "skipped_images": len(result.skipped) + len(scores.skipped),
            "checkpoint": str(trainer.save(folder / f"epoch_{epoch}")),
        }
        _append(log, row)
    workload = Workload(combo=train_combo, run=lambda: None, device_name=get_backend(framework).device_name(config.device),
                        input_shape=(), params=trainer.params,
                        flops=None, flops_source="not counted in fine-tuning runs", threads=config.options.threads,
                        weights=trainer.weights_label, timed_extra=train.timed_extra, images_per_call=train.images_per_call,
                        extra={"head": trainer.head, **trainer.extra})
    record = make_record(workload, epoch_s, first_call_ms, get_backend(framework).versions(), {"status": "not_applicable"})
    record.update(final_top1=row["top1"], final_top5=row["top5"], top1=row["top1"], top5=row["top5"],
                  eval_images=scores.images, finetune=True, log=str(log))
    return record


def run(config: FinetuneConfig) -> int:
    """Fine-tune each framework in turn; write the log, checkpoints and records. Returns the exit code."""
    from benchmarks.journal import Journal
    from benchmarks.record import make_failure_record
    from reports.schema import SCHEMA_VERSION
    from reports.vocabulary import REFERENCE_FRAMEWORK

    config.output_dir.mkdir(parents=True, exist_ok=True)
    log = config.output_dir / "log.jsonl"
    run_id = uuid.uuid4().hex[:12]
    journal = Journal(config.output_dir / "records.jsonl", run_id)
    journal.start(_machine_info(config), _commit_info(),
                  {"schema_version": SCHEMA_VERSION, "run_id": run_id, "command": "python -m benchmarks.finetune",
                   "config": {"model": config.model, "data": config.data.source, "epochs": config.data.epochs,
                              "steps": config.data.steps, "batch_size": config.batch_size, "dtype": config.dtype,
                              **config.options.train.record()}})
    records: dict[str, dict[str, Any]] = {}
    failed = False
    for framework in config.frameworks:
        try:
            record = finetune_framework(config, framework, log)
        except Exception as exc:  # the other framework still runs; the failure is recorded
            failed = True
            combo = Combination(config.model, framework, config.device, config.batch_size, config.dtype, "train",
                                config.input_size, data="finetune")
            failure = make_failure_record(combo, config.device, "error", f"{type(exc).__name__}: {exc}")
            failure["traceback"] = traceback.format_exc(limit=8)
            journal.append_failure(combo.id, failure)
            print(f"finetune: {framework} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        reference = records.get(REFERENCE_FRAMEWORK)
        if reference is not None and framework != REFERENCE_FRAMEWORK:
            record["accuracy_diff_to_torch"] = record["top1"] - reference["top1"]
        records[framework] = record
        journal.append_benchmark(record["id"], {"name": f"finetune[{record['id']}]", "extra_info": record,
                                                "stats": _stats(record)})
    journal.close()
    for framework, record in records.items():
        print(f"{framework}: top-1 {record['top1']:.2f}%  top-5 {record['top5']:.2f}%  "
              f"epoch {record['latency_p50_ms'] / 1e3:.2f} s  {record['throughput_ips']:.0f} img/s  "
              f"data wait {record['data_wait_fraction']:.0%}")
    print(f"log: {log}  records: {journal.path}")
    return EXIT_FAILED if failed else EXIT_OK


def _stats(record: dict[str, Any]) -> dict[str, Any]:
    samples = [ms / 1e3 for ms in record["samples_ms"]]
    return {"min": min(samples), "max": max(samples), "mean": sum(samples) / len(samples),
            "median": record["latency_p50_ms"] / 1e3, "rounds": len(samples), "data": samples}


def _machine_info(config: FinetuneConfig) -> dict[str, Any]:
    from pytest_benchmark.plugin import pytest_benchmark_generate_machine_info

    info = pytest_benchmark_generate_machine_info()
    info["visionbench"] = {"cpu_affinity": len(os.sched_getaffinity(0)), "threads": config.options.threads}
    return info


def _commit_info() -> dict[str, Any]:
    from pytest_benchmark.utils import get_commit_info

    return get_commit_info()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = parse(argv)
    except OptionError as exc:
        print(f"python -m benchmarks.finetune: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
