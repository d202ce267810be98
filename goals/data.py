"""Data sets of the experiments, held as tensors on the training device.

Three data sets are known (:data:`DATASETS`):

- ``digits``: scikit-learn's handwritten digits (ships inside the scikit-learn wheel, so it needs
  no network). 1,797 images of 8x8 pixels, 10 classes. A fixed stratified split keeps 1,437
  images for training and 360 for testing (``random_state=0``). Pixels are scaled from [0, 16] to
  [0, 1], then normalised with the training set's mean and standard deviation. No augmentation.
- ``cifar10``: 50,000 + 10,000 colour images of 32x32 pixels, 10 classes.
- ``cifar100``: the same images size, 100 classes.

CIFAR data is looked for under ``root`` (default :func:`goals.paths.default_data_root`) in two
layouts, first match wins:

1. torchvision's download folder: ``<root>/cifar-10-batches-py`` (``cifar-100-python`` for
   CIFAR-100), read through :mod:`torchvision.datasets`;
2. a folder of images in class subfolders, ``train/<class>/*.png|jpg`` and ``test/<class>/...``,
   at ``<root>`` itself or at ``<root>/cifar10``, ``<root>/cifar10-jpeg`` or ``<root>/cifar-10``
   (``cifar100``, ``cifar100-jpeg``, ``cifar-100`` for CIFAR-100). Class indices follow the
   sorted subfolder names of ``train/``.

Nothing is downloaded unless ``download=True``; then torchvision fetches layout 1 into ``root``.
Missing or unreadable data raises :class:`DataNotFoundError`, whose message says what was expected,
where it was looked for, and how to fix it.

CIFAR images are normalised with the usual per-channel means and standard deviations and come with
:class:`RandomCropFlip`, the standard augmentation (random crop of a 4-pixel padded image, random
horizontal flip), applied batch-wise on the device with the caller's :class:`torch.Generator`.

Decoding an image folder takes about 20 s for the full CIFAR-10 on one core. A full (not subset)
decode of a folder is therefore cached as ``.goals-cache-<split>-<key>.pt`` inside that folder
(uint8 tensors, about 150 MB for CIFAR-10's training split). The key hashes every file's name,
size and modification time, so a changed folder is decoded again. The cache is skipped silently
when the folder is not writable; delete the file to reclaim the space. Data folders are ignored
by git (``data/*``), so the cache never enters the repository.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from goals.paths import default_data_root

logger = logging.getLogger(__name__)

#: Data set names accepted by :func:`load_dataset`.
DATASETS: tuple[str, ...] = ("digits", "cifar10", "cifar100")

#: Image file suffixes read from class-subfolder layouts.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")

#: Per-channel mean and standard deviation of the CIFAR training sets (pixels in [0, 1]).
CIFAR_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

_CIFAR_LAYOUTS: dict[str, dict[str, object]] = {
    "cifar10": {
        "torchvision_dir": "cifar-10-batches-py",
        "folders": ("cifar10", "cifar10-jpeg", "cifar-10"),
        "num_classes": 10,
    },
    "cifar100": {
        "torchvision_dir": "cifar-100-python",
        "folders": ("cifar100", "cifar100-jpeg", "cifar-100"),
        "num_classes": 100,
    },
}

#: Seed of the fixed subset selection: every run of a problem sees the same examples.
SUBSET_SEED = 0

Augmentation = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


class DataNotFoundError(RuntimeError):
    """A data set is missing or unreadable; the message says what, where, and how to fix it."""


@dataclass
class Dataset:
    """A classification data set held as tensors on one device.

    Attributes:
        name: data set name (one of :data:`DATASETS`).
        train_inputs: float32 images ``(N, C, H, W)``, normalised.
        train_targets: int64 class indices ``(N,)``.
        test_inputs: float32 test images ``(M, C, H, W)``, normalised.
        test_targets: int64 test class indices ``(M,)``.
        num_classes: number of classes.
        classes: class names, index order.
        source: where the data came from (a path or ``"scikit-learn"``), for provenance.
        augment: training-batch augmentation ``augment(x, generator) -> x`` on the device, or
            ``None`` when the data set has none.
    """

    name: str
    train_inputs: torch.Tensor
    train_targets: torch.Tensor
    test_inputs: torch.Tensor
    test_targets: torch.Tensor
    num_classes: int
    classes: tuple[str, ...]
    source: str
    augment: Augmentation | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image."""
        return tuple(self.train_inputs.shape[1:])  # type: ignore[return-value]

    @property
    def in_channels(self) -> int:
        """Number of image channels."""
        return int(self.train_inputs.shape[1])

    @property
    def image_size(self) -> int:
        """Height (equal to width) of one image in pixels."""
        return int(self.train_inputs.shape[2])


class RandomCropFlip:
    """Random crop of a padded image and random horizontal flip, for a whole batch at once.

    Each image gets its own crop offset in ``[0, 2 * padding]`` along both axes and a flip with
    probability 1/2. Padding uses the normalised value of a black pixel, as padding before
    normalisation would. Random numbers come from ``generator`` (drawn on the generator's device,
    then moved to the batch's), so a seeded generator gives the same batches on every machine that
    uses the same device type.

    Args:
        padding: pixels of padding on each side.
        fill: per-channel value of the padding, in normalised units.
    """

    def __init__(self, padding: int, fill: Sequence[float]) -> None:
        self.padding = int(padding)
        self.fill = torch.tensor(list(fill), dtype=torch.float32)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.padding
        draw_device = generator.device if generator is not None else x.device

        offsets = torch.randint(0, 2 * p + 1, (2, n), generator=generator, device=draw_device)
        flips = torch.rand(n, generator=generator, device=draw_device) < 0.5
        offsets, flips = offsets.to(x.device), flips.to(x.device)

        # Padded canvas of the fill value with the images in the middle (pixels copied exactly).
        fill = self.fill.to(device=x.device, dtype=x.dtype).view(1, c, 1, 1)
        padded = fill.expand(n, c, h + 2 * p, w + 2 * p).clone()
        padded[:, :, p:p + h, p:p + w] = x

        # Gather each image's crop; a flip reads the crop's columns in reverse order.
        rows = offsets[0].view(n, 1) + torch.arange(h, device=x.device)
        cols = offsets[1].view(n, 1) + torch.arange(w, device=x.device)
        cols = torch.where(flips.view(n, 1), cols.flip(1), cols)
        # One gather along the flattened padded image (faster than four-index indexing).
        flat_index = rows.view(n, h, 1) * (w + 2 * p) + cols.view(n, 1, w)
        flat_index = flat_index.view(n, 1, h * w).expand(n, c, h * w)
        return padded.flatten(2).gather(2, flat_index).view(n, c, h, w)

    def __repr__(self) -> str:
        return f"RandomCropFlip(padding={self.padding}, flip=0.5)"


def balanced_subset(targets: np.ndarray, size: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """Pick ``size`` indices with classes as balanced as possible, reproducibly.

    Indices are shuffled with ``seed``, then ordered by their rank within their own class, so the
    first ``size`` take one example of each class in turn.

    Args:
        targets: class index of every example.
        size: number of indices wanted (capped at ``len(targets)``).
        seed: seed of the shuffle; fixed so that all runs share the subset.

    Returns:
        The chosen indices, sorted ascending.
    """
    targets = np.asarray(targets)
    if size >= len(targets):
        return np.arange(len(targets))
    order = np.random.default_rng(seed).permutation(len(targets))
    rank = np.empty(len(targets), dtype=np.int64)
    for label in np.unique(targets):
        members = order[targets[order] == label]
        rank[members] = np.arange(len(members))
    chosen = order[np.argsort(rank[order], kind="stable")[:size]]
    return np.sort(chosen)


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    subset: int | None = None,
    device: str | torch.device = "cpu",
    download: bool = False,
    test_subset: int | None = None,
) -> Dataset:
    """Load a data set as normalised tensors on ``device``.

    Args:
        name: one of :data:`DATASETS`.
        root: data folder; ``None`` means :func:`goals.paths.default_data_root`. Unused by
            ``digits``.
        subset: keep this many training examples (class-balanced, the same for every seed and run);
            ``None`` keeps all.
        device: device the tensors are placed on.
        download: let torchvision download CIFAR into ``root`` when it is not found there.
        test_subset: keep this many test examples (chosen the same way); ``None`` keeps all.

    Returns:
        The :class:`Dataset`.

    Raises:
        ValueError: unknown ``name`` or a non-positive subset size.
        DataNotFoundError: the data is missing or unreadable.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    for field, value in (("subset", subset), ("test_subset", test_subset)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise ValueError(f"{field} must be a positive integer or None, got {value!r}")

    if name == "digits":
        arrays = _digits_arrays()
    else:
        arrays = _cifar_arrays(name, Path(root) if root is not None else default_data_root(),
                               download, subset, test_subset)
    train_x, train_y, test_x, test_y, classes, source = arrays

    # Subsets of in-memory arrays (image folders already decoded only their subset).
    if subset is not None and len(train_y) > subset:
        keep = balanced_subset(train_y, subset)
        train_x, train_y = train_x[keep], train_y[keep]
    if test_subset is not None and len(test_y) > test_subset:
        keep = balanced_subset(test_y, test_subset)
        test_x, test_y = test_x[keep], test_y[keep]

    device = torch.device(device)
    if name == "digits":
        return _finish_digits(train_x, train_y, test_x, test_y, classes, source, device)
    return _finish_cifar(name, train_x, train_y, test_x, test_y, classes, source, device)


def check_dataset(name: str, root: str | os.PathLike | None = None, download: bool = False) -> str:
    """Check, without decoding anything, that a data set can be found.

    Used to validate a run or a sweep before any work starts.

    Args:
        name: one of :data:`DATASETS`.
        root: data folder (``None``: the default).
        download: whether a missing CIFAR folder would be downloaded.

    Returns:
        A short description of where the data will come from.

    Raises:
        ValueError: unknown ``name``.
        DataNotFoundError: the data is not there and ``download`` is off.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if name == "digits":
        return "scikit-learn"
    root_path = Path(root) if root is not None else default_data_root()
    found = _locate_cifar(name, root_path)
    if found is None:
        if download:
            return f"torchvision download into {root_path}"
        raise DataNotFoundError(_missing_message(name, root_path))
    return f"{found[0]}: {found[1]}"


# --- digits -------------------------------------------------------------------------------------

_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], str]


def _digits_arrays() -> _Arrays:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float32)[:, None, :, :] / 16.0
    targets = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, targets, test_size=360, stratify=targets, random_state=0
    )
    classes = tuple(str(label) for label in range(10))
    return train_x, train_y, test_x, test_y, classes, "scikit-learn load_digits"


def _finish_digits(train_x, train_y, test_x, test_y, classes, source, device) -> Dataset:
    mean, std = float(train_x.mean()), float(train_x.std())
    to = lambda a: torch.as_tensor(a).to(device)  # noqa: E731
    return Dataset(
        name="digits",
        train_inputs=(to(train_x) - mean) / std,
        train_targets=to(train_y),
        test_inputs=(to(test_x) - mean) / std,
        test_targets=to(test_y),
        num_classes=10,
        classes=classes,
        source=source,
        augment=None,
    )


# --- CIFAR --------------------------------------------------------------------------------------


def _locate_cifar(name: str, root: Path) -> tuple[str, Path] | None:
    layout = _CIFAR_LAYOUTS[name]
    torchvision_dir = root / str(layout["torchvision_dir"])
    if torchvision_dir.is_dir():
        return "torchvision", torchvision_dir
    for folder in (root, *(root / sub for sub in layout["folders"])):  # type: ignore[union-attr]
        if (folder / "train").is_dir() and (folder / "test").is_dir():
            return "image-folder", folder
    return None


def _missing_message(name: str, root: Path) -> str:
    layout = _CIFAR_LAYOUTS[name]
    folders = ", ".join(str(root / sub) for sub in layout["folders"])  # type: ignore[union-attr]
    return (
        f"{name} not found under {root}. Expected either torchvision's folder "
        f"{root / str(layout['torchvision_dir'])} or a folder of images in class subfolders "
        f"(train/<class>/*.png|jpg and test/<class>/...) at {root} or one of: {folders}. "
        f"Fix: unpack the data there, point the data root elsewhere (config field data_root, "
        f"or the GOALS_DATA_ROOT environment variable), or allow a download (download=true)."
    )


def _cifar_arrays(name, root, download, subset, test_subset) -> _Arrays:
    found = _locate_cifar(name, root)
    if found is None and download:
        _download_cifar(name, root)
        found = _locate_cifar(name, root)
    if found is None:
        raise DataNotFoundError(_missing_message(name, root))

    kind, folder = found
    if kind == "torchvision":
        return _read_torchvision(name, folder)
    train_x, train_y, classes = _read_image_folder(folder / "train", None, subset)
    test_x, test_y, _ = _read_image_folder(folder / "test", classes, test_subset)
    expected = int(_CIFAR_LAYOUTS[name]["num_classes"])  # type: ignore[arg-type]
    if len(classes) != expected:
        raise DataNotFoundError(
            f"{folder / 'train'} has {len(classes)} class subfolders, {name} needs {expected}. "
            f"Fix: check that the folder holds {name} in train/<class>/ and test/<class>/."
        )
    return train_x, train_y, test_x, test_y, classes, str(folder)


def _download_cifar(name: str, root: Path) -> None:
    dataset_cls = _torchvision_class(name)
    logger.info("downloading %s into %s", name, root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            dataset_cls(str(root), train=train, download=True)
    except Exception as error:  # network errors come in many types
        raise DataNotFoundError(
            f"downloading {name} into {root} failed ({type(error).__name__}: {error}). Fix: check "
            f"the network, or place torchvision's {_CIFAR_LAYOUTS[name]['torchvision_dir']} "
            f"folder or an image folder in {root} by hand."
        ) from error


def _torchvision_class(name: str) -> type:
    import torchvision

    return torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100


def _read_torchvision(name: str, folder: Path) -> _Arrays:
    dataset_cls = _torchvision_class(name)
    parts = []
    try:
        for train in (True, False):
            part = dataset_cls(str(folder.parent), train=train, download=False)
            parts.append((np.asarray(part.data), np.asarray(part.targets, dtype=np.int64)))
            classes = tuple(part.classes)
    except (RuntimeError, OSError, pickle.UnpicklingError, EOFError, KeyError,
            ValueError) as error:
        raise DataNotFoundError(
            f"{folder} exists but could not be read as torchvision's {name} "
            f"({type(error).__name__}: {error}). Fix: delete the folder and download again "
            f"(download=true), or replace it with an intact copy."
        ) from error
    (train_x, train_y), (test_x, test_y) = parts
    return train_x, train_y, test_x, test_y, classes, str(folder)


def _list_image_folder(split_dir: Path, classes: tuple[str, ...] | None):
    found = tuple(sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir()))
    if classes is None:
        classes = found
    elif set(found) != set(classes):
        raise DataNotFoundError(
            f"{split_dir} has class subfolders {list(found)}, but train/ has {list(classes)}. "
            f"Fix: give train/ and test/ the same class subfolders."
        )
    files, targets = [], []
    for label, class_name in enumerate(classes):
        names = sorted(
            entry.name for entry in os.scandir(split_dir / class_name)
            if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES)
        )
        files.extend(split_dir / class_name / file_name for file_name in names)
        targets.extend([label] * len(names))
    if not files:
        raise DataNotFoundError(
            f"{split_dir} holds no images ({'/'.join(IMAGE_SUFFIXES)}) in class subfolders. "
            f"Fix: put images at {split_dir}/<class>/<name>.png or .jpg."
        )
    return files, np.asarray(targets, dtype=np.int64), classes


def _read_image_folder(split_dir: Path, classes: tuple[str, ...] | None, subset: int | None):
    files, targets, classes = _list_image_folder(split_dir, classes)
    keep = balanced_subset(targets, subset) if subset is not None else np.arange(len(files))
    full = len(keep) == len(files)
    files, targets = [files[i] for i in keep], targets[keep]

    cache = _cache_path(split_dir, files) if full else None
    if cache is not None and cache.is_file():
        try:
            stored = torch.load(cache, weights_only=True)
            return stored["images"].numpy(), stored["targets"].numpy(), classes
        except Exception as error:  # an unreadable cache is rebuilt, never trusted
            logger.warning("ignoring unreadable cache %s (%s)", cache, error)

    images = _decode_images(files)
    if cache is not None:
        _write_cache(cache, images, targets)
    return images, targets, classes


def _decode_images(files: list[Path]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    logger.info("decoding %d images from %s", len(files), files[0].parent.parent)
    images = None
    for index, path in enumerate(files):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, UnidentifiedImageError, ValueError) as error:
            raise DataNotFoundError(
                f"cannot read image {path} ({type(error).__name__}: {error}). "
                f"Fix: replace or delete the corrupt file."
            ) from error
        if images is None:
            images = np.empty((len(files), *pixels.shape), dtype=np.uint8)
        if pixels.shape != images.shape[1:]:
            raise DataNotFoundError(
                f"image {path} is {pixels.shape[1]}x{pixels.shape[0]} pixels, the others are "
                f"{images.shape[2]}x{images.shape[1]}. Fix: all images must have one size."
            )
        images[index] = pixels
    return images


def _cache_path(split_dir: Path, files: list[Path]) -> Path | None:
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(split_dir)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return split_dir.parent / f".goals-cache-{split_dir.name}-{digest.hexdigest()[:16]}.pt"


def _write_cache(cache: Path, images: np.ndarray, targets: np.ndarray) -> None:
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        torch.save({"images": torch.from_numpy(images), "targets": torch.from_numpy(targets)}, tmp)
        os.replace(tmp, cache)
        logger.info("cached decoded images in %s", cache)
    except OSError as error:
        logger.debug("not caching decoded images in %s (%s)", cache, error)
        tmp.unlink(missing_ok=True)


def _finish_cifar(name, train_x, train_y, test_x, test_y, classes, source, device) -> Dataset:
    mean, std = CIFAR_STATS[name]
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)

    def to_tensor(images: np.ndarray) -> torch.Tensor:
        # uint8 (N, H, W, C) crosses to the device first; conversion happens there.
        pixels = torch.as_tensor(np.ascontiguousarray(images)).to(device)
        pixels = pixels.permute(0, 3, 1, 2).float().div_(255.0)
        return ((pixels - mean_t) / std_t).contiguous()

    black = [-m / s for m, s in zip(mean, std)]
    return Dataset(
        name=name,
        train_inputs=to_tensor(train_x),
        train_targets=torch.as_tensor(np.asarray(train_y, dtype=np.int64)).to(device),
        test_inputs=to_tensor(test_x),
        test_targets=torch.as_tensor(np.asarray(test_y, dtype=np.int64)).to(device),
        num_classes=int(_CIFAR_LAYOUTS[name]["num_classes"]),  # type: ignore[arg-type]
        classes=tuple(classes),
        source=source,
        augment=RandomCropFlip(padding=4, fill=black),
    )
