"""Records (pipeline.core.records): an output's checksum and provenance beside it, checked by
its readers, by the workflow when it is read, and the user's inputs by content."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from pipeline.core import io, records
from pipeline.dag.provenance import differences
from pipeline.vocab.options import SAMPLE


def flip(path, offset=-1):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_damaged_file_is_one_line_naming_it_and_moved_aside(tmp_path):
    path = tmp_path / "train.npz"
    io.save_images(path, np.zeros((4, 8, 8, 3), np.uint8), np.arange(4))
    record = records.write(path, {"--seed": ["0"]}, device="cpu", source="digits")
    assert record["settings"] == {"--seed": ["0"]} and record["made_by"]["device"] == "cpu"
    assert {"code", "torch", "diffusers", "python"} <= record["made_by"].keys()
    assert record["made_by"]["code"] and record["made_by"]["torch"]  # this checkout's commit
    io.load_images(path)  # verified, intact
    flip(path, 200)
    with pytest.raises(records.RecordError) as e:
        io.load_images(path)
    line = str(e.value)
    assert "\n" not in line and str(path) in line and "sha256" in line
    assert "moved aside to train.npz.corrupt" in line and "next run rebuilds it" in line
    assert not path.exists() and (tmp_path / "train.npz.corrupt").exists()


def test_a_truncated_file_and_a_folder(tmp_path):
    folder = tmp_path / "generator"
    (folder / "unet").mkdir(parents=True)
    (folder / "unet" / "weights.bin").write_bytes(b"x" * 100)
    (folder / ".snakemake_timestamp").write_text("")
    records.write(folder)
    assert records.verify(folder)["files"].keys() == {"unet/weights.bin"}
    (folder / "unet" / "weights.bin").write_bytes(b"x" * 50)
    with pytest.raises(records.RecordError, match="50 bytes, its record says 100"):
        records.verify(folder)
    assert (tmp_path / "generator.corrupt").is_dir()


def test_a_file_without_record_is_a_users_and_used_as_it_is(tmp_path):
    path = tmp_path / "mine.npz"
    io.save_images(path, np.zeros((2, 8, 8, 3), np.uint8), np.arange(2))
    assert records.verify(path) is None
    io.load_images(path)


def test_the_sweep_moves_damaged_outputs_aside_and_hashes_only_what_changed(tmp_path,
                                                                           monkeypatch):
    files = [tmp_path / f"f{i}.bin" for i in range(3)]
    for f in files:
        f.write_bytes(os.urandom(1000))
        records.write(f)
    cache = tmp_path / ".records" / "outputs.json"
    assert records.sweep(files, cache) == []
    hashed = []
    real = records._sha256
    monkeypatch.setattr(records, "_sha256", lambda p: hashed.append(p) or real(p))
    assert records.sweep(files, cache) == [] and hashed == []  # nothing changed: no hashing
    flip(files[1])
    (lines,) = [records.sweep(files, cache)]
    assert hashed == [files[1]] and len(lines) == 1 and str(files[1]) in lines[0]
    assert not files[1].exists() and (tmp_path / "f1.bin.corrupt").exists()


def test_an_input_record_changes_with_the_content_only(tmp_path, monkeypatch):
    data, record, cache = tmp_path / "real.npz", tmp_path / "inputs" / "real.json", \
        tmp_path / "cache.json"
    data.write_bytes(b"a" * 64)
    records.input_record(data, record, cache)
    first = record.read_bytes()
    made = record.stat().st_mtime_ns
    hashed = []
    real = records._sha256
    monkeypatch.setattr(records, "_sha256", lambda p: hashed.append(p) or real(p))
    records.input_record(data, record, cache)
    assert hashed == [] and record.stat().st_mtime_ns == made  # cached by size and time
    os.utime(data, ns=(1, 1))  # touched, same content: hashed again, the record unchanged
    records.input_record(data, record, cache)
    assert record.read_bytes() == first and record.stat().st_mtime_ns == made
    stat = data.stat()
    data.write_bytes(b"b" * 64)  # replaced in place, even with the old time kept
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    records.input_record(data, record, cache)
    assert record.read_bytes() != first


def test_a_damaged_checkpoint_is_ignored_never_resumed(tmp_path, caplog):
    from pipeline.pretraining.loop import readable_checkpoint

    path = tmp_path / "checkpoint.pt"
    torch.save({"step": 2}, path)
    records.write(path, {"run_key": "k"})
    assert readable_checkpoint(path)
    flip(path, 100)
    assert not readable_checkpoint(path)
    assert "fails its checksum" in caplog.text and "starting fresh" in caplog.text


def test_settings_differences_name_the_flag_and_both_values():
    recorded = {"--steps": ["10"], "--sampler": ["ddim"], "--out": ["a.json"]}
    assert differences(SAMPLE, recorded, "--sampler ddim --steps 12") == ["--steps 10 -> 12"]
    assert differences(SAMPLE, recorded, "--sampler ddim --steps 10") == []


def test_an_encoder_is_verified_before_it_is_loaded(tmp_path):
    from pipeline.pretraining.encoders import Encoder, load_encoder, save_encoder

    path = tmp_path / "encoder.pt"
    save_encoder(path, Encoder([4], [1], [0.5] * 3, [0.25] * 3), {})
    records.write(path, {"--steps": ["3"]})
    load_encoder(path)
    flip(path, 300)
    with pytest.raises(records.RecordError, match="encoder.pt does not match its record"):
        load_encoder(path)
    assert (tmp_path / "encoder.pt.corrupt").exists()


def test_a_packed_folder_that_lost_its_manifest_is_moved_aside(tmp_path):
    from pipeline.data.dataset import ChecksumError, load_packed, pack, write_content_record

    data = tmp_path / "train.npz"
    io.save_images(data, np.zeros((4, 8, 8, 3), np.uint8), np.arange(4))
    folder = tmp_path / "dataset" / "real"
    write_content_record(f"{folder}.json", pack(folder, "real", [str(data)]))
    (folder / "manifest.json").unlink()
    with pytest.raises(ChecksumError) as e:
        load_packed(folder)
    assert "\n" not in str(e.value) and "no manifest.json" in str(e.value)
    assert not folder.exists() and (tmp_path / "dataset" / "real.corrupt").is_dir()


def test_the_sweep_waits_while_another_run_holds_the_output_folder(tmp_path):
    """A run writing there renames an output into place a moment before its record: the start
    of a second run (refused by the lock anyway) must not take that for damage."""
    from pipeline.dag import run_lock

    assert not run_lock.in_use(tmp_path)
    held = run_lock.hold(tmp_path, tmp_path)
    assert run_lock.in_use(tmp_path)
    held.close()
    assert not run_lock.in_use(tmp_path)


def test_a_shard_records_the_fetched_generators_revision(tmp_path):
    from pipeline.sample import fetched_revision

    (tmp_path / "generator").mkdir()
    io.write_json(tmp_path / "generator.json", {"commit": "abc123", "files": {}})
    assert fetched_revision(str(tmp_path / "generator")) == "abc123"
    assert fetched_revision(str(tmp_path / "mine")) is None  # a user's folder: none


def test_the_report_reads_the_sampler_from_the_shards_records(tmp_path):
    from pipeline.data.dataset import recorded_sampling, write_shard

    images, labels = np.zeros((2, 8, 8, 3), np.uint8), np.zeros(2, np.int64)
    made = {"settings": {"--sampler": ["ddim"], "--steps": ["10"], "--seed": ["0"]}}
    write_shard(tmp_path / "shard_00000.json", images, labels, made_by=made)
    write_shard(tmp_path / "shard_00001.json", images, labels, made_by=made)
    shards = [str(tmp_path / f"shard_0000{i}.json") for i in (0, 1)]
    assert recorded_sampling(shards) == {"sampler": "ddim", "steps": 10, "seed": 0}
    made["settings"]["--steps"] = ["12"]  # shards of two settings: both said
    write_shard(tmp_path / "shard_00001.json", images, labels, made_by=made)
    assert recorded_sampling(shards)["steps"] == "10 / 12"
    write_shard(tmp_path / "shard_00000.json", images, labels)  # no record: nothing said
    assert recorded_sampling(shards[:1]) == {}


def test_snakemakes_metadata_is_found_as_its_persistence_names_it(tmp_path):
    from base64 import urlsafe_b64encode

    from pipeline.dag.provenance import has_snakemake_metadata

    short, long = "results/fid.json", "results/" + "x" * 300 + ".json"
    meta = tmp_path / ".snakemake" / "metadata"
    meta.mkdir(parents=True)
    (meta / urlsafe_b64encode(short.encode()).decode()).write_text("{}")
    name = urlsafe_b64encode(long.encode()).decode()
    (meta / ("@" + name[:254])).mkdir()
    (meta / ("@" + name[:254]) / name[254:]).write_text("{}")
    assert has_snakemake_metadata(short, tmp_path) and has_snakemake_metadata(long, tmp_path)
    assert not has_snakemake_metadata("results/other.json", tmp_path)
