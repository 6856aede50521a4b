"""Tests of pipeline.data.dataset and the pack stage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline import pack as pack_stage
from pipeline.core.io import save_images
from pipeline.core import io
from pipeline.data.dataset import (FORMAT, ChecksumError, load_npz_or_shard, load_packed, open_packed,
                                   pack, write_shard)

from support.tiny import make_images


@pytest.fixture
def shard_files(tmp_path):
    """Three npz shards of 4, 3 and 5 8×8 images with labels 0..9."""
    paths = []
    for k, n in enumerate([4, 3, 5]):
        path = tmp_path / f"shard{k}.npz"
        save_images(path, make_images(n, seed=k), (np.arange(n) + k) % 10)
        paths.append(path)
    return paths


def _images(k, n):
    return make_images(n, seed=k)


def test_pack_real_keeps_labels_and_memory_maps(tmp_path, shard_files):
    manifest = pack(tmp_path / "real", "real", [str(p) for p in shard_files])
    assert manifest["format"] == FORMAT and manifest["part"] == "real"
    assert manifest["count"] == 12 and manifest["image_shape"] == [8, 8, 3]
    assert json.loads((tmp_path / "real" / "manifest.json").read_text()) == manifest
    ds = open_packed(tmp_path / "real")
    assert ds.part == "real" and len(ds) == 12
    assert [len(x) for x in ds.images] == [4, 3, 5]
    for k, (im, lab) in enumerate(zip(ds.images, ds.labels)):
        assert isinstance(im, np.memmap) and isinstance(lab, np.memmap)
        assert im.dtype == np.uint8 and lab.dtype == np.int64
        np.testing.assert_array_equal(im, _images(k, len(im)))
        np.testing.assert_array_equal(lab, (np.arange(len(im)) + k) % 10)
    images, labels = ds.load()
    assert images.shape == (12, 8, 8, 3) and labels.shape == (12,)


def test_pack_generated_sets_labels_to_minus_one(tmp_path, shard_files):
    manifest = pack(tmp_path / "gen", "generated", [str(p) for p in shard_files[:2]])
    assert manifest["count"] == 7
    ds = open_packed(tmp_path / "gen")
    assert ds.part == "generated" and len(ds) == 7
    assert all(isinstance(x, np.memmap) for x in ds.images + ds.labels)
    _, labels = ds.load()
    np.testing.assert_array_equal(labels, np.full(7, -1))
    np.testing.assert_array_equal(ds.images[1], _images(1, 3))


def test_pack_replaces_an_existing_dataset(tmp_path, shard_files):
    out = tmp_path / "ds"
    pack(out, "real", [str(p) for p in shard_files])
    pack(out, "real", [str(shard_files[1])])
    ds = open_packed(out)
    assert len(ds) == 3 and len(ds.images) == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "00000.images.npy", "00000.labels.npy", "manifest.json"]


def test_corrupted_shard_raises_checksum_error_naming_the_file(tmp_path, shard_files):
    out = tmp_path / "ds"
    pack(out, "real", [str(p) for p in shard_files])
    victim = out / "00001.images.npy"
    data = bytearray(victim.read_bytes())
    data[-5] ^= 0x01  # one pixel of the last image, header intact
    victim.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"00001\.images\.npy"):
        open_packed(out)
    # the damaged dataset (pack's directory output) is moved aside, so the next run repacks it
    assert not out.exists() and (tmp_path / "ds.corrupt" / "00001.images.npy").exists()


def test_missing_manifest_is_file_not_found(tmp_path, shard_files):
    out = tmp_path / "ds"
    pack(out, "real", [str(p) for p in shard_files])
    (out / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        open_packed(out)
    with pytest.raises(FileNotFoundError):
        open_packed(tmp_path / "nowhere")


def test_wrong_format_is_rejected(tmp_path, shard_files):
    out = tmp_path / "ds"
    pack(out, "real", [str(shard_files[0])])
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["format"] = "something-else"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="something-else"):
        open_packed(out)


def test_shards_of_different_shapes_are_rejected_without_output(tmp_path, shard_files):
    odd = tmp_path / "odd.npz"
    save_images(odd, make_images(2, size=6), np.zeros(2))
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"odd\.npz.*\(6, 6, 3\).*\(8, 8, 3\)"):
        pack(tmp_path / "ds", "real", [str(shard_files[0]), str(odd)])
    assert not (tmp_path / "ds").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temp folder left


def test_unknown_part_is_rejected(tmp_path, shard_files):
    with pytest.raises(ValueError, match="unknown dataset part 'fake'"):
        pack(tmp_path / "ds", "fake", [str(shard_files[0])])
    assert not (tmp_path / "ds").exists()


def test_pack_cli(tmp_path, shard_files):
    out = tmp_path / "packed" / "generated"
    record = tmp_path / "packed" / "generated.json"
    pack_stage.main(["--part", "generated", "--inputs", *map(str, shard_files), "--out", str(out),
                     "--record", str(record)])
    ds = open_packed(out)
    # the content record: part, count and each file's sha256, what the consumers depend on
    manifest = json.loads((out / "manifest.json").read_text())
    assert json.loads(record.read_text()) == {"part": "generated", "count": 12,
                                              "sha256": dict(sorted(manifest["sha256"].items()))}
    assert ds.part == "generated" and len(ds) == 12
    np.testing.assert_array_equal(ds.load()[1], np.full(12, -1))
    np.testing.assert_array_equal(ds.images[2], _images(2, 5))
    with pytest.raises(SystemExit):
        pack_stage.main(["--part", "fake", "--inputs", str(shard_files[0]), "--out", str(out),
                         "--record", str(record)])


@pytest.fixture
def sample_shards(tmp_path):
    """Two sample shards as the sample stage writes them (packed format, labels -1)."""
    folder = tmp_path / "samples"
    for k, n in enumerate([4, 3]):
        write_shard(folder / f"shard_{k:05d}.json", make_images(n, seed=k), np.full(n, -1))
    return sorted(folder.glob("shard_*.json"))


def test_packing_sample_shards_references_them_without_a_copy(tmp_path, sample_shards):
    out = tmp_path / "dataset" / "generated"
    manifest = pack(out, "generated", [str(p) for p in sample_shards])
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]  # no second copy
    assert manifest["count"] == 7
    assert manifest["shards"][0]["images"] == "../../samples/shard_00000.images.npy"
    images, labels = load_packed(out)
    np.testing.assert_array_equal(images, np.concatenate([make_images(4), make_images(3, seed=1)]))
    np.testing.assert_array_equal(labels, np.full(7, -1))
    np.testing.assert_array_equal(open_packed(out).load()[0], images)
    # a shard's own manifest reads like an npz file, through load_npz_or_shard (io reads npz only)
    np.testing.assert_array_equal(load_npz_or_shard(sample_shards[1])[0], make_images(3, seed=1))
    save_images(tmp_path / "x.npz", make_images(2), np.arange(2))
    np.testing.assert_array_equal(load_npz_or_shard(tmp_path / "x.npz")[1], [0, 1])
    with pytest.raises(ValueError, match="a sample shard's manifest, not an npz file"):
        io.load_images(sample_shards[1])


def test_load_packed_equals_the_memory_mapped_concatenation(tmp_path, shard_files):
    out = tmp_path / "real"
    pack(out, "real", [str(p) for p in shard_files])
    fast = load_packed(out, workers=2)
    slow = open_packed(out).load()
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_sample_shard_is_named_and_moved_aside(tmp_path, sample_shards, damage):
    out = tmp_path / "dataset" / "generated"
    pack(out, "generated", [str(p) for p in sample_shards])
    victim = tmp_path / "samples" / "shard_00001.images.npy"
    data = victim.read_bytes()
    victim.write_bytes(data[:-10] if damage == "truncate" else data[:-5] + b"\xff" + data[-4:])
    with pytest.raises(ChecksumError, match=r"shard_00001\.images\.npy.*next run regenerates"):
        load_packed(out)
    # the sample job's output and the dataset are now missing: Snakemake reruns pack, which asks
    # for the shard again, so its sample job reruns
    assert not victim.exists() and victim.with_name(victim.name + ".corrupt").exists()
    assert not out.exists() and (out.parent / "generated.corrupt" / "manifest.json").exists()
    assert (tmp_path / "samples" / "shard_00000.images.npy").exists()


def test_pack_catches_a_truncated_shard_by_its_size(tmp_path, sample_shards):
    victim = tmp_path / "samples" / "shard_00000.images.npy"
    victim.write_bytes(victim.read_bytes()[:-3])
    with pytest.raises(ChecksumError, match=r"shard_00000\.images\.npy: \d+ bytes"):
        pack(tmp_path / "gen", "generated", [str(p) for p in sample_shards])
    assert not (tmp_path / "gen").exists()


def test_pack_names_a_shard_whose_manifest_is_missing(tmp_path, sample_shards):
    """The stage's one line (runtime.run prints a FileNotFoundError's message as the last line
    of the job's log, which the workflow shows) names the shard; no dataset is left."""
    sample_shards[1].unlink()
    with pytest.raises(FileNotFoundError) as e:
        pack_stage.main(["--part", "generated", "--inputs", *map(str, sample_shards),
                         "--out", str(tmp_path / "gen"), "--record", str(tmp_path / "gen.json")])
    assert str(e.value) == f"{sample_shards[1]}: missing"
    assert not (tmp_path / "gen").exists() and not (tmp_path / "gen.json").exists()


def test_generated_labels_are_minus_one_unless_kept(tmp_path):
    folder = tmp_path / "samples"
    write_shard(folder / "shard_00000.json", make_images(5), np.arange(5) % 3)
    out = tmp_path / "dataset" / "generated"
    pack(out, "generated", [str(folder / "shard_00000.json")])
    assert (load_packed(out)[1] == -1).all()
    np.testing.assert_array_equal(load_packed(out, keep_labels=True)[1], np.arange(5) % 3)


def test_generated_subset_is_nested_seeded_and_balanced_on_a_class_sorted_file():
    from pipeline.data.dataset import generated_subset

    small, large = generated_subset(10_000, 500, seed=0), generated_subset(10_000, 2_000, seed=0)
    assert len(small) == 500 and (np.diff(small) > 0).all()
    assert set(small) <= set(large)  # a smaller N's images are part of a larger N's
    assert not np.array_equal(small, generated_subset(10_000, 500, seed=1))
    # image i's key is the i-th draw of the seeded stream, the same whatever the total: the
    # first half of a set's subset is the subset of that half alone
    first = small[small < 5_000]
    np.testing.assert_array_equal(generated_subset(5_000, len(first), seed=0), first)
    sorted_labels = np.repeat(np.arange(10), 1_000)  # a file sorted by class, as EDM 1M
    counts = np.bincount(sorted_labels[small], minlength=10)
    assert counts.min() >= 30 and counts.max() <= 70  # the first 500 would be class 0 only
    with pytest.raises(ValueError, match="holds 10 images"):
        generated_subset(10, 11, 0)


def test_load_packed_rows_read_the_same_images_whatever_the_shards(tmp_path):
    """The subset is a function of global indices: cut into other shards, the same images."""
    from pipeline.data.dataset import generated_subset

    images, labels = make_images(23, seed=4), np.arange(23) % 10
    rows = generated_subset(23, 9, seed=2)
    got = []
    for sizes in ([23], [5, 5, 5, 5, 3], [10, 13]):
        folder = tmp_path / f"s{len(sizes)}"
        start = 0
        for k, n in enumerate(sizes):
            write_shard(folder / f"shard_{k:05d}.json", images[start:start + n],
                        labels[start:start + n])
            start += n
        pack(folder / "packed", "generated", [str(p) for p in sorted(folder.glob("shard_*.json"))])
        got.append(load_packed(folder / "packed", rows=rows, keep_labels=True))
    for x, y in got:
        np.testing.assert_array_equal(x, images[rows])
        np.testing.assert_array_equal(y, labels[rows])
    with pytest.raises(ValueError, match="sorted distinct"):
        load_packed(tmp_path / "s1" / "packed", rows=np.array([3, 2]))
