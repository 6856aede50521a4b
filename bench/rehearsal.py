"""The cifar10 preset's rehearsal: its whole DAG through Snakemake, every real architecture, at
tiny counts (configs/rehearsal.yaml laid after configs/cifar10.yaml), offline.

    python bench/rehearsal.py                     # CPU, 2 cores: a work folder under /tmp
    python bench/rehearsal.py --dry-run           # make the inputs, plan the DAG, check its jobs
    python bench/rehearsal.py --device cuda --compile --threads 2 --cores 16   # on a GPU
                                                  # (bench/gpu.py --all runs it so)
    python bench/rehearsal.py --authors-data --methods simclr   # the authors'-data preset

It makes the preset's inputs in the work folder, in their real formats:
  data/cifar10/cifar-10-batches-py/   CIFAR-10's python pickles (what torchvision reads), random
                                      images; `download` is off
  generator/ddpm-cifar10-32/          google/ddpm-cifar10-32's exact UNet and scheduler config
                                      (pipeline.generation.unet), random weights, save_pretrained
  torch_home/hub/checkpoints/         pytorch-fid's Inception file name, random weights: the
                                      preset's loading path (fid.weights null: TORCH_HOME's cache)
  data/generated/cifar10-edm-1m.npz   with --authors-data: the authors' npz format (`image`,
                                      `label` 0..9 sorted by class), configs/cifar10-authors-data.yaml
                                      laid over the preset (cut into shards, labels kept)
then runs `snakemake --cores N --configfile configs/cifar10.yaml configs/rehearsal.yaml` there
(TORCH_HOME set to that folder; the hub offline), prints its exact CPU and wall seconds
(bench/workflow_cpu.py) and checks that the outputs are the preset's full set.

Synthetic pickles cannot carry the real files' md5s, which torchvision checks: the run's
processes get bench/rehearsal_site/sitecustomize.py, which relaxes that one check to "exists".
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))
import workflow_cpu  # noqa: E402

PRESET = REPO / "configs" / "cifar10.yaml"
OVERLAY = REPO / "configs" / "rehearsal.yaml"
SNAKEFILE = REPO / "workflow" / "Snakefile"
SITE = HERE / "rehearsal_site"
AUTHORS_PRESET = REPO / "configs" / "cifar10-authors-data.yaml"
AUTHORS_NPZ = yaml.safe_load(AUTHORS_PRESET.read_text())["generator"]["path"]
AUTHORS_OUT = "results/rehearsal-authors-data"
# the rehearsal's images, as configs/rehearsal.yaml sets them (the authors' file holds as many)
SAMPLED_IMAGES, SHARD_SIZE = (yaml.safe_load(OVERLAY.read_text())["sampling"][k]
                              for k in ("num_images", "shard_size"))
METHODS = ("simclr", "mocov2plus", "byol", "barlow")
STRATEGIES = ("none", "vanilla", "adainf")
PROTOCOLS = ("online", "offline", "features")


# -- the inputs, each in its real format --------------------------------------------------------

class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (BINSTRING), as the official CIFAR pickles do: torchvision's
    `pickle.load(f, encoding="latin1")` then returns the str keys ("data") it looks up."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        n = len(obj)
        head = (pickle.SHORT_BINSTRING + bytes([n]) if n < 256
                else pickle.BINSTRING + struct.pack("<i", n))
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _dump_py2(path: Path, obj) -> None:
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


def write_cifar10_pickles(root, train_images, train_labels, test_images, test_labels) -> Path:
    """CIFAR-10's python version under root/cifar-10-batches-py: data_batch_1..5 (the train
    split in five parts), test_batch and batches.meta, each row 3072 bytes (all red, then green,
    then blue values, row-major), labels 0..9. Returns the folder."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(label: str, images, labels):
        images = np.asarray(images, np.uint8)
        assert images.shape[1:] == (32, 32, 3), images.shape
        rows = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), 3072))
        return {b"batch_label": label.encode(), b"labels": [int(v) for v in labels],
                b"data": rows, b"filenames": [b"img_%05d.png" % i for i in range(len(images))]}

    parts = np.array_split(np.arange(len(train_images)), 5)
    for i, idx in enumerate(parts):
        _dump_py2(folder / f"data_batch_{i + 1}", batch(f"training batch {i + 1} of 5",
                                                        train_images[idx], train_labels[idx]))
    _dump_py2(folder / "test_batch", batch("testing batch 1 of 1", test_images, test_labels))
    _dump_py2(folder / "batches.meta", {b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                                        b"num_cases_per_batch": len(parts[0]), b"num_vis": 3072})
    return folder


def save_ddpm_cifar10_like(folder, seed: int = 0) -> Path:
    """google/ddpm-cifar10-32's pipeline layout (model_index.json, unet/, scheduler/) with its
    exact configs and random weights."""
    from pipeline.generation.unet import ddpm_cifar10_32, save_generator

    unet, scheduler = ddpm_cifar10_32(seed)
    save_generator(folder, unet, scheduler)
    return Path(folder)


def write_random_inception(torch_home, seed: int = 0, calibration_images: int = 2) -> Path:
    """pytorch-fid's FID Inception (random weights) where torch.hub looks for its download:
    TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth."""
    import torch

    from pipeline.evaluation.frechet import FID_WEIGHTS_URL, fid_inception_architecture

    torch.manual_seed(seed)
    net = fid_inception_architecture()
    # Random convolutions shrink the signal layer by layer: with batch norm's initial running
    # statistics the pool3 features come out ~1e-7 and every FID ~1e-12. One pass in training
    # mode over random inputs sets each batch norm's statistics (momentum None: their plain
    # average), so the features are of order one and an FID is a number that can go wrong.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    with torch.no_grad():
        net.train()(torch.randn(calibration_images, 3, 299, 299))
    path = Path(torch_home) / "hub" / "checkpoints" / Path(FID_WEIGHTS_URL).name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.eval().state_dict(), path)
    return path


def write_authors_npz(path, n: int, seed: int = 0, num_classes: int = 10) -> Path:
    """An npz in the AdaInf authors' format for generated data: `image` uint8 N×32×32×3 and
    `label` int64 class ids, sorted by class as DM-Improves-AT's EDM 1M CIFAR-10 file is."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.sort(np.arange(n) % num_classes).astype(np.int64)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, image=images, label=labels)
    return Path(path)


def make_inputs(work, train: int = 200, test: int = 100, seed: int = 0,
                authors_data: bool = False) -> dict:
    """Every input of the preset under `work`, where configs/rehearsal.yaml expects them (with
    `authors_data`, the npz file that configs/cifar10-authors-data.yaml reads in place of the
    generator)."""
    work = Path(work)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (train + test, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(train + test) % 10  # every class in both splits
    made = {"cifar10": write_cifar10_pickles(work / "data" / "cifar10", images[:train],
                                             labels[:train], images[train:], labels[train:]),
            "inception": write_random_inception(work / "torch_home", seed)}
    if authors_data:
        made["generated"] = write_authors_npz(work / AUTHORS_NPZ, SAMPLED_IMAGES, seed)
    else:
        made["generator"] = save_ddpm_cifar10_like(work / "generator" / "ddpm-cifar10-32", seed)
    return made


# -- the run ----------------------------------------------------------------------------------

def snakemake_command(cores: int, *extra: str, authors_data: bool = False) -> list[str]:
    presets = [str(PRESET), *([str(AUTHORS_PRESET)] if authors_data else []), str(OVERLAY)]
    return [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--cores", str(cores),
            "--configfile", *presets, *extra]


def run_environment(work) -> dict:
    """The run's environment: TORCH_HOME with the Inception file, no hub, the md5 relaxation."""
    path = os.pathsep.join([str(SITE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {"TORCH_HOME": str(Path(work) / "torch_home"), "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": path}


def planned_cells(methods=METHODS) -> list[tuple[str, str, str]]:
    """(method, strategy, protocol) of every evaluation the preset plans: each strategy under
    each protocol, and the untrained encoder (random_init) under offline and features only (an
    untrained encoder has no probe trained beside it)."""
    return [(m, s, p) for m in methods for s in (*STRATEGIES, "random_init") for p in PROTOCOLS
            if not (s == "random_init" and p == "online")]


def check_summary(summary: dict, methods=METHODS) -> None:
    """The report's summary.json holds a numeric top-1 for every planned cell: the files of the
    evaluations can all exist while the report dropped or mislabelled one. Raises an
    AssertionError naming the first missing cell."""
    have = {(c["method"], c["strategy"], c["protocol"]): c.get("top1_mean")
            for c in summary.get("cells", [])}
    for cell in planned_cells(methods):
        top1 = have.get(cell)
        numeric = isinstance(top1, (int, float)) and not isinstance(top1, bool) \
            and np.isfinite(top1)
        assert numeric, (f"summary.json: no numeric top-1 for {'/'.join(cell)} "
                         f"(method/strategy/protocol; found {top1!r})")


def check_outputs(out, methods=METHODS) -> dict:
    """The preset's full set of outputs: one accuracy per protocol for each method × 3
    strategies (and the untrained encoder), each also a cell of summary.json, FID over ≥ 2 shards
    of 2048-d Inception features, the report's files. Returns the figures; raises
    AssertionError naming what is missing."""
    out = Path(out)
    report = out / "reports" / "default"  # the presets keep config.yaml's name
    missing = [str(p) for p in [*(report / f for f in ("summary.json", "summary.md", "summary.html",
                                                      "samples.png", "losses.png", "online.png")),
                                out / "fid.json"] if not p.is_file()]
    assert not missing, f"missing outputs in {out}: {missing}"
    fid = json.loads((out / "fid.json").read_text())
    assert fid["features"] == "inception" and fid["dims"] == 2048, fid
    shards = sorted((out / "fid").glob("shard_*.stats.npz"))
    assert len(shards) >= 2, f"FID from {len(shards)} shard(s)"
    accuracy = {}
    for m, s, p in planned_cells(methods):
        # the online probe's result is pretraining's own output
        f = out / ("pretrain" if p == "online" else "linear") / m / s / "seed5" / f"{p}.json"
        assert f.is_file(), f"missing {f}"
        accuracy[f"{m}/{s}/{p}"] = json.loads(f.read_text())["top1"]
    check_summary(json.loads((report / "summary.json").read_text()), methods)
    return {"fid": fid["fid"], "fid_shards": len(shards), "evaluations": len(accuracy),
            "accuracy": accuracy}


def planned_jobs(dry_run_stdout: str) -> dict[str, int]:
    """{rule: jobs} from the "Job stats" table of `snakemake -n` (its total left out)."""
    table = dry_run_stdout[dry_run_stdout.index("Job stats:"):].splitlines()[3:]
    jobs = {}
    for line in table:
        words = line.split()
        if len(words) != 2 or not words[1].isdigit():
            break
        jobs[words[0]] = int(words[1])
    jobs.pop("total", None)
    return jobs


def check_plan(jobs: dict[str, int], methods: int = len(METHODS),
               authors_data: bool = False) -> None:
    """The preset's DAG: each method × 3 strategies pretrained, one untrained encoder per method,
    offline and features for each (online comes from pretraining), one FID over ≥ 2 shards,
    sampled, or with the authors' data cut from their file by one job (and nothing sampled)."""
    want = {"pretrain": 3 * methods, "init_encoder": methods, "linear_eval": 8 * methods,
            "fid": 1, "report": 1}
    if authors_data:
        want.update(cut_npz=1, sample=None, train_generator=None, fetch_generator=None)
    wrong = {k: (jobs.get(k), v) for k, v in want.items() if jobs.get(k) != v}
    assert not wrong, f"planned jobs (got, want): {wrong}"
    shards = SAMPLED_IMAGES // SHARD_SIZE + bool(SAMPLED_IMAGES % SHARD_SIZE)
    assert jobs.get("sample", shards) >= 2 and jobs["fid_stats"] == shards + 1, jobs


def write_overlay(work, device: str | None, compile: bool, threads: int | None,
                  methods: list[str] | None = None, authors_data: bool = False) -> list[str]:
    """A last config file in `work` for what this run changes (none: an empty list)."""
    extra = {}
    if authors_data:  # its own output folder, the file's 24 images as configs/rehearsal.yaml's
        extra["output_dir"] = AUTHORS_OUT
        extra["sampling"] = {"num_images": SAMPLED_IMAGES}
    if methods:
        extra["experiments"] = {"methods": methods}
    if device:
        extra["device"] = device
    if compile:
        extra.setdefault("sampling", {})["compile"] = True  # the preset's own: configs/rehearsal.yaml turns it off
    if threads:
        extra["threads"] = {"default": threads}
    if not extra:
        return []
    path = Path(work) / "overlay.yaml"
    path.write_text(json.dumps(extra) + "\n")  # JSON is YAML
    return [str(path)]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", default=None, help="work folder (default: a new one under /tmp)")
    p.add_argument("--cores", type=int, default=2, help="Snakemake's --cores")
    p.add_argument("--device", default=None,
                   help="`device` for every job: cpu, cuda, cuda:1 (default: the preset's, auto)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the UNet as the preset does (rehearsal.yaml turns it off: "
                        "minutes of Inductor on a CPU)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per job (default: the preset's 8); on one GPU, fewer threads "
                        "let jobs share it")
    p.add_argument("--dry-run", action="store_true",
                   help="make the inputs and plan the DAG (`snakemake -n`), checking its jobs")
    p.add_argument("--train", type=int, default=200, help="CIFAR-10 train images written")
    p.add_argument("--test", type=int, default=100, help="CIFAR-10 test images written")
    p.add_argument("--authors-data", action="store_true",
                   help="lay configs/cifar10-authors-data.yaml over the preset too: the authors' "
                        "npz (made here, in their format) cut into shards, its labels kept")
    p.add_argument("--methods", nargs="+", default=None, choices=METHODS,
                   help="pretrain only these methods (default: the preset's four)")
    p.add_argument("--out", default=None, help="JSON file for the figures")
    args = p.parse_args(argv)
    methods = args.methods or list(METHODS)
    work = Path(args.work or tempfile.mkdtemp(prefix="rehearsal-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    made = make_inputs(work, args.train, args.test, authors_data=args.authors_data)
    print(f"inputs in {work}: " + ", ".join(str(v.relative_to(work)) for v in made.values()),
          flush=True)
    configs = write_overlay(work, args.device, args.compile, args.threads, args.methods,
                            args.authors_data)
    command = snakemake_command(args.cores, *configs, authors_data=args.authors_data)
    os.environ.update(run_environment(work))
    os.chdir(work)
    figures = {"work": str(work), "cores": args.cores, "device": args.device or "auto",
               "compile": args.compile, "authors_data": args.authors_data, "methods": methods}
    if args.dry_run:
        r = subprocess.run(command + ["-n"], capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"snakemake -n failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        figures["planned_jobs"] = jobs = planned_jobs(r.stdout)
        check_plan(jobs, len(methods), args.authors_data)
        print(f"rehearsal planned: {sum(jobs.values())} jobs {jobs}")
    else:
        run = workflow_cpu.run_and_measure(command, work / "benchmarks")
        figures.update(cpu_s=run["cpu_s"], wall_s=run["wall_s"],
                       **check_outputs(work / (AUTHORS_OUT if args.authors_data
                                               else "results/rehearsal"), methods))
        print(f"rehearsal: {figures['evaluations']} evaluations ({len(methods)} methods × 3 "
              "strategies + "
              f"random_init, 3 protocols), FID {figures['fid']:.2f} over "
              f"{figures['fid_shards']} shards at 2048-d; {run['cpu_s']:.0f} s CPU, "
              f"{run['wall_s']:.0f} s wall on {args.cores} cores")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    return figures


if __name__ == "__main__":
    main()
