"""Tests of pipeline.core.io: atomic outputs and the npz image format."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from pipeline.core import io

from support.tiny import make_images


class Boom(RuntimeError):
    pass


def test_atomic_path_writes_target_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with io.atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("done")
        assert not target.exists()  # nothing visible until the block finishes
    assert target.read_text() == "done"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_atomic_path_leaves_nothing_when_block_raises(tmp_path):
    target = tmp_path / "out.npz"
    with pytest.raises(Boom):
        with io.atomic_path(target) as tmp:
            tmp.write_bytes(b"half written")
            raise Boom()
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_old_target_when_block_raises(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(Boom):
        with io.atomic_path(target) as tmp:
            tmp.write_text("new")
            raise Boom()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_leaves_nothing_when_block_raises(tmp_path):
    target = tmp_path / "model"
    with pytest.raises(Boom):
        with io.atomic_dir(target) as tmp:
            (tmp / "weights.bin").write_bytes(b"x" * 10)
            (tmp / "nested").mkdir()
            raise Boom()
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_keeps_old_folder_when_block_raises(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(Boom):
        with io.atomic_dir(target) as tmp:
            (tmp / "new.txt").write_text("new")
            raise Boom()
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_dir_replaces_existing_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "stale.txt").write_text("stale")
    (target / "stale_dir").mkdir()
    with io.atomic_dir(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        (tmp / "fresh.txt").write_text("fresh")
    assert sorted(p.name for p in target.iterdir()) == ["fresh.txt"]
    assert (target / "fresh.txt").read_text() == "fresh"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_save_load_images_round_trip(tmp_path):
    images = make_images(5, size=6, seed=1)
    labels = np.array([3, -1, 0, 9, 2], dtype=np.int32)
    path = tmp_path / "imgs.npz"
    io.save_images(path, images, labels)
    assert [p.name for p in tmp_path.iterdir()] == ["imgs.npz"]  # no temp file, no extra .npz
    got_images, got_labels = io.load_images(path)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    with np.load(path) as f:  # the official AdaInf key names
        assert sorted(f.files) == ["image", "label"]


def test_save_images_without_npz_suffix_writes_exactly_the_target(tmp_path):
    path = tmp_path / "shard"
    io.save_images(path, make_images(2), np.zeros(2))
    assert [p.name for p in tmp_path.iterdir()] == ["shard"]
    np.testing.assert_array_equal(io.load_images(path)[0], make_images(2))


def test_check_images_rejects_float_images():
    with pytest.raises(ValueError, match=r"float32 \(2, 4, 4, 3\)"):
        io.check_images(np.zeros((2, 4, 4, 3), np.float32), np.zeros(2))


def test_check_images_rejects_non_rgb_and_wrong_rank():
    with pytest.raises(ValueError, match=r"uint8 \(2, 4, 4, 1\)"):
        io.check_images(np.zeros((2, 4, 4, 1), np.uint8), np.zeros(2))
    with pytest.raises(ValueError, match=r"uint8 \(4, 4, 3\)"):
        io.check_images(np.zeros((4, 4, 3), np.uint8), np.zeros(4))


def test_check_images_rejects_wrong_label_shape():
    images = np.zeros((3, 4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match=r"3 images but labels of shape \(2,\)"):
        io.check_images(images, np.zeros(2))
    with pytest.raises(ValueError, match=r"labels of shape \(3, 1\)"):
        io.check_images(images, np.zeros((3, 1)))


def test_load_images_names_file_and_missing_key(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, image=np.zeros((1, 2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match=r"bad\.npz.*missing arrays \['label'\]"):
        io.load_images(path)
    path2 = tmp_path / "float.npz"
    np.savez(path2, image=np.zeros((1, 2, 2, 3)), label=np.zeros(1))
    with pytest.raises(ValueError, match=r"float\.npz: expected uint8.*float64"):
        io.load_images(path2)


def test_write_read_json_and_sha256(tmp_path):
    io.write_json(tmp_path / "a.json", {"x": [1, 2]})
    assert io.read_json(tmp_path / "a.json") == {"x": [1, 2]}
    (tmp_path / "b.bin").write_bytes(b"abc")
    assert io.sha256_file(tmp_path / "b.bin", chunk=2) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_atomic_outputs_get_the_umask_mode_not_the_temp_file_mode(tmp_path, umask_027):
    # mkstemp/mkdtemp create 0600/0700 entries; finished outputs must be readable as the umask
    # allows (here by the group), like files written with open()
    io.write_json(tmp_path / "a.json", {})
    with io.atomic_dir(tmp_path / "model") as tmp:
        (tmp / "w.bin").write_bytes(b"w")
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "model").st_mode) == 0o750


def test_a_killed_writes_temporaries_are_removed_by_the_next_write(tmp_path):
    """SIGKILL leaves `.NAME.<random>.tmp*` behind; the next write of NAME removes it (and only
    what belongs to NAME)."""
    target = tmp_path / "shard.npz"
    stale = [tmp_path / ".shard.npz.abcd1234.tmp.npz", tmp_path / ".shard.npz.zz_9x8y7.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    (tmp_path / ".generator.q1w2e3r4.tmp").mkdir()
    other = tmp_path / ".shard.npz.old.abcd1234.tmp"  # a different target's name
    other.write_bytes(b"x")
    with io.atomic_path(target) as tmp:
        tmp.write_bytes(b"done")
    assert not any(p.exists() for p in stale)
    assert other.exists() and (tmp_path / ".generator.q1w2e3r4.tmp").exists()
    with io.atomic_dir(tmp_path / "generator") as tmp:
        (tmp / "x").write_text("1")
    assert not (tmp_path / ".generator.q1w2e3r4.tmp").exists()


def test_write_csv_writes_a_header_and_the_rows(tmp_path):
    import csv

    path = tmp_path / "out" / "curve.csv"
    io.write_csv(path, [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}], ["step", "loss"])
    with open(path) as f:
        assert list(csv.DictReader(f)) == [{"step": "1", "loss": "0.5"}, {"step": "2", "loss": "0.25"}]
    assert [p.name for p in path.parent.iterdir()] == ["curve.csv"]  # no temporary left
