"""Real-data sources, each giving uint8 N×H×W×3 RGB images and int64 labels at one resolution.

`load_real(source, root, resolution, ...)` returns `(train_images, train_labels, test_images,
test_labels)`. Sources with an official test split (cifar10, cifar100, an npz folder, an image
folder with train/ and test/) use it; the others are split with a fixed stratified split.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from pipeline.core.errors import UserError, reading
from pipeline.vocab.names import REAL_SOURCES as SOURCES

def load_real(
    source: str,
    root: str | os.PathLike | None,
    resolution: int,
    test_fraction: float = 0.2,
    seed: int = 0,
    download: bool = False,
    test: str | os.PathLike | None = None,
    bgr: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load `source` as (train_images, train_labels, test_images, test_labels).

    `root` is unused for digits; a data folder for cifar10/cifar100/imagefolder; an npz file or a
    folder holding train.npz and test.npz for npz. `test_fraction` and `seed` only matter where
    the source has no test split of its own. `download` only applies to cifar10/cifar100.
    npz only: `test` is the test split's own file (root is then the train split's file, taken
    whole), e.g. the authors' cifar10-5k-train.npz with CIFAR-10's test split; `bgr` swaps
    files written in BGR (cv2.imread) to RGB.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown real-data source {source!r}; valid: {', '.join(SOURCES)}")
    if int(resolution) != resolution or resolution < 1:
        raise ValueError(f"resolution must be a positive integer, got {resolution!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if source != "digits" and root is None:
        raise ValueError(f"source {source!r} needs a root (data path), got none")
    if source != "npz" and (test is not None or bgr):
        raise ValueError(f"a separate test file and the bgr channel order are for source npz, "
                         f"not {source!r}")

    if source == "digits":
        images, labels = _digits()
        splits = _split(images, labels, test_fraction, seed)
    elif source in ("cifar10", "cifar100"):
        splits = _cifar(source, Path(root), download)
    elif source == "npz":
        splits = _npz(Path(root), test_fraction, seed, None if test is None else Path(test))
        if bgr:  # the channel axis reversed: BGR ↔ RGB
            splits = tuple(np.ascontiguousarray(x[..., ::-1]) if x.ndim == 4 else x
                           for x in splits)
    else:
        splits = _imagefolder(Path(root), resolution, test_fraction, seed)

    tr_x, tr_y, te_x, te_y = splits
    check_labels(tr_y, te_y, f"{source} {root}" if root else source, NUM_CLASSES.get(source))
    return _resize(tr_x, resolution), tr_y, _resize(te_x, resolution), te_y


# Sources whose class count is known: a subset of their classes is still labelled 0..K-1.
NUM_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100}


def check_labels(train: np.ndarray, test: np.ndarray, source: str,
                 num_classes: int | None = None) -> None:
    """Real labels must be the classes 0..K-1 (K = `num_classes` when the source defines it, else
    the number of distinct labels): -1 marks generated images, and a gap would give the probes
    more classes than the data has. Rejected (not remapped), so that a label always means what
    the user's file says."""
    labels = np.union1d(train, test)
    if not labels.size:
        return
    if labels[0] < 0:
        raise ValueError(f"{source}: label {labels[0]} in the real data; real labels are 0..K-1 "
                         "(-1 marks generated images)")
    if num_classes is not None:
        if labels[-1] >= num_classes:
            raise ValueError(f"{source}: label {labels[-1]}, but {source.split()[0]} has "
                             f"{num_classes} classes (0..{num_classes - 1})")
    elif labels[-1] != len(labels) - 1:
        shown = ", ".join(map(str, labels[:8])) + (", ..." if len(labels) > 8 else "")
        raise ValueError(f"{source}: {len(labels)} classes labelled {{{shown}}}, not "
                         f"0..{len(labels) - 1}; relabel them (a probe would get "
                         f"{labels[-1] + 1} outputs)")


# -- sources -------------------------------------------------------------------------------------

def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return _to_rgb(images), d.target.astype(np.int64)


def _cifar(source: str, root: Path, download: bool):
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if source == "cifar10" else CIFAR100
    try:
        train, test = (cls(str(root), train=t, download=download) for t in (True, False))
    except RuntimeError:
        hint = "" if download else "; `download: true` fetches them"
        raise FileNotFoundError(
            f"{source}: data not found or corrupt: expected the python-format files in "
            f"{root / cls.base_folder}{hint}"
        ) from None
    return (np.asarray(train.data, np.uint8), np.asarray(train.targets, np.int64),
            np.asarray(test.data, np.uint8), np.asarray(test.targets, np.int64))


def _npz(root: Path, test_fraction: float, seed: int, test: Path | None = None):
    if test is not None:
        for path in (root, test):
            if not path.is_file():
                raise FileNotFoundError(f"npz: no such file {path} (with a separate test file, "
                                        "root is the train split's file)")
        return (*_read_npz(root), *_read_npz(test))
    if root.is_dir():
        train, test = root / "train.npz", root / "test.npz"
        missing = [p.name for p in (train, test) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"npz: folder {root} lacks {', '.join(missing)}")
        return (*_read_npz(train), *_read_npz(test))
    if not root.is_file():
        raise FileNotFoundError(f"npz: no such file or folder {root}")
    return _split(*_read_npz(root), test_fraction, seed, str(root))


# How to write a real-data npz: what a line about a wrong one ends with.
NPZ_FIX = ("write it with np.savez(FILE, image=uint8 N×H×W×3 array, "
           "label=np.asarray(labels, dtype=np.int64))")


def _read_npz(path: Path):
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not an npz archive (numpy's zip of arrays; this file starts "
                        f"with {path.read_bytes()[:12]!r}); {NPZ_FIX}")
    with reading(path, f"your input file: {NPZ_FIX}"), np.load(path) as f:
        if not {"image", "label"} <= set(f.files):
            raise ValueError(f"{path}: expected arrays 'image' and 'label', found {f.files}")
        images, labels = f["image"], f["label"]
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(f"{path}: expected uint8 NHWC or NCHW images, "
                         f"found {images.dtype} {images.shape}")
    if images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)
    if images.ndim == 4 and images.shape[-1] not in (1, 3):
        raise ValueError(f"{path}: expected 1 or 3 channels (NHWC or NCHW), found {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: expected {len(images)} integer labels, "
                         f"found {labels.dtype} {labels.shape}")
    return _to_rgb(images), labels.astype(np.int64)


def _imagefolder(root: Path, resolution: int, test_fraction: float, seed: int):
    from torchvision.datasets import ImageFolder

    if not root.is_dir():
        raise FileNotFoundError(f"imagefolder: no such folder {root}")

    def read(folder: Path, class_to_idx=None):
        try:  # the loader is never called: only the (path, class) list is used
            ds = ImageFolder(str(folder), loader=lambda p: p)
        except (FileNotFoundError, RuntimeError) as e:
            raise FileNotFoundError(f"imagefolder: {folder}: {e}") from None
        if class_to_idx is not None and ds.classes != list(class_to_idx):
            raise ValueError(f"imagefolder: classes in {folder} {ds.classes} differ from "
                             f"those in train/ {list(class_to_idx)}")
        images = np.stack([_read_image(p, resolution) for p, _ in ds.samples])
        return images, np.asarray(ds.targets, np.int64), ds.class_to_idx

    if (root / "train").is_dir() and (root / "test").is_dir():
        tr_x, tr_y, classes = read(root / "train")
        te_x, te_y, _ = read(root / "test", classes)
        return tr_x, tr_y, te_x, te_y
    images, labels, _ = read(root)
    return _split(images, labels, test_fraction, seed, str(root))


# -- helpers -------------------------------------------------------------------------------------

def _read_image(path: str, resolution: int) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (resolution, resolution):
                im = im.resize((resolution, resolution), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as e:  # PIL: truncated, corrupt, not an image
        raise UserError(f"{path}: unreadable image ({type(e).__name__}: {e}); replace it with a "
                        "good copy or delete it") from e


def _split(images, labels, test_fraction: float, seed: int, source: str = "the data"):
    from sklearn.model_selection import train_test_split

    split_problem(labels, test_fraction, source)
    tr, te = train_test_split(np.arange(len(labels)), test_size=test_fraction,
                              stratify=labels, random_state=seed)
    return images[tr], labels[tr], images[te], labels[te]


def split_problem(labels: np.ndarray, test_fraction: float, source: str) -> None:
    """scikit-learn's stratified split, checked first: its own errors name neither the file,
    the class nor the setting."""
    classes, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        c = classes[counts.argmin()]
        raise UserError(f"{source}: class {c} has {counts.min()} image; the stratified test split "
                        "needs at least 2 of each class: add images of it, remove it, or bring "
                        "your own test split (real.test, or train/ and test/ folders)")
    n_test = math.ceil(test_fraction * len(labels))
    if min(n_test, len(labels) - n_test) < len(classes):
        raise UserError(f"{source}: {len(labels)} images split by real.test_fraction "
                        f"{test_fraction} give {n_test} test and {len(labels) - n_test} training "
                        f"images, fewer than the {len(classes)} classes; set real.test_fraction "
                        f"so that both splits hold at least {len(classes)} images, or add images")


def _to_rgb(images: np.ndarray) -> np.ndarray:
    """N×H×W or N×H×W×1 grayscale → N×H×W×3; RGB passes through."""
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return np.ascontiguousarray(images)


def _resize(images: np.ndarray, resolution: int, chunk: int = 4096) -> np.ndarray:
    """Bilinear (antialiased) resize of uint8 NHWC images to resolution×resolution."""
    if images.shape[1:3] == (resolution, resolution):
        return images
    import torch  # here: the data at their own size (the digits) never need it
    import torch.nn.functional as F

    from pipeline.core.tensors import to_nchw

    out = np.empty((len(images), resolution, resolution, 3), np.uint8)
    # Chunked so a 50k-image set does not need one huge float tensor.
    for i in range(0, len(images), chunk):
        x = to_nchw(images[i:i + chunk]).float()
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear",
                          align_corners=False, antialias=True)
        out[i:i + chunk] = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out
