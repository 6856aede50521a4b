"""Every failure a user can cause or meet ends its stage with one line naming the file and the
fix (pipeline.core.errors.reading, pipeline.core.runtime.run): wrong real data sets, damaged npz
files and checkpoints, a full disk. Each test injects the fault and reads the line."""

from __future__ import annotations

import errno
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.core import io
from pipeline.core.errors import UserError
from pipeline.data.sources import load_real
from support.snakemake import REPO
from support.tiny import make_images


def _prepare(tmp_path, source, root, *extra):
    """python -m pipeline.prepare_real on `root`: its exit status and last stderr line."""
    cmd = [sys.executable, "-m", "pipeline.prepare_real", "--source", source, "--root", str(root),
           "--resolution", "8", "--test-fraction", "0.2", "--seed", "0",
           "--train-out", str(tmp_path / "train.npz"), "--test-out", str(tmp_path / "test.npz"),
           "--device", "cpu", "--threads", "1", *extra]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""


def _flip(path, offset_fraction=0.5):
    data = bytearray(path.read_bytes())
    data[int(len(data) * offset_fraction)] ^= 0xFF
    path.write_bytes(bytes(data))


def test_an_object_label_npz_names_the_file_and_how_to_write_it(tmp_path):
    path = tmp_path / "real.npz"
    np.savez(path, image=make_images(20), label=np.array([str(i % 2) for i in range(20)], object))
    with pytest.raises(UserError) as e:
        load_real("npz", str(path), 8, 0.2, 0)
    line = str(e.value)
    assert line.startswith(f"{path}: holds Python objects or pickled data, not plain arrays; ")
    assert "label=np.asarray(labels, dtype=np.int64)" in line and "allow_pickle" not in line


def test_a_text_file_named_npz_is_not_an_npz_archive(tmp_path):
    path = tmp_path / "real.npz"
    path.write_text("image,label\n0,1\n")
    with pytest.raises(UserError) as e:
        load_real("npz", str(path), 8, 0.2, 0)
    assert str(e.value).startswith(f"{path}: not an npz archive (numpy's zip of arrays; this "
                                   "file starts with b'image,label\\n'); write it with np.savez(")


def test_a_damaged_real_npz_names_the_file(tmp_path):
    path = tmp_path / "real.npz"
    io.save_images(path, make_images(40), np.arange(40) % 2)
    _flip(path)
    with pytest.raises(UserError) as e:
        load_real("npz", str(path), 8, 0.2, 0)
    assert str(e.value).startswith(f"{path}: damaged or truncated (BadZipFile: Bad CRC-32")
    assert str(e.value).endswith("your input file: write it with np.savez(FILE, image=uint8 "
                                 "N×H×W×3 array, label=np.asarray(labels, dtype=np.int64))")


@pytest.mark.parametrize("labels,start", [
    ([0] * 10 + [1] * 9 + [2], "class 2 has 1 image; the stratified test split needs at least 2 "
     "of each class"),
    (list(range(10)) * 2, "20 images split by real.test_fraction 0.2 give 4 test and 16 training "
     "images, fewer than the 10 classes"),
])
def test_a_split_scikit_learn_cannot_make_names_the_class_and_the_fix(tmp_path, labels, start):
    path = tmp_path / "real.npz"
    io.save_images(path, make_images(len(labels)), np.array(labels))
    with pytest.raises(UserError, match="^" + str(path)) as e:
        load_real("npz", str(path), 8, 0.2, 0)
    assert str(e.value).startswith(f"{path}: {start}")


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_truncated_or_corrupt_png_names_the_image(tmp_path, damage):
    for c in range(2):
        (tmp_path / "data" / f"class{c}").mkdir(parents=True)
        for i in range(5):
            Image.fromarray(make_images(1)[0]).save(tmp_path / "data" / f"class{c}" / f"{i}.png")
    bad = tmp_path / "data" / "class1" / "3.png"
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2] if damage == "truncated" else b"not a png" * 10)
    with pytest.raises(UserError) as e:
        load_real("imagefolder", str(tmp_path / "data"), 8, 0.2, 0)
    assert str(e.value).startswith(f"{bad}: unreadable image (")
    assert str(e.value).endswith("replace it with a good copy or delete it")


@pytest.mark.slow
def test_prepare_real_ends_with_the_one_line_and_its_fix_works(tmp_path):
    path = tmp_path / "real.npz"
    path.write_text("not numpy\n")
    rc, line = _prepare(tmp_path, "npz", path)
    assert rc == 1 and line.startswith(f"prepare_real: {path}: not an npz archive")
    # the fix the line names: np.savez(FILE, image=..., label=np.asarray(labels, dtype=np.int64))
    np.savez(path, image=make_images(40), label=np.asarray([i % 2 for i in range(40)], dtype=np.int64))
    assert _prepare(tmp_path, "npz", path)[0] == 0
    assert io.load_images(tmp_path / "train.npz")[0].shape == (32, 8, 8, 3)


def test_damaged_outputs_of_the_workflow_name_the_file_and_the_rebuild(tmp_path):
    """The real split, FID statistics and quality files, an encoder: one line with `rm FILE &&
    snakemake --cores all FILE` (tests/test_refusals.py runs that command)."""
    from pipeline.evaluation import frechet, quality
    from pipeline.pretraining.encoders import Encoder, load_encoder, save_encoder

    split = tmp_path / "train.npz"
    io.save_images(split, make_images(40), np.arange(40) % 2)
    stats = tmp_path / "real.stats.npz"
    frechet.save_stats(stats, frechet.FeatureStats(3, np.ones(4), np.eye(4)), features="pixels")
    enc = tmp_path / "encoder.pt"
    save_encoder(enc, Encoder([8], [1], [0.5] * 3, [0.25] * 3), {})
    q = tmp_path / "real.quality.npz"
    np.savez(q, start=0, meta="{}", features=np.ones((50, 4), np.float32))
    for path, read in ((split, io.load_images), (stats, frechet.load_stats),
                       (stats, frechet.load_reference), (enc, load_encoder),
                       (q, quality.load_quality)):
        good = path.read_bytes()
        # torch.load checks no CRC: a flipped byte in a .pt is for its checksum record to catch
        for damage in ("flip", "truncate") if path.suffix == ".npz" else ("truncate",):
            if damage == "flip":
                _flip(path, 0.7)
            else:
                path.write_bytes(good[:len(good) // 2])
            with pytest.raises(UserError) as e:
                read(path)
            line = str(e.value)
            assert line.startswith(f"{path}: damaged or truncated (") and "\n" not in line, line
            assert f"delete it and rebuild it: rm {path} && snakemake --cores all {path}" in line
            path.write_bytes(good)


def test_a_truncated_checkpoint_names_the_file_and_that_deleting_it_starts_fresh(tmp_path):
    """torch.load's `OSError: [Errno 22] Invalid argument` (no file named) becomes the line;
    the fix it names, deleting the file, makes the job start fresh (resume finds none)."""
    from pipeline.pretraining.loop import resume

    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"run_key": "x", "method": {"w": torch.zeros(1000)}}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:3000])
    with pytest.raises(UserError) as e:
        resume(ckpt, "x", state=None, device="cpu")
    assert str(e.value).startswith(f"{ckpt}: damaged or truncated (torch.load: ")
    assert str(e.value).endswith(f"a damaged checkpoint: delete it and the job starts fresh: "
                                 f"rm {ckpt}, then run snakemake again")
    ckpt.unlink()
    assert resume(ckpt, "x", state=None, device="cpu") == (0, [])


def test_a_damaged_generated_npz_names_the_file_for_cut_npz(tmp_path):
    from pipeline.data.npz_source import cut_into_shards

    path = tmp_path / "gen.npz"
    io.save_images(path, make_images(30), np.zeros(30, np.int64))
    path.write_bytes(path.read_bytes()[:-100])  # a truncated download
    with pytest.raises(UserError) as e:
        cut_into_shards([path], [tmp_path / "s.json"], 30, 30)
    assert str(e.value).startswith(f"{path}: damaged or truncated (BadZipFile")
    assert str(e.value).endswith("your input file: write or download it again")


def test_a_full_disk_names_the_file_and_the_space_needed(tmp_path, monkeypatch):
    """ENOSPC on a write (injected: numpy's writer fails after 4 kB, as on a full disk)."""
    def fill(file, **arrays):
        with open(file, "wb") as f:
            f.write(b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", fill)
    target = tmp_path / "real" / "train.npz"
    with pytest.raises(UserError) as e:
        io.save_images(target, make_images(4), np.zeros(4, np.int64))
    line = str(e.value)
    assert line.startswith(f"{target}: no space left on the device of {target.parent} (the write "
                           "had reached 0.0 MB, ")
    assert "free more than 0.0 MB there, or set output_dir to a disk with room" in line
    assert not target.exists() and list(target.parent.iterdir()) == []  # nothing half-written


def test_pretrain_refuses_a_batch_larger_than_its_data_at_its_start(tmp_path):
    """What the config check cannot count when the workflow is read (an image folder, the
    search's rounds): the stage's own check, before any model is built."""
    from pipeline.data.dataset import pack
    from pipeline.pretrain import main

    io.save_images(tmp_path / "train.npz", make_images(20), np.arange(20) % 2)
    pack(tmp_path / "real", "real", [str(tmp_path / "train.npz")])
    argv = ["--real", str(tmp_path / "real"), "--out", str(tmp_path / "encoder.pt"),
            "--history", str(tmp_path / "history.csv"), "--method", "simclr", "--strategy",
            "none", "--seed", "0", "--dup", "1", "--augmentation", "standard", "--widths", "8",
            "--blocks", "1", "--steps", "3", "--batch-size", "32", "--optimizer", "adamw",
            "--lr", "0.002", "--weight-decay", "0", "--warmup-steps", "0", "--precision", "fp32",
            "--checkpoint-every", "0", "--log-every", "50", "--device", "cpu", "--threads", "1"]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert str(e.value) == ("pretrain.batch_size: 32 × 1 process(es) per step, but none trains "
                            "on 20 images (20 real ×1 + 0 generated); use at most 20")
    assert not (tmp_path / "encoder.pt").exists()
