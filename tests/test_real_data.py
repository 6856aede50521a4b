"""Tests of pipeline.data.sources and the prepare_real stage, on files written in the real formats."""

from __future__ import annotations

import os
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from support.stage_args import RUNTIME_ARGS
from pipeline import prepare_real
from pipeline.core import io
from pipeline.core.io import load_images
from pipeline.data.sources import load_real


# -- CIFAR in its real on-disk format -------------------------------------------------------------

class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (BINSTRING), as the official CIFAR pickles do.

    Python 3's own pickler would write b"data" as a bytes object, which torchvision's
    `pickle.load(f, encoding="latin1")` returns as bytes, not as the str key it looks up.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _dump(path, obj):
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _planar(images_hwc):
    """N×32×32×3 → N×3072 with all red, then green, then blue values: CIFAR's row layout."""
    return np.ascontiguousarray(images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), -1))


@pytest.fixture
def no_md5(monkeypatch):
    # The real files' md5s cannot be matched by synthetic ones; existence is still required.
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def _write_cifar10(root, rng):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    train_y, test_y = np.arange(20) % 10, np.arange(6) % 10
    for i in range(5):
        sl = slice(4 * i, 4 * i + 4)
        _dump(folder / f"data_batch_{i + 1}", {
            b"batch_label": b"training batch %d of 5" % (i + 1),
            b"labels": [int(v) for v in train_y[sl]],
            b"data": _planar(train[sl]),
            b"filenames": [b"x.png"] * 4,
        })
    _dump(folder / "test_batch", {b"batch_label": b"testing batch 1 of 1",
                                  b"labels": [int(v) for v in test_y], b"data": _planar(test),
                                  b"filenames": [b"x.png"] * 6})
    _dump(folder / "batches.meta", {b"label_names": [b"c%d" % i for i in range(10)],
                                    b"num_cases_per_batch": 4, b"num_vis": 3072})
    return train, train_y, test, test_y


def test_cifar_writer_matches_official_recipe(tmp_path):
    # The CIFAR page's own loader: pickle.load(fo, encoding="bytes") gives b"data" keys.
    _write_cifar10(tmp_path, np.random.default_rng(0))
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        d = pickle.load(f, encoding="bytes")
    assert d[b"data"].shape == (4, 3072) and d[b"data"].dtype == np.uint8
    assert d[b"labels"] == [0, 1, 2, 3]


def test_cifar10_round_trip(tmp_path, no_md5):
    train, train_y, test, test_y = _write_cifar10(tmp_path, np.random.default_rng(1))
    tr_x, tr_y, te_x, te_y = load_real("cifar10", str(tmp_path), 32)
    np.testing.assert_array_equal(tr_x, train)  # planar → HWC undone exactly
    np.testing.assert_array_equal(te_x, test)
    np.testing.assert_array_equal(tr_y, train_y)
    np.testing.assert_array_equal(te_y, test_y)
    assert tr_y.dtype == np.int64

    tr_x, _, te_x, _ = load_real("cifar10", tmp_path, 16)
    assert tr_x.shape == (20, 16, 16, 3) and te_x.shape == (6, 16, 16, 3)
    assert tr_x.dtype == np.uint8


def test_cifar10_colour_channels_not_mixed(tmp_path, no_md5):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar10(tmp_path, np.random.default_rng(2))
    red = np.zeros((1, 32, 32, 3), np.uint8)
    red[..., 0] = 200
    _dump(folder / "test_batch", {b"labels": [3], b"data": _planar(red)})
    _, _, te_x, te_y = load_real("cifar10", tmp_path, 32)
    assert (te_x[..., 0] == 200).all() and (te_x[..., 1:] == 0).all() and te_y.tolist() == [3]


def test_cifar10_missing_data_says_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_real("cifar10", tmp_path, 32)
    msg = str(e.value)
    assert "cifar-10-batches-py" in msg and "download: true" in msg and "\n" not in msg


def test_cifar100_round_trip(tmp_path, no_md5):
    rng = np.random.default_rng(3)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    train_y, test_y = [0, 99, 5, 42, 7, 7, 1, 98], [99, 0, 50, 3]
    for name, x, y in (("train", train, train_y), ("test", test, test_y)):
        _dump(folder / name, {b"filenames": [b"x.png"] * len(y), b"batch_label": b"b",
                              b"fine_labels": y, b"coarse_labels": [v // 5 for v in y],
                              b"data": _planar(x)})
    _dump(folder / "meta", {b"fine_label_names": [b"f%d" % i for i in range(100)],
                            b"coarse_label_names": [b"c%d" % i for i in range(20)]})
    tr_x, tr_y, te_x, te_y = load_real("cifar100", tmp_path, 32)
    np.testing.assert_array_equal(tr_x, train)
    np.testing.assert_array_equal(te_x, test)
    assert tr_y.tolist() == train_y and te_y.tolist() == test_y


# -- digits ---------------------------------------------------------------------------------------

def test_digits():
    tr_x, tr_y, te_x, te_y = load_real("digits", None, 16, test_fraction=0.2, seed=0)
    assert tr_x.dtype == te_x.dtype == np.uint8 and tr_y.dtype == np.int64
    assert tr_x.shape[1:] == te_x.shape[1:] == (16, 16, 3)
    assert len(tr_x) + len(te_x) == 1797 and len(te_x) == 360
    assert set(tr_y) == set(te_y) == set(range(10))
    share = np.bincount(te_y, minlength=10) / (np.bincount(te_y) + np.bincount(tr_y))
    assert np.all(np.abs(share - 0.2) < 0.02)  # stratified
    assert tr_x.max() > 200  # scaled from 0..16
    np.testing.assert_array_equal(tr_x[..., 0], tr_x[..., 2])  # grey replicated

    again = load_real("digits", None, 16, test_fraction=0.2, seed=0)
    for a, b in zip((tr_x, tr_y, te_x, te_y), again):
        np.testing.assert_array_equal(a, b)
    other = load_real("digits", None, 16, test_fraction=0.2, seed=1)
    assert not np.array_equal(other[1], tr_y)

    native = load_real("digits", None, 8)
    assert native[0].shape[1:] == (8, 8, 3)
    assert set(np.unique(native[0])) <= {round(v * 255 / 16) for v in range(17)}


# -- npz ------------------------------------------------------------------------------------------

def _images(n, rng, size=8):
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_npz_file_is_split_stratified(tmp_path):
    rng = np.random.default_rng(4)
    x, y = _images(40, rng), np.arange(40) % 4
    np.savez(tmp_path / "train.npz", image=x, label=y)
    tr_x, tr_y, te_x, te_y = load_real("npz", tmp_path / "train.npz", 8, test_fraction=0.25)
    assert len(te_x) == 10 and sorted(np.bincount(te_y)) == [2, 2, 3, 3]  # 10 a class → 2 or 3
    assert len(tr_x) == 30
    # each image keeps its label through the split
    lookup = {x[i].tobytes(): y[i] for i in range(40)}
    assert all(lookup[im.tobytes()] == lab for im, lab in zip(tr_x, tr_y))


def test_npz_folder_and_nchw(tmp_path):
    rng = np.random.default_rng(5)
    train, test = _images(6, rng), _images(4, rng)
    np.savez(tmp_path / "train.npz", image=train.transpose(0, 3, 1, 2), label=np.arange(6))
    np.savez(tmp_path / "test.npz", image=test, label=np.arange(4))
    tr_x, tr_y, te_x, te_y = load_real("npz", str(tmp_path), 8)
    np.testing.assert_array_equal(tr_x, train)
    np.testing.assert_array_equal(te_x, test)
    assert tr_y.tolist() == list(range(6)) and te_y.dtype == np.int64
    assert load_real("npz", tmp_path, 4)[0].shape == (6, 4, 4, 3)


def test_npz_train_file_with_its_own_test_file_is_not_re_split_and_bgr_is_swapped(tmp_path):
    """real.test: the authors' 5k split beside CIFAR-10's test split, each taken whole; and
    real.channel_order bgr (a file written from cv2.imread) becomes RGB when prepared."""
    rng = np.random.default_rng(6)
    train, test = _images(10, rng), _images(4, rng)
    np.savez(tmp_path / "cifar10-5k-train.npz", image=train, label=np.arange(10) % 5)
    np.savez(tmp_path / "test.npz", image=test, label=np.arange(4))
    tr_x, tr_y, te_x, te_y = load_real("npz", tmp_path / "cifar10-5k-train.npz", 8,
                                       test=tmp_path / "test.npz")
    np.testing.assert_array_equal(tr_x, train)  # all 10, in order: no 80/20 split
    np.testing.assert_array_equal(te_x, test)
    assert tr_y.tolist() == [0, 1, 2, 3, 4] * 2
    np.savez(tmp_path / "bgr.npz", image=train[..., ::-1], label=np.arange(10) % 5)
    x = load_real("npz", tmp_path / "bgr.npz", 8, test=tmp_path / "test.npz", bgr=True)
    np.testing.assert_array_equal(x[0], train)
    np.testing.assert_array_equal(x[2], test[..., ::-1])  # both files are read as BGR
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_real("npz", tmp_path, 8, test=tmp_path / "test.npz")  # root must be the file
    with pytest.raises(ValueError, match="for source npz"):
        load_real("digits", None, 8, bgr=True)
    # the stage's options
    out = tmp_path / "out"
    prepare_real.main(["--source", "npz", "--root", str(tmp_path / "bgr.npz"), "--test",
                       str(tmp_path / "test.npz"), "--bgr", "--resolution", "8",
                       "--test-fraction", "0.2", "--seed", "0", *RUNTIME_ARGS,
                       "--train-out", str(out / "train.npz"), "--test-out", str(out / "test.npz")])
    np.testing.assert_array_equal(load_images(out / "train.npz")[0], train)


def test_npz_bad_key_and_shape(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((2, 8, 8, 3), np.uint8), label=np.zeros(2))
    with pytest.raises(ValueError, match=r"bad\.npz.*'image'.*images"):
        load_real("npz", bad, 8)
    np.savez(bad, image=np.zeros((2, 8, 8, 3), np.float32), label=np.zeros(2, int))
    with pytest.raises(ValueError, match=r"bad\.npz.*float32"):
        load_real("npz", bad, 8)
    np.savez(bad, image=np.zeros((2, 8, 8, 3), np.uint8), label=np.zeros(3, int))
    with pytest.raises(ValueError, match=r"bad\.npz.*labels"):
        load_real("npz", bad, 8)
    with pytest.raises(FileNotFoundError, match="test.npz"):
        (tmp_path / "d").mkdir()
        np.savez(tmp_path / "d" / "train.npz", image=np.zeros((2, 8, 8, 3), np.uint8),
                 label=np.zeros(2, int))
        load_real("npz", tmp_path / "d", 8)


# -- imagefolder ----------------------------------------------------------------------------------

def _write_pngs(folder, classes, per_class, rng):
    for c in classes:
        (folder / c).mkdir(parents=True)
        for i in range(per_class):
            size = (10 + i, 12)  # mixed sizes, and one grayscale image per class
            arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            im = Image.fromarray(arr).convert("L") if i == 0 else Image.fromarray(arr)
            im.save(folder / c / f"{i}.png")


def test_imagefolder_flat_split(tmp_path):
    _write_pngs(tmp_path, ["cat", "dog"], 4, np.random.default_rng(6))
    tr_x, tr_y, te_x, te_y = load_real("imagefolder", tmp_path, 8, test_fraction=0.5)
    assert tr_x.shape == te_x.shape == (4, 8, 8, 3) and tr_x.dtype == np.uint8
    assert sorted(tr_y) == sorted(te_y) == [0, 0, 1, 1]


def test_imagefolder_train_test(tmp_path):
    rng = np.random.default_rng(7)
    _write_pngs(tmp_path / "train", ["a", "b", "c"], 2, rng)
    _write_pngs(tmp_path / "test", ["a", "b", "c"], 1, rng)
    tr_x, tr_y, te_x, te_y = load_real("imagefolder", tmp_path, 12)
    assert tr_x.shape == (6, 12, 12, 3) and te_x.shape == (3, 12, 12, 3)
    assert tr_y.tolist() == [0, 0, 1, 1, 2, 2] and te_y.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(te_x[0, ..., 0], te_x[0, ..., 1])  # grayscale → RGB


def test_imagefolder_exact_pixels_at_native_size(tmp_path):
    arr = np.random.default_rng(8).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    for split in ("train", "test"):
        (tmp_path / split / "only").mkdir(parents=True)
        Image.fromarray(arr).save(tmp_path / split / "only" / "x.png")
    tr_x, _, _, _ = load_real("imagefolder", tmp_path, 6)
    np.testing.assert_array_equal(tr_x[0], arr)


# -- errors and the stage -------------------------------------------------------------------------

def test_unknown_source_and_missing_root():
    with pytest.raises(ValueError, match=r"'mnist'.*digits.*cifar10.*imagefolder"):
        load_real("mnist", None, 8)
    with pytest.raises(ValueError, match="root"):
        load_real("npz", None, 8)


def test_cli_end_to_end(tmp_path):
    train, test = tmp_path / "real" / "train.npz", tmp_path / "real" / "test.npz"
    prepare_real.main(["--source", "digits", "--resolution", "16", "--test-fraction", "0.2",
                       "--seed", "0", "--train-out", str(train), "--test-out", str(test),
                       *RUNTIME_ARGS])
    tr_x, tr_y = load_images(train)
    te_x, te_y = load_images(test)
    assert tr_x.shape == (1437, 16, 16, 3) and te_x.shape == (360, 16, 16, 3)
    assert set(tr_y) == set(range(10))
    # no temporaries left; each split with its record (pipeline.core.records)
    assert sorted(p.name for p in train.parent.iterdir()) == [
        "test.npz", "test.npz.record.json", "train.npz", "train.npz.record.json"]
    assert io.read_json(f"{train}.record.json")["settings"]["--resolution"] == ["16"]


@pytest.mark.parametrize("args, named", [
    (["--source", "mnist"], "mnist"),
    (["--source", "cifar10"], "root"),
    (["--source", "digits", "--test-fraction", "1.5"], "1.5"),
])
def test_cli_failure_writes_nothing(tmp_path, args, named):
    out = tmp_path / "real"
    with pytest.raises(SystemExit) as e:
        prepare_real.main(["--test-fraction", "0.2", "--seed", "0", *RUNTIME_ARGS, *args,
                           "--resolution", "8", "--train-out", str(out / "train.npz"),
                           "--test-out", str(out / "test.npz")])
    msg = str(e.value.code)
    assert named in msg and "\n" not in msg
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("labels,message", [
    ([0, 1, -1, 2] * 3, r"label -1 in the real data"),
    ([0, 5, 1000, 5] * 3, r"3 classes labelled \{0, 5, 1000\}, not 0\.\.2"),
])
def test_real_labels_must_be_0_to_k_minus_1(tmp_path, labels, message):
    images = np.random.default_rng(0).integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "train.npz", image=images, label=np.array(labels))
    np.savez(tmp_path / "test.npz", image=images[:4], label=np.array(labels[:4]))
    with pytest.raises(ValueError, match=message):
        load_real("npz", tmp_path, 8)
    # the stage: one line naming the file, no traceback
    with pytest.raises(SystemExit, match=f"prepare_real: npz {tmp_path}"):
        prepare_real.main(["--source", "npz", "--root", str(tmp_path), "--resolution", "8",
                           "--test-fraction", "0.2", "--seed", "0", *RUNTIME_ARGS,
                           "--train-out", str(tmp_path / "a.npz"),
                           "--test-out", str(tmp_path / "b.npz")])
