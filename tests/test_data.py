"""Data sets: digits, CIFAR folder layouts built from tiny fixtures, errors and augmentation."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from goals import data as data_module
from goals.data import (
    CIFAR_STATS,
    DataNotFoundError,
    RandomCropFlip,
    balanced_subset,
    check_dataset,
    load_dataset,
)
from goals.paths import DATA_ROOT_ENV, default_data_root, repo_root

torch.set_num_threads(1)

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]


def make_image_folder(folder, per_class=(3, 2), suffix=".png", size=32, seed=0):
    """Write train/<class>/ and test/<class>/ images; return the pixels written, per split."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, count in zip(("train", "test"), per_class):
        written[split] = []
        for label, name in enumerate(CLASSES):
            (folder / split / name).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / split / name / f"{index:04d}{suffix}")
                written[split].append((label, pixels))
    return written


def normalised(pixels, name="cifar10"):
    mean, std = (np.asarray(v, dtype=np.float32) for v in CIFAR_STATS[name])
    return ((pixels.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)


# --- digits -------------------------------------------------------------------------------------


def test_digits_split_shapes_and_normalisation():
    data = load_dataset("digits")
    assert data.train_inputs.shape == (1437, 1, 8, 8)
    assert data.test_inputs.shape == (360, 1, 8, 8)
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    assert data.train_inputs.dtype == torch.float32 and data.train_targets.dtype == torch.int64
    # Normalised with the training statistics.
    assert abs(float(data.train_inputs.mean())) < 1e-4
    assert abs(float(data.train_inputs.std()) - 1.0) < 1e-3
    # Stratified split: every class has 35 to 37 test images.
    counts = torch.bincount(data.test_targets, minlength=10)
    assert int(counts.min()) >= 35 and int(counts.max()) <= 37
    assert data.augment is None


def test_digits_split_is_fixed():
    first, second = load_dataset("digits"), load_dataset("digits")
    assert torch.equal(first.test_inputs, second.test_inputs)
    assert torch.equal(first.train_targets, second.train_targets)


def test_digits_subsets_are_balanced_and_fixed():
    data = load_dataset("digits", subset=100, test_subset=50)
    assert len(data.train_targets) == 100 and len(data.test_targets) == 50
    assert torch.bincount(data.train_targets, minlength=10).tolist() == [10] * 10
    again = load_dataset("digits", subset=100, test_subset=50)
    assert torch.equal(data.train_inputs, again.train_inputs)


def test_bad_names_and_subsets_raise():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="subset"):
        load_dataset("digits", subset=0)


def test_balanced_subset():
    targets = np.array([0] * 50 + [1] * 30 + [2] * 5)
    chosen = balanced_subset(targets, 15)
    assert len(chosen) == 15 and len(set(chosen.tolist())) == 15
    assert np.bincount(targets[chosen]).tolist() == [5, 5, 5]
    chosen = balanced_subset(targets, 30)
    # Class 2 has only 5 members; the rest is shared by the larger classes.
    assert np.bincount(targets[chosen]).tolist() == [13, 12, 5]
    assert balanced_subset(targets, 1000).tolist() == list(range(85))
    assert np.array_equal(balanced_subset(targets, 15), balanced_subset(targets, 15))


# --- CIFAR image folders ------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["cifar10", "cifar10-jpeg", "."])
def test_cifar10_image_folder_png(tmp_path, layout):
    folder = tmp_path / layout
    written = make_image_folder(folder)
    data = load_dataset("cifar10", root=tmp_path)
    assert data.train_inputs.shape == (30, 3, 32, 32)
    assert data.test_inputs.shape == (20, 3, 32, 32)
    assert data.classes == tuple(sorted(CLASSES)) and data.num_classes == 10
    assert data.train_targets.tolist() == [label for label, _ in written["train"]]
    # PNG is lossless: pixels arrive exactly, normalised per channel.
    for index in (0, 7, 29):
        expected = normalised(written["train"][index][1])
        assert np.allclose(data.train_inputs[index].numpy(), expected, atol=1e-5)
    assert isinstance(data.augment, RandomCropFlip)


def test_cifar10_image_folder_jpeg_and_subset(tmp_path):
    make_image_folder(tmp_path / "cifar10", per_class=(4, 2), suffix=".jpg")
    data = load_dataset("cifar10", root=tmp_path, subset=20, test_subset=10)
    assert data.train_inputs.shape == (20, 3, 32, 32) and len(data.test_targets) == 10
    assert torch.bincount(data.train_targets, minlength=10).tolist() == [2] * 10
    assert torch.isfinite(data.train_inputs).all()
    # A subset decode is not cached.
    assert not list((tmp_path / "cifar10").glob(".goals-cache-*"))


def test_full_decode_is_cached_and_invalidated(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10"
    make_image_folder(folder, per_class=(2, 1))
    first = load_dataset("cifar10", root=tmp_path)
    caches = sorted(folder.glob(".goals-cache-*.pt"))
    assert [path.name.split("-")[2] for path in caches] == ["test", "train"]

    def no_decoding(files):
        raise AssertionError("decoded although a cache exists")

    monkeypatch.setattr(data_module, "_decode_images", no_decoding)
    second = load_dataset("cifar10", root=tmp_path)
    assert torch.equal(first.train_inputs, second.train_inputs)

    # A changed file changes the key: the folder is decoded again.
    monkeypatch.undo()
    changed = folder / "train" / "cat" / "0000.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))
    third = load_dataset("cifar10", root=tmp_path)
    cat = CLASSES.index("cat")
    position = int(torch.nonzero(third.train_targets == cat)[0])
    assert np.allclose(third.train_inputs[position].numpy(),
                       normalised(np.zeros((32, 32, 3), dtype=np.uint8)), atol=1e-5)


# --- CIFAR torchvision layout -------------------------------------------------------------------


def write_torchvision_cifar10(root, per_batch=4, seed=0):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        pixels = rng.integers(0, 256, size=(per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        batches[name] = (pixels, labels)
        with open(folder / name, "wb") as handle:
            pickle.dump({"data": pixels, "labels": labels}, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": CLASSES}, handle)
    return batches


def test_cifar10_torchvision_layout(tmp_path, monkeypatch):
    import torchvision

    batches = write_torchvision_cifar10(tmp_path)
    # The fixture cannot match torchvision's checksums of the real files.
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)
    data = load_dataset("cifar10", root=tmp_path)
    assert data.train_inputs.shape == (20, 3, 32, 32) and data.test_inputs.shape == (4, 3, 32, 32)
    assert data.classes == tuple(CLASSES)
    pixels, labels = batches["test_batch"]
    assert data.test_targets.tolist() == labels
    image = pixels[1].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.allclose(data.test_inputs[1].numpy(), normalised(image), atol=1e-5)
    assert check_dataset("cifar10", tmp_path).startswith("torchvision")


def test_cifar100_torchvision_layout(tmp_path, monkeypatch):
    import torchvision

    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    names = [f"class{index:03d}" for index in range(100)]
    for split, count in (("train", 6), ("test", 3)):
        pixels = rng.integers(0, 256, size=(count, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, 100, size=count).tolist()
        with open(folder / split, "wb") as handle:
            pickle.dump({"data": pixels, "fine_labels": labels}, handle)
    with open(folder / "meta", "wb") as handle:
        pickle.dump({"fine_label_names": names}, handle)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)

    data = load_dataset("cifar100", root=tmp_path)
    assert data.num_classes == 100 and data.classes == tuple(names)
    assert data.train_inputs.shape == (6, 3, 32, 32) and data.test_inputs.shape == (3, 3, 32, 32)
    image = pixels[2].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.allclose(data.test_inputs[2].numpy(), normalised(image, "cifar100"), atol=1e-5)
    assert data.test_targets.tolist() == labels


def test_corrupt_torchvision_folder_says_so(tmp_path):
    write_torchvision_cifar10(tmp_path)  # checksums do not match torchvision's
    with pytest.raises(DataNotFoundError, match="could not be read as torchvision's cifar10"):
        load_dataset("cifar10", root=tmp_path)


# --- errors -------------------------------------------------------------------------------------


def test_missing_cifar_names_what_where_and_fix(tmp_path):
    with pytest.raises(DataNotFoundError) as caught:
        load_dataset("cifar10", root=tmp_path / "nowhere")
    message = str(caught.value)
    assert str(tmp_path / "nowhere") in message
    assert "cifar-10-batches-py" in message and "train/<class>" in message
    assert "GOALS_DATA_ROOT" in message and "download" in message
    with pytest.raises(DataNotFoundError, match="cifar-100-python"):
        check_dataset("cifar100", tmp_path)
    assert "download" in check_dataset("cifar10", tmp_path, download=True)


def test_corrupt_image_is_named(tmp_path):
    make_image_folder(tmp_path / "cifar10", per_class=(1, 1))
    broken = tmp_path / "cifar10" / "train" / "dog" / "0000.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(DataNotFoundError, match="dog/0000.png"):
        load_dataset("cifar10", root=tmp_path)


def test_mismatched_classes_and_sizes(tmp_path):
    make_image_folder(tmp_path / "a" / "cifar10", per_class=(1, 1))
    (tmp_path / "a" / "cifar10" / "test" / "truck").rename(tmp_path / "a" / "cifar10" / "test" /
                                                           "lorry")
    with pytest.raises(DataNotFoundError, match="same class subfolders"):
        load_dataset("cifar10", root=tmp_path / "a")

    make_image_folder(tmp_path / "b" / "cifar10", per_class=(1, 1))
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(
        tmp_path / "b" / "cifar10" / "train" / "ship" / "0000.png")
    with pytest.raises(DataNotFoundError, match="one size"):
        load_dataset("cifar10", root=tmp_path / "b")

    (tmp_path / "c" / "cifar10" / "train" / "x").mkdir(parents=True)
    (tmp_path / "c" / "cifar10" / "test").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="holds no images"):
        load_dataset("cifar10", root=tmp_path / "c")


def test_default_data_root_honours_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    assert default_data_root() == repo_root() / "data"
    assert (repo_root() / "pyproject.toml").is_file()
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert default_data_root() == tmp_path
    make_image_folder(tmp_path / "cifar10", per_class=(1, 1))
    assert load_dataset("cifar10").train_inputs.shape[0] == 10


# --- augmentation -------------------------------------------------------------------------------


def test_random_crop_flip_gives_padded_crops():
    torch.manual_seed(0)
    x = torch.randn(64, 3, 8, 8)
    fill = [-1.0, -2.0, -3.0]
    augment = RandomCropFlip(padding=2, fill=fill)
    out = augment(x, torch.Generator().manual_seed(5))
    assert out.shape == x.shape

    padded = torch.stack([torch.full((12, 12), value) for value in fill])[None].repeat(64, 1, 1, 1)
    padded[:, :, 2:10, 2:10] = x
    offsets, flips = set(), 0
    for index in range(64):
        matches = [(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (False, True)
                   if torch.equal(out[index], (padded[index, :, dy:dy + 8, dx:dx + 8].flip(2)
                                               if flip else padded[index, :, dy:dy + 8,
                                                                   dx:dx + 8]))]
        assert matches, f"image {index} is not a padded crop"
        offsets.add(matches[0][:2])
        flips += matches[0][2]
    assert len(offsets) > 5 and 10 < flips < 54

    again = augment(x, torch.Generator().manual_seed(5))
    assert torch.equal(out, again)
    other = augment(x, torch.Generator().manual_seed(6))
    assert not torch.equal(out, other)
