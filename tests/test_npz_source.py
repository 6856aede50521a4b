"""generator.source npz: generated images brought as npz files, cut into the sample shards."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from support.snakemake import TINY, run_snakemake

from support.tiny import make_images
from pipeline.core import io
from pipeline.data.npz_source import cut_into_shards, image_shape, npz_files, unlabelled
from pipeline.data.dataset import load_packed, open_packed


def _write_folder(folder, sizes, size=8):
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = [], []
    for k, n in enumerate(sizes):
        x, y = make_images(n, size=size, seed=k), (np.arange(n) + k) % 10
        np.savez(folder / f"part{k}.npz", image=x, label=y)  # as the authors' files
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def test_cuts_files_in_order_into_shards_across_file_boundaries(tmp_path):
    images, labels = _write_folder(tmp_path / "gen", [7, 5, 9])
    files = npz_files(tmp_path / "gen")
    assert [f.name for f in files] == ["part0.npz", "part1.npz", "part2.npz"]
    assert image_shape(files) == (21, 8, 8, 3)
    outs = [tmp_path / "shards" / f"shard_{k:05d}.json" for k in range(4)]
    assert cut_into_shards(files, outs, shard_size=5, num_images=18) == 18
    for k, out in enumerate(outs):
        x, y = load_packed(out)
        np.testing.assert_array_equal(x, images[5 * k:min(5 * k + 5, 18)])
        assert (y == -1).all()  # generated images train unlabelled; the file keeps the labels
        kept = np.load(str(out).removesuffix(".json") + ".labels.npy")
        np.testing.assert_array_equal(kept, labels[5 * k:min(5 * k + 5, 18)])
    # asking for more than there is takes them all
    assert cut_into_shards(files, outs[:3] + [tmp_path / "s3.json", tmp_path / "s4.json"],
                           shard_size=5, num_images=100) == 21


def test_bad_npz_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="no .npz files"):
        npz_files(tmp_path)
    with pytest.raises(ValueError, match="no such file"):
        npz_files(tmp_path / "missing.npz")
    np.savez(tmp_path / "float.npz", image=np.zeros((2, 8, 8, 3), np.float32), label=np.zeros(2))
    with pytest.raises(ValueError, match="uint8"):
        image_shape([tmp_path / "float.npz"])
    np.savez(tmp_path / "nolabel.npz", image=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="'label'"):
        image_shape([tmp_path / "nolabel.npz"])
    _write_folder(tmp_path / "big", [3], size=16)
    with pytest.raises(ValueError, match="real.resolution is 8"):
        cut_into_shards(npz_files(tmp_path / "big"), [tmp_path / "s.npz"], 5, 3, resolution=8)


@pytest.mark.e2e
def test_workflow_with_npz_source_skips_sampling_and_runs_fid_pack_pretrain(tmp_path):
    images, _ = _write_folder(tmp_path / "gen", [17, 20])
    config = yaml.safe_load(TINY.read_text())
    config["generator"] = {"source": "npz", "path": str(tmp_path / "gen")}
    config["sampling"].update(num_images=30, shard_size=16)  # 30 of the 37 images, 2 shards
    cfg = tmp_path / "npz.yaml"
    cfg.write_text(yaml.safe_dump(config))
    targets = ["results/fid.json", "results/pretrain/simclr/vanilla/seed0/encoder.pt"]
    plan = run_snakemake(*targets, "-n", "--cores", "1", "--configfile", str(cfg), cwd=tmp_path)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "cut_npz" in plan.stdout
    assert "train_generator" not in plan.stdout and "rule sample:" not in plan.stdout
    r = run_snakemake(*targets, "--cores", "2", "--configfile", str(cfg), cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = tmp_path / "results"
    # the first 30 of the files' 37 images (sampling.num_images), in shards of 16 and 14
    shards = [load_packed(results / "samples" / f"shard_{k:05d}.json") for k in range(2)]
    assert [len(x) for x, _ in shards] == [16, 14]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in shards]), images[:30])
    assert not (results / "samples" / "shard_00002.json").exists()
    assert not (results / "generator").exists()
    assert "fid" in json.loads((results / "fid.json").read_text())
    generated, labels = open_packed(results / "dataset" / "generated").load()
    np.testing.assert_array_equal(generated, images[:30])
    assert (labels == -1).all()  # generated images never train the probe
    meta = json.loads((results / "pretrain/simclr/vanilla/seed0/history.json").read_text())
    assert meta["num_generated"] == 30


def test_a_bgr_file_is_cut_into_rgb_shards_and_keeps_its_labels(tmp_path):
    """generator.channel_order bgr: the channels are reversed once, when the shards are cut, so
    FID, the report's samples and training read RGB; a file of only -1 labels (the authors'
    generated_data.py) is recognised for the warning."""
    rgb, labels = _write_folder(tmp_path / "rgb", [6])
    bgr = tmp_path / "bgr.npz"
    np.savez(bgr, image=rgb[..., ::-1], label=labels)  # as cv2.imread leaves a PNG
    out = [tmp_path / "shards" / "shard_00000.json"]
    cut_into_shards([bgr], out, shard_size=6, num_images=6, bgr=True)
    np.testing.assert_array_equal(load_packed(out[0])[0], rgb)
    cut_into_shards([bgr], out, shard_size=6, num_images=6)  # rgb: the file as it is
    np.testing.assert_array_equal(load_packed(out[0])[0], rgb[..., ::-1])
    kept = load_packed(out[0], keep_labels=True)[1]
    np.testing.assert_array_equal(kept, labels)
    assert not unlabelled([bgr])
    np.savez(tmp_path / "authors.npz", image=rgb, label=np.full(6, -1))
    assert unlabelled([tmp_path / "authors.npz"])
