"""Image sets with the Small CNN Zoo's preprocessing, as :class:`xarray.Dataset`.

* ``digits``: scikit-learn's bundled handwritten digits (1,797 real 8×8 images, offline),
  resized to ``image_size`` × ``image_size`` and split into train/test (stratified, seeded).
* ``mnist``, ``fashion_mnist``, ``cifar10``, ``svhn_cropped``: the image sets of the Small
  CNN Zoo (Unterthiner et al. 2020), downloaded once into ``<cache_dir>/<name>/`` with
  :func:`causalxai.data.download.fetch` (MD5-verified, resumable), parsed from their real
  formats, kept at native size (28 or 32) with their official train/test split.

Every image goes through :func:`zoo_preprocess` (``x/255*2-1``, then the mean over colour
channels), the Zoo's input pipeline. With ``raw = x/255`` in [0, 1] that normalisation is
:func:`from_raw` (``2·raw − 1``) and its inverse :func:`to_raw` (``(x + 1)/2``): TRACER sets its
interventions' baseline "before normalisation" in that raw space (paper 004 §4.1).

User data sets (``data.custom``) and the tabular ``breast_cancer`` come from
:mod:`causalxai.data.custom` in the same contract: several channels as ``image(sample, channel,
y, x)``, a tabular row as a 1 × F image (:func:`model_inputs` gives every set as ``(N, C, H, W)``,
:func:`grayscale` the zoo study's one channel).

The returned dataset (written by the workflow as ``dataset.nc``) has dims ``sample``, ``y``,
``x``; variables ``image(sample, y, x)`` float32 and ``label(sample)`` int64; coordinates
``split(sample)`` (``"train"`` samples first, then ``"test"``) and ``source_index(sample)``
(the image's index in the original train or test file, or in sklearn's digits array); and
attributes ``dataset``, ``n_classes``, ``image_size``, ``channels``, ``height``, ``width``, ``kind``
(``image``), ``preprocessing``, ``source``, and
``md5`` (JSON ``{file: md5}``) for downloaded sets.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import tarfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import xarray as xr

from causalxai.data.custom import TABULAR_SETS, load_breast_cancer
from causalxai.data.download import fetch, file_digest, require_downloaded, unsafe_tar_member, verify as check_digests

__all__ = [
    "DATASETS",
    "SOURCES",
    "N_CLASSES",
    "DatasetFileError",
    "from_raw",
    "to_raw",
    "zoo_preprocess",
    "load_digits",
    "download_files",
    "dataset_files",
    "fetch_dataset",
    "read_dataset",
    "load_dataset",
    "model_inputs",
    "grayscale",
]

#: Image sets :func:`load_dataset` knows: the Small CNN Zoo's names plus the offline digits.
DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "svhn_cropped")
N_CLASSES = 10

PREPROCESSING = (
    "uint8 pixels x mapped to x/255*2-1 (range [-1, 1]), then averaged over colour channels "
    "(grayscale), as in the Small CNN Zoo"
)

_MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)


def _files(mirrors: tuple[str, ...], md5s: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    return {name: {"urls": [m + name for m in mirrors], "md5": md5} for name, md5 in md5s.items()}


#: Where each downloaded image set comes from: ``SOURCES[name]["files"][file]`` holds
#: ``urls`` (mirrors, tried in order) and ``md5`` (``None`` disables the check; the
#: download is then only recorded with a warning). Module-level so tests and local mirrors
#: can replace the URLs.
SOURCES: dict[str, dict[str, Any]] = {
    "mnist": {
        "files": _files(
            _MNIST_MIRRORS,
            {
                "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
            },
        ),
    },
    "fashion_mnist": {
        "files": _files(
            _FASHION_MIRRORS,
            {
                "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
            },
        ),
    },
    "cifar10": {
        "files": {
            "cifar-10-python.tar.gz": {
                "urls": ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"],
                "md5": "c58f30108f718f92721af3b95e74349a",
            },
        },
    },
    "svhn_cropped": {
        "files": _files(
            ("http://ufldl.stanford.edu/housenumbers/",),
            {
                "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
                "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
            },
        ),
    },
}


class DatasetFileError(ValueError):
    """A cached image-set file is corrupt, truncated or not in the expected format."""


def _bad_file(path: Path, what: str, reason: str) -> DatasetFileError:
    return DatasetFileError(
        f"{path} is not a valid {what}: {reason}. It is probably corrupt or half-written: "
        f"delete it (`rm {path}`) and run again to download it anew."
    )


# --------------------------------------------------------------------------- preprocessing


def from_raw(raw: Any) -> Any:
    """The images' normalisation: raw pixels ``raw = x/255`` in [0, 1] to ``2·raw − 1`` in [−1, 1].

    Args:
        raw: an array or tensor of raw values (any shape; pixel by pixel).

    Returns:
        The normalised values, same type and shape.
    """
    return raw * 2.0 - 1.0


def to_raw(x: Any) -> Any:
    """The inverse of :func:`from_raw`: normalised ``x`` in [−1, 1] to ``raw = (x + 1)/2`` in [0, 1].

    Args:
        x: an array or tensor of normalised values (any shape).

    Returns:
        The raw values, same type and shape.
    """
    return (x + 1.0) / 2.0


def zoo_preprocess(images: np.ndarray) -> np.ndarray:
    """The Small CNN Zoo's input pipeline: ``x/255*2-1``, then the mean over colour channels.

    Args:
        images: uint8 (or 0..255 valued) images, ``(N, H, W)`` or ``(N, H, W, C)``.

    Returns:
        float32 ``(N, 1, H, W)`` in ``[-1, 1]``, native size kept.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"zoo_preprocess expects images (N, H, W) or (N, H, W, C), got shape {images.shape}")
    n, h, w, _ = images.shape
    out = np.empty((n, 1, h, w), dtype=np.float32)
    step = 8192  # bounded memory for 60k-73k colour images
    for start in range(0, n, step):
        x = images[start : start + step].astype(np.float32)
        out[start : start + step, 0] = from_raw(x / 255.0).mean(axis=-1)
    return out


def _assemble(
    name: str,
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray, np.ndarray],
    attrs: Mapping[str, Any],
    *,
    n_classes: int = N_CLASSES,
) -> xr.Dataset:
    """Build the ``dataset.nc`` contract from preprocessed (image, label, index) triples: images
    ``(N, H, W)`` or ``(N, C, H, W)``; one channel gives ``image(sample, y, x)``, several
    ``image(sample, channel, y, x)`` (user data sets, :mod:`causalxai.data.custom`)."""
    (xtr, ytr, itr), (xte, yte, ite) = train, test
    image = np.concatenate([xtr, xte]).astype(np.float32, copy=False)
    label = np.concatenate([ytr, yte]).astype(np.int64)
    if image.ndim == 4 and image.shape[1] == 1:
        image = image[:, 0]
    dims = ("sample", "channel", "y", "x") if image.ndim == 4 else ("sample", "y", "x")
    split = np.array(["train"] * len(ytr) + ["test"] * len(yte), dtype=str)
    source_index = np.concatenate([itr, ite]).astype(np.int64)
    if label.size and (label.min() < 0 or label.max() >= n_classes):
        raise ValueError(f"{name}: labels outside 0..{n_classes - 1} ({np.unique(label).tolist()})")
    return xr.Dataset(
        {
            "image": (dims, image, {"long_name": "preprocessed image", "units": "1"}),
            "label": (("sample",), label, {"long_name": f"class label (0..{n_classes - 1})"}),
        },
        coords={
            "split": (("sample",), split, {"long_name": "train or test"}),
            "source_index": (("sample",), source_index, {"long_name": "index in the original file/array"}),
        },
        attrs={
            "dataset": name,
            "n_classes": int(n_classes),
            "image_size": int(image.shape[-1]),
            "channels": int(image.shape[1]) if image.ndim == 4 else 1,
            "height": int(image.shape[-2]),
            "width": int(image.shape[-1]),
            "kind": "image",
            "preprocessing": PREPROCESSING + ".",
            **attrs,
        },
    )


# --------------------------------------------------------------------------- digits


def load_digits(image_size: int = 28, test_fraction: float = 0.2, seed: int = 0) -> xr.Dataset:
    """scikit-learn's bundled handwritten digits, resized and split (offline).

    The 1,797 8×8 images (values 0..16) are scaled to 0..255, resized bilinearly to
    ``image_size`` × ``image_size`` (:func:`torch.nn.functional.interpolate`), mapped to
    ``x/255*2-1`` and split into train/test with a seeded, stratified
    :func:`sklearn.model_selection.train_test_split`.

    Args:
        image_size: side length of the resized images (28 lets the MNIST networks run unchanged).
        test_fraction: share of images held out for testing, in (0, 1).
        seed: seed of the split.
    """
    import torch
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    if int(image_size) < 1:
        raise ValueError(f"load_digits: image_size must be positive, got {image_size}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"load_digits: test_fraction must be in (0, 1), got {test_fraction}")
    image_size = int(image_size)
    digits = sk_load_digits()
    images = digits.images.astype(np.float32) * (255.0 / 16.0)
    labels = digits.target.astype(np.int64)
    with torch.no_grad():
        resized = torch.nn.functional.interpolate(
            torch.from_numpy(images)[:, None], size=(image_size, image_size), mode="bilinear", align_corners=False
        )[:, 0].numpy()
    pre = np.clip(from_raw(resized / 255.0), -1.0, 1.0).astype(np.float32)
    index = np.arange(labels.size)
    itr, ite = train_test_split(index, test_size=float(test_fraction), random_state=int(seed), stratify=labels)
    itr, ite = np.sort(itr), np.sort(ite)
    return _assemble(
        "digits",
        (pre[itr], labels[itr], itr),
        (pre[ite], labels[ite], ite),
        {
            "source": "sklearn.datasets.load_digits",
            "preprocessing": (
                f"8x8 digits (0..16) scaled to 0..255, resized bilinearly to {image_size}x{image_size}, "
                f"then {PREPROCESSING}."
            ),
            "test_fraction": float(test_fraction),
            "split_seed": int(seed),
        },
    )


# --------------------------------------------------------------------------- MNIST-style IDX

_IDX_IMAGES, _IDX_LABELS = 2051, 2049


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse a gzipped IDX file of unsigned bytes (``magic`` 2051: images, 2049: labels)."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise _bad_file(path, "gzip file", f"{type(exc).__name__}: {exc}") from exc
    what = f"IDX {'image' if magic == _IDX_IMAGES else 'label'} file"
    if len(data) < 4:
        raise _bad_file(path, what, f"only {len(data)} bytes, no IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise _bad_file(path, what, f"magic number {found}, expected {magic}")
    ndim = magic & 0xFF  # 0x0803: unsigned bytes, 3 dims; 0x0801: unsigned bytes, 1 dim
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _bad_file(path, what, f"only {len(data)} bytes, shorter than its {header}-byte header")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(dims))
    if len(data) - header != size:
        raise _bad_file(path, what,
                        f"header says {'x'.join(map(str, dims))} = {size} bytes, found {len(data) - header}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _parse_idx_set(paths: Mapping[str, Path]) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    out = []
    for prefix in ("train", "t10k"):
        img_path, lab_path = paths[f"{prefix}-images-idx3-ubyte.gz"], paths[f"{prefix}-labels-idx1-ubyte.gz"]
        images = _read_idx(img_path, _IDX_IMAGES)
        labels = _read_idx(lab_path, _IDX_LABELS)
        if images.shape[0] != labels.shape[0]:
            raise _bad_file(
                lab_path, "IDX label file", f"{labels.shape[0]} labels for {images.shape[0]} images in {img_path.name}"
            )
        _check_labels(labels, lab_path, "IDX label file")
        out.append((images, labels.astype(np.int64)))
    return out[0], out[1]


def _check_labels(labels: np.ndarray, path: Path, what: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise _bad_file(path, what, f"labels outside 0..{N_CLASSES - 1}: {np.unique(labels)[:20].tolist()}")


# --------------------------------------------------------------------------- CIFAR-10

_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"

# The only globals a CIFAR batch pickle needs (a dict of bytes, lists and a uint8 array).
_PICKLE_ALLOWED = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("copyreg", "_reconstructor"),
    ("builtins", "bytearray"),
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that refuses everything but numpy arrays (no code from the archive runs)."""

    def find_class(self, module: str, name: str) -> Any:
        canonical = "numpy._core" + module[len("numpy.core") :] if module.startswith("numpy.core") else module
        if (canonical, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        if canonical.startswith("numpy._core") and int(np.__version__.split(".")[0]) < 2:
            canonical = "numpy.core" + canonical[len("numpy._core") :]  # numpy 1.x name
        return super().find_class(canonical, name)


def _get(batch: Mapping[Any, Any], key: str) -> Any:
    if key.encode() in batch:
        return batch[key.encode()]
    if key in batch:
        return batch[key]
    raise KeyError(key)


def _parse_cifar10(paths: Mapping[str, Path]) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Read the python batches straight from the (safety-checked) tar.gz, without extracting."""
    path = paths["cifar-10-python.tar.gz"]
    what = "CIFAR-10 python archive"
    batches: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                reason = unsafe_tar_member(member)
                if reason:
                    raise DatasetFileError(
                        f"{path}: archive member {member.name!r} {reason}; refusing to read this archive. "
                        f"Delete it (`rm {path}`) and download it again from a trusted source."
                    )
            by_name = {PurePosixPath(m.name).as_posix(): m for m in members if m.isfile()}
            for batch_name in (*_CIFAR_TRAIN, _CIFAR_TEST):
                member = by_name.get(f"{_CIFAR_FOLDER}/{batch_name}")
                if member is None:
                    raise _bad_file(path, what, f"member {_CIFAR_FOLDER}/{batch_name} is missing")
                raw = tar.extractfile(member).read()
                try:
                    batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
                    data = np.asarray(_get(batch, "data"))
                    labels = np.asarray(_get(batch, "labels"), dtype=np.int64)
                except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
                    raise _bad_file(path, what, f"batch {batch_name}: {type(exc).__name__}: {exc}") from exc
                if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                    raise _bad_file(path, what,
                                    f"batch {batch_name}: data is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
                if labels.shape != (data.shape[0],):
                    raise _bad_file(path, what, f"batch {batch_name}: {labels.size} labels for {data.shape[0]} images")
                _check_labels(labels, path, what)
                # rows are channel-major (1024 red, 1024 green, 1024 blue): to (N, H, W, C)
                batches[batch_name] = (data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise _bad_file(path, what, f"{type(exc).__name__}: {exc}") from exc
    train = (
        np.concatenate([batches[b][0] for b in _CIFAR_TRAIN]),
        np.concatenate([batches[b][1] for b in _CIFAR_TRAIN]),
    )
    return train, batches[_CIFAR_TEST]


# --------------------------------------------------------------------------- SVHN


def _read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    what = "SVHN .mat file"
    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises ValueError, OSError, TypeError, MatReadError, ... on bad files
        raise _bad_file(path, what, f"{type(exc).__name__}: {exc}") from exc
    if "X" not in mat or "y" not in mat:
        raise _bad_file(path, what,
                        f"variables X and y expected, found {sorted(k for k in mat if not k.startswith('__'))}")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"])
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise _bad_file(path, what, f"X has shape {x.shape}, expected (32, 32, 3, N)")
    if x.dtype != np.uint8:
        raise _bad_file(path, what, f"X has dtype {x.dtype}, expected uint8")
    y = y.reshape(-1).astype(np.int64)
    if y.size != x.shape[3]:
        raise _bad_file(path, what, f"{y.size} labels for {x.shape[3]} images")
    if y.size and (y.min() < 1 or y.max() > 10):
        raise _bad_file(path, what, f"labels outside 1..10: {np.unique(y)[:20].tolist()}")
    y[y == 10] = 0  # SVHN stores the digit 0 as label 10
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), y


def _parse_svhn(paths: Mapping[str, Path]) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    return _read_svhn(paths["train_32x32.mat"]), _read_svhn(paths["test_32x32.mat"])


_PARSERS: dict[
    str, Callable[[Mapping[str, Path]], tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]]
] = {
    "mnist": _parse_idx_set,
    "fashion_mnist": _parse_idx_set,
    "cifar10": _parse_cifar10,
    "svhn_cropped": _parse_svhn,
}


# --------------------------------------------------------------------------- entry point


#: how the workflow downloads a missing image-set file (for the messages of :func:`read_dataset`)
DOWNLOAD_HINT = "fetch_dataset (the workflow's rule download_images: `snakemake --cores 1 --until download_images`)"


def download_files(name: str) -> dict[str, dict[str, Any]]:
    """The files image set ``name`` is read from: ``{file: {"urls": [...], "md5": ...}}``
    (:data:`SOURCES`; ``{}`` for ``digits``, which needs no download).

    Raises:
        ValueError: unknown ``name``.
    """
    if name in TABULAR_SETS:
        return {}
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS + TABULAR_SETS)}")
    if name == "digits":
        return {}
    return {
        f: {"urls": [spec["urls"]] if isinstance(spec["urls"], str) else list(spec["urls"]), "md5": spec.get("md5")}
        for f, spec in SOURCES[name]["files"].items()
    }


def dataset_files(name: str, cache_dir: str | os.PathLike) -> dict[str, Path]:
    """Where the downloaded files of ``name`` lie: ``{file: <cache_dir>/<name>/<file>}``
    (``{}`` for ``digits``)."""
    return {f: Path(cache_dir) / name / f for f in download_files(name)}


def fetch_dataset(name: str, cache_dir: str | os.PathLike, *, progress: bool = True) -> dict[str, Path]:
    """Download the files of image set ``name`` into ``<cache_dir>/<name>/`` (resumable,
    MD5-verified; files already there are verified and kept) and return :func:`dataset_files`.

    Raises:
        ValueError: unknown ``name``.
        causalxai.data.download.ChecksumError: a cached or downloaded file has the wrong MD5.
        causalxai.data.download.DownloadError: a file could not be downloaded.
    """
    paths = dataset_files(name, cache_dir)
    for file_name, spec in download_files(name).items():
        fetch(spec["urls"], paths[file_name], md5=spec["md5"], progress=progress)
    return paths


def read_dataset(name: str, files: Mapping[str, str | os.PathLike], *, verify: bool = True) -> xr.Dataset:
    """Read a downloaded image set from local files only (never the network).

    Args:
        name: one of :data:`DATASETS` but ``digits`` (use :func:`load_digits`).
        files: ``{file: path}`` for every file of :func:`download_files` (``name``); e.g.
            :func:`dataset_files` of the cache, or :func:`fetch_dataset`'s result.
        verify: check each file's MD5 against :data:`SOURCES` (the files' digests are
            computed anyway for the ``md5`` attribute when no MD5 is known).

    Raises:
        ValueError: unknown ``name``, ``digits``, or ``files`` lacks one of the set's files.
        causalxai.data.download.MissingDownloadError: a file is not there (download it first:
            :func:`fetch_dataset`, in the workflow rule ``download_images``).
        causalxai.data.download.ChecksumError: a file has the wrong MD5.
        DatasetFileError: a file is corrupt or not in the expected format.
    """
    specs = download_files(name)
    if not specs:
        raise ValueError(f"read_dataset: {name!r} is not a downloaded image set (use load_digits)")
    lacking = [f for f in specs if f not in files]
    if lacking:
        raise ValueError(f"read_dataset({name!r}): files lacks {lacking} (a {name} set is read from {list(specs)})")
    paths = {f: require_downloaded(files[f], DOWNLOAD_HINT) for f in specs}
    if verify:
        for f, spec in specs.items():
            check_digests(paths[f], md5=spec["md5"])
    md5s = {f: spec["md5"] or file_digest(paths[f], "md5") for f, spec in specs.items()}
    (xtr, ytr), (xte, yte) = _PARSERS[name](paths)
    source = "; ".join(" | ".join(spec["urls"]) for spec in specs.values())
    return _assemble(
        name,
        (zoo_preprocess(xtr), ytr, np.arange(len(ytr))),
        (zoo_preprocess(xte), yte, np.arange(len(yte))),
        {"source": source, "md5": json.dumps(md5s, sort_keys=True)},
    )


def model_inputs(dataset: xr.Dataset) -> np.ndarray:
    """The images of ``dataset.nc`` as the models take them, ``(N, C, H, W)`` float32: ``image``
    with its ``channel`` dimension, or one channel added (tabular rows: ``(N, 1, 1, F)``)."""
    image = dataset["image"]
    if "channel" in image.dims:
        return np.asarray(image.transpose("sample", "channel", "y", "x").values, dtype=np.float32)
    return np.asarray(image.transpose("sample", "y", "x").values, dtype=np.float32)[:, None]


def grayscale(dataset: xr.Dataset) -> np.ndarray:
    """The images of ``dataset.nc`` as one channel ``(N, H, W)`` float32: the mean over ``channel``
    when there are several (the Small CNN Zoo's convention, :func:`zoo_preprocess`; the affine
    normalisation commutes with the mean), else ``image`` itself. The zoo study's input."""
    return model_inputs(dataset).mean(axis=1, dtype=np.float32)


def load_dataset(
    name: str,
    *,
    cache_dir: str | os.PathLike,
    image_size: int = 28,
    test_fraction: float = 0.2,
    seed: int = 0,
    progress: bool = True,
) -> xr.Dataset:
    """Load an image set by name, downloading it into ``cache_dir`` if needed.

    :func:`fetch_dataset`, then :func:`read_dataset` (the workflow runs the two as separate
    rules, ``download_images`` and ``dataset``, so that only the first touches the network).

    Args:
        name: one of :data:`DATASETS` or :data:`~causalxai.data.custom.TABULAR_SETS`
            (``breast_cancer``: :func:`~causalxai.data.custom.load_breast_cancer`).
        cache_dir: downloads go to ``<cache_dir>/<name>/`` and are reused (MD5-verified).
        image_size: ``digits`` only: side length after resizing. Downloaded sets keep their
            native size (28 for MNIST/Fashion-MNIST, 32 for CIFAR-10/SVHN), as in the Zoo.
        test_fraction: ``digits`` and ``breast_cancer`` only: held-out share. Downloaded sets use their official
            train/test files.
        seed: ``digits`` and ``breast_cancer`` only: seed of the split (downloaded sets are deterministic).
        progress: log the downloads' progress.

    Raises:
        ValueError: unknown ``name``.
        causalxai.data.download.ChecksumError: a cached or downloaded file has the wrong MD5.
        causalxai.data.download.DownloadError: a file could not be downloaded.
        DatasetFileError: a cached file is corrupt or not in the expected format.
    """
    if name in TABULAR_SETS:
        return load_breast_cancer(test_fraction=test_fraction, seed=seed)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS + TABULAR_SETS)}")
    if name == "digits":
        return load_digits(image_size=image_size, test_fraction=test_fraction, seed=seed)
    # fetch verified every file with a known MD5 (existing or downloaded): no second pass
    return read_dataset(name, fetch_dataset(name, cache_dir, progress=progress), verify=False)
