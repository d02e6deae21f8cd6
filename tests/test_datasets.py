"""Datasets from local paths and the one input pipeline: layouts, one-line errors, corrupt images, determinism,
layouts of batches, padding, and preprocessing identical to the torchvision weights' own."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import subprocess
import sys
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from benchmarks import datasets
from benchmarks.datasets import CorruptImage, load_split, open_dataset
from benchmarks.options import OptionError
from benchmarks.pipeline import (PAD_LABEL, Batch, device_prefetch, eval_transform, make_loader, preprocessing,
                                 to_torch)
from models.registry import get_spec, list_models
from tests import datagen

ROOT = Path(__file__).resolve().parents[1]
TINY = get_spec("resnet_tiny")  # 32 px input, no torchvision weights
PHOTO = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """ImageNet-100 style: train/ and val/, 4 classes, 6 + 3 images each; the root's name needs sanitising."""
    return datagen.make_image_folder(tmp_path_factory.mktemp("folders") / "tiny-net+1", classes=4, per_class=(6, 3))


@pytest.fixture(scope="module")
def cifar_parents(tmp_path_factory) -> dict[str, Path]:
    """The folders that CIFAR-10 and CIFAR-100 (small, generated) were 'extracted into'."""
    parents = {}
    for variant in ("cifar10", "cifar100"):
        parents[variant] = tmp_path_factory.mktemp(variant)
        datagen.make_cifar(parents[variant], variant, train=30, test=12, train_batches=3)
    return parents


def one_line_error(source, label: str = "--data") -> str:
    with pytest.raises(OptionError) as caught:
        open_dataset(str(source), label=label)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{label}: "), message
    return message


def collect(loader) -> list[Batch]:
    return list(loader)


def assert_same_batches(first: list[Batch], second: list[Batch]) -> None:
    assert len(first) == len(second) > 0
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert (a.valid, a.skipped) == (b.valid, b.skipped)


# --- layouts -------------------------------------------------------------------------------------------------------


def test_image_folder_with_train_and_val_splits(image_folder):
    info = open_dataset(str(image_folder))
    assert (info.kind, info.name, info.root) == ("imagefolder", "tiny_net_1", str(image_folder.resolve()))
    assert info.classes == tuple(datagen.class_name(k) for k in range(4)) and info.num_classes == 4
    assert dict(info.splits) == {"train": 24, "val": 12} and info.size("val") == 12
    assert not info.shared_splits
    val = load_split(info, "val")
    assert len(val) == 12
    image, label = val[11]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (40, 40) and label == 3


def test_image_folder_root_gives_the_same_images_to_both_splits(image_folder):
    info = open_dataset(str(image_folder / "train"))
    assert info.name == "train" and dict(info.splits) == {"train": 24, "val": 24} and info.shared_splits
    assert [s for s, _ in load_split(info, "train").samples] == [s for s, _ in load_split(info, "val").samples]


def test_test_folder_is_the_eval_split_when_there_is_no_val(tmp_path):
    root = datagen.make_image_folder(tmp_path / "ds", classes=2, per_class=(2, 1))
    (root / "val").rename(root / "test")
    info = open_dataset(str(root))
    assert dict(info.splits) == {"train": 4, "val": 2} and info.sources["val"] == (str((root / "test").resolve()),)


def test_class_folder_without_images_is_no_class_and_labels_follow_the_classes(tmp_path):
    root = datagen.make_image_folder(tmp_path / "ds", classes=3, per_class=(2, 2))
    for split in ("train", "val"):
        (root / split / "class_00_empty").mkdir()  # sorts between class_00 and class_01
        (root / split / "class_01" / "notes.txt").write_text("not an image")
    info = open_dataset(str(root))
    assert info.classes == ("class_00", "class_01", "class_02")
    split = load_split(info, "train")
    assert [(Path(path).parent.name, label) for path, label in split.samples] == [
        (info.classes[label], label) for _, label in split.samples]
    assert [label for _, label in split.samples] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("variant, count, names", [("cifar10", 10, "label"), ("cifar100", 100, "fine")])
def test_cifar_folder_and_its_parent_open_the_same_dataset(cifar_parents, variant, count, names):
    parent = cifar_parents[variant]
    folder = parent / {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[variant]
    info = open_dataset(str(parent))
    assert open_dataset(str(folder)) == info
    assert (info.kind, info.name, info.root) == (variant, variant, str(folder.resolve()))
    assert dict(info.splits) == {"train": 30, "val": 12} and info.num_classes == count
    assert info.classes[:2] == (f"{names}0", f"{names}1")
    if variant == "cifar10":
        assert [Path(p).name for p in info.sources["train"]] == ["data_batch_1", "data_batch_2", "data_batch_3"]


@pytest.mark.parametrize("variant", ["cifar10", "cifar100"])
def test_cifar_images_are_decoded_from_channel_first_rows(cifar_parents, variant):
    info = open_dataset(str(cifar_parents[variant]))
    split = load_split(info, "train")
    colours = datagen.class_colours(info.num_classes)
    medians, labels = [], []
    for index in range(len(split)):
        image, label = split[index]
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (32, 32)
        medians.append(np.median(np.asarray(image, dtype=np.float64), axis=(0, 1)))
        labels.append(label)
    # Each generated image is mostly its class colour: reading the rows in another order mixes the channels.
    np.testing.assert_allclose(np.array(medians), colours[labels], atol=8)


# --- one-line errors -----------------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    message = one_line_error(tmp_path / "nope")
    assert message.startswith(f"--data: no such folder {str(tmp_path / 'nope')!r}; give the folder that holds the dataset")


def test_file_instead_of_folder(tmp_path):
    (tmp_path / "list.txt").write_text("x")
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"x")
    assert one_line_error(tmp_path / "list.txt").startswith(f"--data: {str(tmp_path / 'list.txt')!r} is a file, not a folder;")
    assert one_line_error(tmp_path / "cifar-10-python.tar.gz") == (
        f"--data: {str(tmp_path / 'cifar-10-python.tar.gz')!r} is an archive, not a folder; extract it and give the "
        "folder it makes")


def test_empty_folder_and_the_label_of_the_option(tmp_path):
    assert one_line_error(tmp_path, label="data_path") == (
        f"data_path: folder {str(tmp_path)!r} is empty; put the dataset there or give the folder that holds it")


def test_unreadable_folder_by_permission(tmp_path, monkeypatch):
    """Root reads anything, so the listing's PermissionError is planted; the real chmod case is the next test."""
    folder = tmp_path / "locked"
    folder.mkdir()
    scandir = os.scandir

    def refusing(path="."):
        if os.fspath(path) == str(folder):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(datasets.os, "scandir", refusing)
    assert one_line_error(folder) == (f"--data: cannot read folder {str(folder)!r} (permission denied); make it "
                                      "readable (chmod -R a+rX) or give another path")


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: chmod 000 does not stop root from reading")
def test_unreadable_folder_by_chmod(tmp_path):
    folder = tmp_path / "locked"
    datagen.make_image_folder(folder, classes=1, per_class=(1, 1))
    folder.chmod(0)
    try:
        assert "(permission denied)" in one_line_error(folder)
    finally:
        folder.chmod(0o755)


def test_unknown_layout_says_what_is_accepted(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    message = one_line_error(tmp_path)
    assert message.startswith(f"--data: {str(tmp_path)!r} is not a dataset layout this suite reads; expected an "
                              "ImageFolder (<root>/<class>/<image>")
    assert "cifar-10-batches-py" in message and "cifar-100-python" in message


def test_images_without_class_folders(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    assert "holds images but no class folders; an ImageFolder keeps each class's images in its own folder" in (
        one_line_error(tmp_path))


def test_folders_without_images_are_zero_classes(tmp_path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "notes.txt").write_text("x")
    assert one_line_error(tmp_path).startswith(f"--data: {str(tmp_path)!r} has folders but no images (.jpg, .jpeg, "
                                               ".png")


def test_splits_that_disagree_on_classes(tmp_path):
    root = datagen.make_image_folder(tmp_path / "ds", classes=3, per_class=(1, 1))
    shutil.rmtree(root / "val" / "class_02")
    Image.new("RGB", (8, 8)).save((root / "val" / "dogs").mkdir() or root / "val" / "dogs" / "d.png")
    assert one_line_error(root) == (
        f"--data: the splits of {str(root)!r} disagree on classes (train/ 3, val/ 3; only in train/: class_02; only "
        "in val/: dogs); give both the same class folders (a folder with no images is no class)")


def test_train_without_eval_split(tmp_path):
    root = datagen.make_image_folder(tmp_path / "ds", classes=2, per_class=(1, 1))
    shutil.rmtree(root / "val")
    assert one_line_error(root) == (
        f"--data: {str(root)!r} has train/ but needs train/ and val/ (or test/); add the missing split, or give "
        f"{str(root / 'train')!r} to use one set of images for both")


def test_cifar_without_data_batches_names_the_expected_files(tmp_path):
    folder = datagen.make_cifar(tmp_path, "cifar10", train=4, test=2, train_batches=2)
    for name in ("data_batch_1", "data_batch_2"):
        (folder / name).unlink()
    assert one_line_error(tmp_path) == (
        f"--data: {str(folder)!r} looks like CIFAR-10 but lacks data_batch_*; expected data_batch_1 .. data_batch_5, "
        "test_batch and batches.meta, as extracted from cifar-10-python.tar.gz")


def test_cifar_pickle_that_does_not_unpickle(tmp_path):
    folder = datagen.make_cifar(tmp_path, "cifar100", train=4, test=2)
    (folder / "test").write_bytes(b"\x80\x02}q\x00(garbage")
    message = one_line_error(folder)
    assert message.startswith(f"--data: cannot unpickle CIFAR-100 file {str(folder / 'test')!r} (")
    assert message.endswith("); extract it again from cifar-100-python.tar.gz")


def test_cifar_pickle_without_the_label_key(tmp_path):
    folder = datagen.make_cifar(tmp_path, "cifar10", train=4, test=2, train_batches=1)
    with open(folder / "test_batch", "rb") as f:
        content = pickle.load(f, encoding="bytes")
    content.pop(b"labels")
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(content, f, protocol=2)
    assert one_line_error(folder) == (
        f"--data: CIFAR-10 file {str(folder / 'test_batch')!r} lacks b'labels' with one label per row of b'data'; "
        "extract it again from cifar-10-python.tar.gz")


class _Planted:
    def __reduce__(self):
        return (os.system, ("touch planted_by_pickle",))


def test_cifar_pickle_runs_no_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = datagen.make_cifar(tmp_path, "cifar10", train=4, test=2, train_batches=1)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": _Planted()}, f, protocol=2)
    assert "refusing to load posix.system" in one_line_error(folder)
    assert not (tmp_path / "planted_by_pickle").exists()


# --- the pipeline --------------------------------------------------------------------------------------------------


@pytest.fixture
def damaged_folder(tmp_path) -> tuple[Path, list[str]]:
    """4 classes x (6 train, 3 val); one train image truncated, one garbage .jpg added (25 train), one val truncated."""
    root = datagen.make_image_folder(tmp_path / "ds", classes=4, per_class=(6, 3))
    truncated = datagen.corrupt(sorted((root / "train" / "class_01").iterdir())[2])
    garbage = datagen.write_garbage_image(root / "train" / "class_03")
    val_truncated = datagen.corrupt(sorted((root / "val" / "class_02").iterdir())[0])
    return root, [str(truncated), str(garbage), str(val_truncated)]


def test_corrupt_images_are_skipped_and_train_batches_keep_their_shape(damaged_folder):
    root, (truncated, garbage, val_truncated) = damaged_folder
    info = open_dataset(str(root))
    assert dict(info.splits) == {"train": 25, "val": 12}  # counted from names; decoding happens in the pipeline
    loader = make_loader(info, "train", preprocessing(TINY), 5, train=True, layout="NHWC", workers=0, seed=3)
    batches = collect(loader)
    assert len(batches) == len(loader) == 5 and loader.images_per_epoch == 25
    assert sorted(path for path, _ in loader.skipped) == sorted([truncated, garbage])
    assert all(reason for _, reason in loader.skipped)
    assert sorted(b.valid for b in batches) in ([3, 5, 5, 5, 5], [4, 4, 5, 5, 5])
    for batch in batches:
        assert batch.images.shape == (5, 32, 32, 3) and batch.labels.shape == (5,)
        filled = np.arange(5) % batch.valid  # rows past `valid` repeat the good ones
        np.testing.assert_array_equal(batch.images, batch.images[filled])
        np.testing.assert_array_equal(batch.labels, batch.labels[filled])
        assert (batch.labels >= 0).all()


def test_corrupt_images_are_left_out_of_eval_batches(damaged_folder):
    root, (_, _, val_truncated) = damaged_folder
    info = open_dataset(str(root))
    loader = make_loader(info, "val", preprocessing(TINY), 5, train=False, layout="NCHW", workers=0, seed=0)
    batches = collect(loader)
    assert [b.valid for b in batches] == [5, 4, 2]  # images 0-4, 5-9 less the corrupt one, 10-11
    assert [path for path, _ in loader.skipped] == [val_truncated] and batches[1].skipped == loader.skipped
    labels = np.concatenate([b.labels[:b.valid] for b in batches])
    split = load_split(info, "val")
    expected = [label for path, label in split.samples if path != val_truncated]
    marker, _ = split[[path for path, _ in split.samples].index(val_truncated)]
    assert isinstance(marker, CorruptImage) and marker.path == val_truncated and "truncated" in marker.reason
    np.testing.assert_array_equal(labels, expected)
    assert (batches[1].labels[4:] == PAD_LABEL).all() and not batches[1].images[4:].any()


def test_train_batches_are_identical_for_the_same_seed_and_epoch(image_folder):
    info, prep = open_dataset(str(image_folder)), preprocessing(TINY)

    def batches(epoch: int, workers: int) -> list[Batch]:
        return collect(make_loader(info, "train", prep, 4, train=True, layout="NCHW", workers=workers, seed=7,
                                   epoch=epoch))

    first = batches(epoch=0, workers=2)
    assert_same_batches(first, batches(epoch=0, workers=2))
    assert_same_batches(first, batches(epoch=0, workers=0))  # batches do not depend on the number of workers
    other = batches(epoch=1, workers=2)
    assert not np.array_equal(np.concatenate([b.labels for b in first]), np.concatenate([b.labels for b in other]))
    assert not np.array_equal(first[0].images, other[0].images)
    # Shuffled, not resampled: each image once an epoch (24 images, 6 full batches of 4).
    assert sorted(np.concatenate([b.labels for b in first]).tolist()) == sorted([k for k in range(4) for _ in range(6)])


def test_augmentation_leaves_the_callers_random_state_alone(image_folder):
    info = open_dataset(str(image_folder))
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    collect(make_loader(info, "train", preprocessing(TINY), 4, train=True, layout="NCHW", workers=0, seed=0, steps=2))
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)


def test_workers_of_a_process_with_jax_start_from_a_fork_server_and_give_the_same_batches(image_folder, monkeypatch):
    """Not forked from a process running JAX's threads: everything the workers get must pickle."""
    monkeypatch.setitem(sys.modules, "jax", sys.modules.get("jax") or type(sys)("jax"))
    info, prep = open_dataset(str(image_folder)), preprocessing(TINY)
    args = dict(train=True, layout="NHWC", seed=1, steps=2)
    loader = make_loader(info, "train", prep, 4, workers=2, **args)
    assert loader.dataloader.multiprocessing_context.get_start_method() == "forkserver"
    assert_same_batches(collect(loader), collect(make_loader(info, "train", prep, 4, workers=0, **args)))


def test_nhwc_batches_are_nchw_batches_transposed(image_folder):
    info, prep = open_dataset(str(image_folder)), preprocessing(TINY)
    for train in (True, False):
        nchw, nhwc = (collect(make_loader(info, "train", prep, 4, train=train, layout=layout, workers=0, seed=5))
                      for layout in ("NCHW", "NHWC"))
        assert nchw[0].images.shape == (4, 3, 32, 32) and nhwc[0].images.shape == (4, 32, 32, 3)
        for a, b in zip(nchw, nhwc):
            np.testing.assert_array_equal(a.images.transpose(0, 2, 3, 1), b.images)  # (N, C, H, W) -> (N, H, W, C)
            np.testing.assert_array_equal(a.labels, b.labels)


def test_eval_pads_the_last_batch_and_counts_valid_rows(image_folder):
    info, prep = open_dataset(str(image_folder)), preprocessing(TINY)
    loader = make_loader(info, "val", prep, 5, train=False, layout="NHWC", workers=0, seed=0)
    batches = collect(loader)
    assert len(loader) == 3 and loader.images_per_epoch == 12 and [b.valid for b in batches] == [5, 5, 2]
    assert all(b.images.shape == (5, 32, 32, 3) and b.images.dtype == np.float32 for b in batches)
    assert all(b.labels.dtype == np.int64 for b in batches)
    assert not batches[-1].images[2:].any() and batches[-1].images[:2].any()
    assert batches[-1].labels[2:].tolist() == [PAD_LABEL] * 3
    in_order = np.concatenate([b.labels[:b.valid] for b in batches])
    np.testing.assert_array_equal(in_order, [label for _, label in load_split(info, "val").samples])
    # Evaluation has no randomness: the images are the eval transform's, in order.
    expected = eval_transform(prep)(load_split(info, "val")[0][0])  # (C, H, W)
    np.testing.assert_array_equal(batches[0].images[0], expected.numpy().transpose(1, 2, 0))


def test_steps_cap_the_epoch_and_train_drops_the_incomplete_batch(image_folder):
    info, prep = open_dataset(str(image_folder)), preprocessing(TINY)
    train = make_loader(info, "train", prep, 5, train=True, layout="NCHW", workers=0, seed=0)
    assert (len(train), train.images_per_epoch) == (4, 20)  # 24 images: 4 batches of 5, 4 dropped
    capped = make_loader(info, "val", prep, 5, train=False, layout="NCHW", workers=0, seed=0, steps=2)
    assert (len(capped), capped.images_per_epoch, len(collect(capped))) == (2, 10, 2)
    with pytest.raises(OptionError, match=r"^batch_size: 25 is more than the 24 train images of tiny_net_1"):
        make_loader(info, "train", prep, 25, train=True, layout="NCHW", workers=0, seed=0)
    with pytest.raises(OptionError, match=r"^layout: unknown value 'NWHC'; choose from NCHW, NHWC$"):
        make_loader(info, "val", prep, 5, train=False, layout="NWHC", workers=0, seed=0)


def test_cifar_images_are_upsampled_to_a_224_model(cifar_parents):
    info, prep = open_dataset(str(cifar_parents["cifar10"])), preprocessing(get_spec("resnet50"))
    for train in (True, False):
        batch = next(iter(make_loader(info, "val", prep, 3, train=train, layout="NHWC", workers=0, seed=0)))
        assert batch.images.shape == (3, 224, 224, 3) and batch.valid == 3 and np.isfinite(batch.images).all()


def test_batches_cross_processes_as_shared_memory_and_back(image_folder):
    batch = next(iter(make_loader(open_dataset(str(image_folder)), "val", preprocessing(TINY), 4, train=False,
                                  layout="NHWC", workers=0, seed=0)))
    buffer = io.BytesIO()
    ForkingPickler(buffer, pickle.HIGHEST_PROTOCOL).dump(batch)
    assert len(buffer.getvalue()) < batch.images.nbytes // 4  # a shared-memory handle, not the pixels
    for copy in (pickle.loads(buffer.getvalue()), pickle.loads(pickle.dumps(batch))):
        assert isinstance(copy.images, np.ndarray) and copy.images.dtype == np.float32
        assert_same_batches([batch], [copy])


def test_to_torch_on_cpu_shares_the_batch(image_folder):
    batch = next(iter(make_loader(open_dataset(str(image_folder)), "val", preprocessing(TINY), 4, train=False,
                                  layout="NCHW", workers=0, seed=0)))
    images, labels = to_torch(batch, "cpu")
    assert images.dtype == torch.float32 and labels.dtype == torch.int64 and images.shape == (4, 3, 32, 32)
    assert images.data_ptr() == batch.images.ctypes.data  # no copy on the CPU
    np.testing.assert_array_equal(labels.numpy(), batch.labels)


# --- preprocessing ---------------------------------------------------------------------------------------------------

WITH_WEIGHTS = [name for name in list_models() if get_spec(name).torchvision_weights]


@pytest.mark.parametrize("name", WITH_WEIGHTS)
def test_preprocessing_is_what_the_torchvision_weights_say(name):
    spec = get_spec(name)
    reference = torchvision.models.get_weight(spec.torchvision_weights).transforms()  # ImageClassification
    prep = preprocessing(spec)
    assert (prep.size, prep.resize_size, prep.interpolation) == (
        reference.crop_size[0], reference.resize_size[0], reference.interpolation.value)
    assert (list(prep.mean), list(prep.std)) == (reference.mean, reference.std) and prep.source == spec.torchvision_weights


def test_preprocessing_at_another_input_size_keeps_the_resize_ratio():
    spec = get_spec("resnet50")
    reference = torchvision.models.get_weight(spec.torchvision_weights).transforms()
    prep = preprocessing(spec, input_size=160)
    assert (prep.size, prep.resize_size) == (160, round(reference.resize_size[0] * 160 / reference.crop_size[0]))


def test_preprocessing_without_weights_crops_0_875_of_the_resize():
    import dataclasses

    spec = dataclasses.replace(TINY, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert TINY.torchvision_weights is None
    prep = preprocessing(spec)
    assert (prep.size, prep.resize_size, prep.interpolation, prep.mean, prep.std) == (
        32, 37, "bilinear", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert (preprocessing(spec, input_size=224).resize_size, preprocessing(spec, input_size=224).size) == (256, 224)


@pytest.mark.skipif(not PHOTO.exists(), reason=f"no sample photo at {PHOTO}")
@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0"])  # bilinear and bicubic
def test_pipeline_prepares_a_photo_as_the_weights_transforms_do(name, tmp_path):
    spec = get_spec(name)
    reference = torchvision.models.get_weight(spec.torchvision_weights).transforms()
    photo = Image.open(PHOTO).convert("RGB")
    expected = reference(photo)  # (C, H, W)
    torch.testing.assert_close(eval_transform(preprocessing(spec))(photo), expected, rtol=0, atol=1e-6)
    # The whole pipeline too: file -> ImageFolder -> worker -> batch.
    (tmp_path / "photos" / "people").mkdir(parents=True)
    shutil.copy(PHOTO, tmp_path / "photos" / "people" / PHOTO.name)
    loader = make_loader(open_dataset(str(tmp_path / "photos")), "val", preprocessing(spec), 1, train=False,
                         layout="NCHW", workers=0, seed=0)
    np.testing.assert_allclose(next(iter(loader)).images[0], expected.numpy(), rtol=0, atol=1e-6)


# --- imports and JAX -----------------------------------------------------------------------------------------------


def test_datasets_import_without_torch_and_pipeline_without_jax():
    code = ("import sys, benchmarks.datasets; assert 'torch' not in sys.modules, 'torch'; "
            "import benchmarks.pipeline; assert 'jax' not in sys.modules, 'jax'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_device_prefetch_puts_batches_on_a_jax_device(image_folder):
    jax = pytest.importorskip("jax")
    loader = make_loader(open_dataset(str(image_folder)), "val", preprocessing(TINY), 5, train=False, layout="NHWC",
                         workers=0, seed=0)
    batches = collect(loader)
    out = list(device_prefetch(batches, "cpu", depth=2))
    assert len(out) == len(batches) == 3
    for (images, labels, batch), original in zip(out, batches):
        assert isinstance(images, jax.Array) and images.devices() == {jax.devices("cpu")[0]}
        assert batch is original
        np.testing.assert_array_equal(np.asarray(images), original.images)
        np.testing.assert_array_equal(np.asarray(labels), original.labels)
