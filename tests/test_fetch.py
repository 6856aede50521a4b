"""The fetch step (pipeline/core/assets.py, rules fetch_*): the external assets fetched once by
local rules before the jobs that need them, which then read only local files; without network
one line per asset, with the command and the config key that get it."""

from __future__ import annotations

import json
import os
import shlex
import socket
from pathlib import Path

import pytest
import torch
import yaml

from support.snakemake import REPO, TINY, run_command, run_snakemake as snakemake

from support.tiny import make_tiny_unet
from test_real_data import _write_cifar10
from pipeline.data.dataset import load_packed
from pipeline.core import assets, io
from pipeline.core.assets import FetchError

# Imported first by every Python process whose PYTHONPATH holds its folder (the jobs'): a
# connection to any network address fails and is written down in $NET_LOG. With $NO_MD5,
# torchvision's CIFAR check accepts synthetic batch files and the fetch step's sha256-prefix
# check a random-weight Inception file (the real hashes cannot be matched): "the file exists".
SITECUSTOMIZE = '''
import os, socket, sys
_connect = socket.socket.connect
def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        with open(os.environ["NET_LOG"], "a") as f:
            f.write(f"{os.getpid()} {sys.argv[:3]} {address}\\n")
        raise OSError(101, "Network is unreachable (blocked by the test)")
    return _connect(self, address)
socket.socket.connect = connect

if os.environ.get("NO_MD5"):
    import importlib.abc, importlib.util
    def _cifar(module):
        module.check_integrity = lambda fpath, md5=None: os.path.isfile(fpath)
    def _assets(module):
        module.hash_prefix = lambda url: ""
    _RELAX = {"torchvision.datasets.cifar": _cifar, "pipeline.core.assets": _assets}
    class _NoMd5(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name not in _RELAX:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            run = spec.loader.exec_module
            def exec_module(module):
                run(module)
                _RELAX[name](module)
            spec.loader.exec_module = exec_module
            return spec
    sys.meta_path.insert(0, _NoMd5())
'''


def offline_env(tmp_path: Path, **extra) -> dict:
    """The environment of a machine without network, for Snakemake and its jobs."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": f"{site}:{os.environ.get('PYTHONPATH', '')}",
            "NET_LOG": str(tmp_path / "net.log"), "HF_HOME": str(tmp_path / "hf"),
            "TORCH_HOME": str(tmp_path / "torch"), **extra}


@pytest.fixture
def no_network(monkeypatch):
    """In this process: every connection to a network address fails."""
    def refuse(self, address):
        raise OSError(101, "Network is unreachable (blocked by the test)")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_inception_weights_already_there_are_verified_and_kept(tmp_path, no_network):
    dest = tmp_path / "hub" / "checkpoints" / "weights.pth"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"weights")
    digest = io.sha256_file(dest)
    url = f"https://example.org/weights-{digest[:8]}.pth"  # the hash prefix in the name
    info = assets.fetch_inception(dest, tmp_path / "inception.json", url=url)
    assert info["sha256"] == digest and dest.read_bytes() == b"weights"
    assert io.read_json(tmp_path / "inception.json")["path"] == str(dest)


def test_damaged_inception_weights_are_moved_aside_and_fetched_again(tmp_path, no_network):
    dest = tmp_path / "weights.pth"
    dest.write_bytes(b"a truncated download")
    url = "https://example.org/weights-00000000.pth"
    with pytest.raises(FetchError) as e:
        assets.fetch_inception(dest, tmp_path / "inception.json", url=url, retry="RETRY")
    msg = str(e.value)
    assert "\n" not in msg and url in msg and "run `RETRY` on a machine with network" in msg
    assert "fid.weights" in msg
    assert not dest.exists() and Path(f"{dest}.corrupt").read_bytes() == b"a truncated download"
    assert not (tmp_path / "inception.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["weights.pth.corrupt"]  # no partial file


def test_a_fetch_record_is_stale_once_its_file_is_gone_resized_or_elsewhere(tmp_path):
    dest = tmp_path / "weights.pth"
    dest.write_bytes(b"weights")
    record = tmp_path / "inception.json"
    assert assets.drop_stale_file_record(record, dest) is None  # no record: nothing to say
    assets.fetch_inception(dest, record, url=f"https://x.org/w-{io.sha256_file(dest)[:8]}.pth")
    assert assets.drop_stale_file_record(record, dest) is None and record.exists()
    assert "not" in assets.stale_file_record(record, tmp_path / "other" / "weights.pth")
    dest.write_bytes(b"weights, truncated or grown")
    assert "now has" in assets.stale_file_record(record, dest)
    dest.unlink()
    line = assets.drop_stale_file_record(record, dest)
    assert str(record) in line and "missing" in line and "\n" not in line
    assert not record.exists()  # so that rule fetch_inception, its output missing, runs again


def test_cifar_already_there_is_verified_not_downloaded(tmp_path, no_network, monkeypatch):
    from torchvision.datasets import CIFAR10

    _write_cifar10(tmp_path / "cifar", __import__("numpy").random.default_rng(0))
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    # the synthetic files' own md5s in place of the real ones: torchvision checks each file
    monkeypatch.setattr(CIFAR10, "train_list", [[n, io_md5(folder / n)] for n, _ in CIFAR10.train_list])
    monkeypatch.setattr(CIFAR10, "test_list", [[n, io_md5(folder / n)] for n, _ in CIFAR10.test_list])
    monkeypatch.setattr(CIFAR10, "meta", dict(CIFAR10.meta, md5=io_md5(folder / "batches.meta")))
    info = assets.fetch_real("cifar10", tmp_path / "cifar", tmp_path / "real.json")
    assert set(info["files"]) == {f"data_batch_{i}" for i in range(1, 6)} | {"test_batch",
                                                                            "batches.meta"}
    # a damaged batch fails the md5 check: torchvision downloads again, which fails here
    with open(folder / "data_batch_3", "r+b") as f:
        f.write(b"\0")
    with pytest.raises(FetchError, match=r"cannot fetch cifar10 into .*real.root to a folder"):
        assets.fetch_real("cifar10", tmp_path / "cifar", tmp_path / "real2.json", retry="R")


def io_md5(path: Path) -> str:
    import hashlib

    return hashlib.md5(path.read_bytes()).hexdigest()


def write_hub_cache(hf_home: Path, repo_id: str, commit: str = "0" * 39 + "1") -> None:
    """A tiny DDPM pipeline in the Hugging Face cache's layout, as a download leaves it."""
    from diffusers import DDPMPipeline, DDPMScheduler

    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    pipe = DDPMPipeline(unet=make_tiny_unet(), scheduler=DDPMScheduler(num_train_timesteps=20))
    pipe.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)


@pytest.mark.e2e
@pytest.mark.heavy  # the preset's DAG twice, its fetch jobs (~30 s): CI runs it after the suite
def test_the_preset_without_network_fails_in_its_fetch_step_with_one_line_per_asset(tmp_path):
    """configs/cifar10.yaml on a machine without network: only the fetch jobs run, each fails
    with one line naming what it tried and the two ways out; no other job starts."""
    override = tmp_path / "here.yaml"
    override.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "out"),
                                        "real": {"root": str(tmp_path / "cifar")},
                                        "sampling": {"num_images": 100, "shard_size": 50},
                                        "fid": {"num_generated": "all"}}))
    preset = REPO / "configs" / "cifar10.yaml"
    env = offline_env(tmp_path, HF_HUB_OFFLINE="1")
    r = snakemake_env(env, "--cores", "2", "--keep-going", "--configfile", str(preset),
                      str(override), cwd=tmp_path)
    assert r.returncode != 0
    # the fix every line prints: the `fetch` target with both config files, both kept
    retry = (f"run `snakemake --cores 1 fetch --snakefile {REPO / 'workflow' / 'Snakefile'}"
             f" --configfile {preset} here.yaml`")
    lines = [line for line in r.stderr.splitlines() if line.startswith("fetch: ")]
    assert len(lines) == 3, r.stderr[-3000:]
    for asset, key in (("generator 'google/ddpm-cifar10-32'", "generator.model to a local"),
                       ("cifar10 into", "real.root to a folder"),
                       ("FID Inception weights https://", "fid.weights to a local")):
        (line,) = [line for line in lines if line.startswith(f"fetch: cannot fetch {asset}")]
        assert retry in line and f"or set {key}" in line
    assert "Please check out the root cause" not in r.stderr
    # the traceback is in the job's log only
    assert "Traceback" in (tmp_path / "out" / "logs" / "fetch" / "generator.log").read_text()
    assert "Traceback" not in r.stderr
    for rule in ("prepare_real", "sample", "fid_stats"):
        assert f"rule {rule}:" not in r.stdout + r.stderr  # never started
    assert not (tmp_path / "out" / "assets" / "generator").exists()
    # that command, run as printed (with -n), plans the three fetch jobs of both files' run
    dry = run_command([*shlex.split(retry.removeprefix("run `").rstrip("`")), "-n"], cwd=tmp_path)
    assert dry.returncode == 0, dry.stdout[-2000:] + dry.stderr[-2000:]
    for rule in ("fetch_generator", "fetch_real", "fetch_inception"):
        assert f"rule {rule}:" in dry.stdout
    assert f"{tmp_path}/out/assets/real.json" in dry.stdout  # here.yaml's output_dir
    assert "rule prepare_real:" not in dry.stdout


def snakemake_env(env: dict, *args, cwd, timeout=600):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return snakemake(*args, cwd=cwd, timeout=timeout)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.e2e
@pytest.mark.heavy  # ~150 s under the suite's load (~60 s of CPU): CI runs it after the suite
def test_with_local_copies_the_fetch_is_a_no_op_and_no_job_touches_the_network(tmp_path):
    """A hub model already in the Hugging Face cache, CIFAR batches already in real.root and
    the Inception file already in TORCH_HOME's hub cache: the fetch jobs verify and copy, and no
    job (fetch, prepare_real, sample, fid_stats on a shard) opens a network connection."""
    from pipeline.evaluation.frechet import fid_inception_architecture

    env = offline_env(tmp_path, HF_HUB_OFFLINE="1", NO_MD5="1")
    write_hub_cache(Path(env["HF_HOME"]), "test-org/tiny-ddpm")
    _write_cifar10(tmp_path / "cifar", __import__("numpy").random.default_rng(0))
    weights = Path(env["TORCH_HOME"]) / "hub" / "checkpoints" / Path(assets.FID_WEIGHTS_URL).name
    weights.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(fid_inception_architecture().state_dict(), weights)
    made = weights.stat().st_mtime_ns
    config = tmp_path / "local.yaml"
    config.write_text(yaml.safe_dump({
        "real": {"source": "cifar10", "root": str(tmp_path / "cifar"), "download": True,
                 "resolution": 8},
        "generator": {"source": "pretrained", "model": "test-org/tiny-ddpm"},
        "sampling": {"num_images": 6, "shard_size": 6, "steps": 2},
        "fid": {"features": "inception", "dims": 64, "batch_size": 20},  # weights: the cache's
    }))
    targets = ["results/real/train.npz", "results/fid/shard_00000.stats.npz"]
    r = snakemake_env(env, *targets, "--cores", "2", "--configfile", str(TINY), str(config),
                      cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert not (tmp_path / "net.log").exists(), (tmp_path / "net.log").read_text()
    record = json.loads((tmp_path / "results" / "assets" / "generator.json").read_text())
    assert record["commit"] == "0" * 39 + "1" and record["model"] == "test-org/tiny-ddpm"
    assert "unet/diffusion_pytorch_model.safetensors" in record["files"]
    assert len(load_packed(tmp_path / "results" / "samples" / "shard_00000.json")[0]) == 6
    # rule fetch_inception verified the cache's file in place (no download: kept, not moved)
    record = json.loads((tmp_path / "results" / "assets" / "inception.json").read_text())
    assert record["path"] == str(weights) and weights.stat().st_mtime_ns == made
    assert record["sha256"] == io.sha256_file(weights)
    # the fetch target has nothing left to do
    again = snakemake_env(env, "fetch", "-n", "--configfile", str(TINY), str(config), cwd=tmp_path)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.e2e
def test_damaged_fetched_inception_weights_fail_in_one_line_and_deleting_them_refetches(tmp_path):
    """Weights that rule fetch_inception verified, damaged since (random bytes where pytorch-fid's
    loader reads them, TORCH_HOME's hub cache): fid_stats fails with one line naming the file and
    the fix, its traceback in the job's log only; deleting the file as the line says makes the
    next run fetch it again."""
    import numpy as np

    env = offline_env(tmp_path)
    weights = Path(env["TORCH_HOME"]) / "hub" / "checkpoints" / Path(assets.FID_WEIGHTS_URL).name
    weights.parent.mkdir(parents=True)
    weights.write_bytes(np.random.default_rng(0).bytes(4096))
    # the record the fetch wrote while the file passed its check (the hash prefix in the url)
    url = f"https://x.org/pt_inception-{io.sha256_file(weights)[:8]}.pth"
    assets.fetch_inception(weights, tmp_path / "results" / "assets" / "inception.json", url=url)
    config = tmp_path / "inception.yaml"
    config.write_text(yaml.safe_dump({"fid": {"features": "inception", "dims": 64}}))
    args = ("results/fid/real.stats.npz", "--cores", "1", "--configfile", str(TINY), str(config))
    r = snakemake_env(env, *args, cwd=tmp_path)
    assert r.returncode != 0
    (line,) = [x for x in r.stderr.splitlines() if x.startswith("fid_stats: ")]
    assert f"FID Inception weights {weights}: " in line
    assert "delete it and run snakemake again" in line and "fid.weights" in line
    assert "Traceback" not in r.stderr
    assert "Traceback" in (tmp_path / "results" / "logs" / "fid_stats" / "real.log").read_text()

    weights.unlink()
    dry = snakemake_env(env, *args, "-n", cwd=tmp_path)
    assert dry.returncode == 0 and "rule fetch_inception:" in dry.stdout, dry.stderr[-2000:]
    assert "removed, so that the fetch runs again" in dry.stderr


@pytest.mark.slow
def test_the_preset_plans_its_fetch_rules_as_local_rules_upstream(cifar10_dry_run, tmp_path):
    """configs/cifar10.yaml: one fetch job per asset, run on the host running Snakemake (local
    rules), upstream of sampling (a local folder, not the hub id), FID (--weights, the file the
    fetch verified) and prepare_real (no --download)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    out = cifar10_dry_run.stdout
    for rule in ("fetch_generator", "fetch_real", "fetch_inception"):
        assert f"rule {rule}:" in out
    sample = [line for line in out.splitlines() if "python -m pipeline.sample" in line]
    assert len(sample) == 20 and all("--model results/cifar10/assets/generator " in line
                                     for line in sample)
    inputs = [line.strip() for line in out.splitlines() if line.strip().startswith("input:")]
    # the 20 sampling jobs, the report (which states the commit fetched) and rule all (which asks
    # for every output, the fetch records included)
    assert sum("results/cifar10/assets/generator.json" in line for line in inputs) == 22
    assert sum("results/cifar10/assets/inception.json" in line for line in inputs) == 22
    assert sum(line == "input: results/cifar10/assets/real.json" for line in inputs) == 1
    fid = [line for line in out.splitlines() if "python -m pipeline.fid_stats" in line]
    assert len(fid) == 21 and all("--weights " in line and "pt_inception-2015-12-05-6726825d.pth"
                                  in line for line in fid)
    (prepare,) = [line for line in out.splitlines() if "python -m pipeline.prepare_real" in line]
    assert "--download" not in prepare
    # Snakemake's dry run does not print which rules are local: ask the parsed workflow
    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=1), snakefile=REPO / "workflow" / "Snakefile",
            config_settings=ConfigSettings(configfiles=[REPO / "configs" / "cifar10.yaml"]),
            workdir=tmp_path)._workflow
        local = {r.name for r in workflow.rules if r.name in workflow._localrules}
    assert local == {"fetch", "fetch_generator", "fetch_real", "fetch_inception"}


def test_the_printed_retry_puts_the_target_before_every_config_file(tmp_path):
    """--configfile takes every word after it: the retry names `fetch` first, then all the run's
    config files after one --configfile (a repeated --configfile keeps only the last), relative
    to where the run started when under it, and --config values, the Snakefile and --directory
    only where the run had them."""
    from pipeline.dag.job_params import fetch_retry

    here, snakefile = tmp_path / "clone", tmp_path / "clone" / "workflow" / "Snakefile"
    files = [here / "configs" / "cifar10.yaml", tmp_path / "site.yaml"]
    retry = fetch_retry(files, [], snakefile, here, here)
    assert shlex.split(retry) == ["snakemake", "--cores", "1", "fetch", "--configfile",
                                  "configs/cifar10.yaml", str(tmp_path / "site.yaml")]
    elsewhere = fetch_retry(files[:1], ["output_dir='/x y'"], snakefile, tmp_path, tmp_path / "w")
    assert shlex.split(elsewhere) == [
        "snakemake", "--cores", "1", "fetch", "--snakefile", "clone/workflow/Snakefile",
        "--directory", "w", "--configfile", "clone/configs/cifar10.yaml", "--config",
        "output_dir='/x y'"]
    assert fetch_retry([], [], snakefile, here, here) == "snakemake --cores 1 fetch"


def test_dinov2_fetch_offline_fails_in_one_line_naming_the_local_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    dest = tmp_path / "hub" / "checkpoints" / "vit_large_patch14_dinov2.lvd142m.safetensors"
    with pytest.raises(FetchError) as e:
        assets.fetch_dinov2(assets.DINOV2_REPO, dest, tmp_path / "dinov2.json", retry="RETRY")
    line = str(e.value)
    assert line.startswith(f"cannot fetch DINOv2 weights {assets.DINOV2_REPO}/model.safetensors")
    assert "run `RETRY`" in line and "or set fid.weights to a local copy" in line
    assert "\n" not in line and not dest.exists() and not (tmp_path / "dinov2.json").exists()


@pytest.mark.slow
def test_the_preset_with_dinov2_features_plans_fetch_dinov2_upstream_of_fid(tmp_path):
    """configs/cifar10.yaml with fid.features dinov2: rule fetch_dinov2 (timm's hub file of
    ViT-L/14 into the torch.hub cache) instead of fetch_inception, its record an input of every
    FID statistics job, and those jobs read the file it fetched."""
    override = tmp_path / "dinov2.yaml"
    override.write_text("fid: {features: dinov2}\n")
    r = snakemake("-n", "-p", "--configfile", str(REPO / "configs" / "cifar10.yaml"),
                  str(override), cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "rule fetch_dinov2:" in r.stdout and "rule fetch_inception:" not in r.stdout
    assert "--repo timm/vit_large_patch14_dinov2.lvd142m" in r.stdout
    fid = [line for line in r.stdout.splitlines() if "python -m pipeline.fid_stats" in line]
    assert len(fid) == 21 and all(
        "--features dinov2 " in line and "--dinov2-arch vit_large_patch14_dinov2.lvd142m" in line
        and "checkpoints/vit_large_patch14_dinov2.lvd142m.safetensors" in line for line in fid)
    inputs = [line for line in r.stdout.splitlines() if line.strip().startswith("input:")]
    # as inception.json in the Inception preset (test above)
    assert sum("results/cifar10/assets/dinov2.json" in line for line in inputs) == 22
