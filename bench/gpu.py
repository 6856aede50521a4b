"""Every GPU-side figure in one command, at real size, against the targets.

    python bench/gpu.py                 # on a GPU: writes bench/results/gpu-<device>.json/.txt
    python bench/gpu.py --smoke         # tiny sizes on CPU, seconds: checks the script runs
    python bench/gpu.py --all           # the one command for a lent GPU: every section, then
                                        # the preset's rehearsal on it (sized for ≤ 8 min on an
                                        # H200: ~1-2 min each for sampling, pretrain (both with
                                        # Inductor's compile) and the rehearsal; not yet timed)
    python bench/gpu.py --profile       # and each section that misses a target runs once more
                                        # under torch.profiler: its top ops by self time in
                                        # gpu-<device>-profile-<section>.txt (adds that rerun)

Random weights stand in for the hub models (speed does not depend on weights): the UNet of
google/ddpm-cifar10-32, pytorch-fid's Inception (the real one if its weights are cached) and
ResNet-18 with the CIFAR stem. Sections:
  sampling   EDM 35 evaluations, bf16, compiled, batch 1024: images/s, TFLOP/s, % of bf16 peak,
             ratio per image to DDPMPipeline's defaults (same run), 1M images extrapolated;
             and every sampler's images/s at ~20 evaluations (bench/sampler_fid.py's steps)
  fid        Inception statistics in fp32, TF32, bf16: images/s and the FID change each causes
  pretrain   SimCLR ResNet-18, global batch 512, bf16, compiled, channels_last: our loop vs a
             torchvision DataLoader with the same augmentations vs the model step alone
  memory     peak device memory with 50k real + 1M generated images resident, vs the plan
  ddp        one torchrun process (NCCL, SyncBN on CUDA), checkpoint, kill, resume
  rehearsal  (--all) configs/cifar10.yaml's whole DAG at tiny counts (bench/rehearsal.py) on this
             device, bf16, compiled, channels_last; planned only (snakemake -n) with --smoke
The timing helpers are bench/sample.py's, bench/fid.py's and bench/pretrain.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
import pretrain as bench_pretrain  # noqa: E402

from pipeline.pretraining.augment import view_params  # noqa: E402
from pipeline.pretraining.distributed import DistContext, init_distributed  # noqa: E402
from pipeline.pretraining.encoders import Encoder  # noqa: E402
from pipeline.core.runtime import resolve_device  # noqa: E402
from pipeline.pretraining.methods import build_method  # noqa: E402
from pipeline.pretraining.loop import PretrainConfig, estimate_run_memory, pretrain  # noqa: E402

# Dense bf16 tensor-core peaks (TFLOP/s), NVIDIA datasheets; the most specific name first.
BF16_PEAK_TFLOPS = [("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4),
                    ("H200 NVL", 835.0), ("H200", 989.4), ("A100", 312.0), ("L40S", 362.1),
                    ("A10G", 70.0)]
# Issue 21's goals (section 3), ratios measured in the same run. FID statistics of 1M in 2 min:
# Inception is ~11.5 GFLOP an image, so 1M is ~12 s at peak. 25k samples/s: airbench trains a
# ResNet-18 at ~23k images/s on an A100.
TARGETS = {"sampling_fraction_of_peak": 0.40, "sampling_vs_ddpmpipeline": 50.0,
           "sampling_minutes_per_million": 25.0, "fid_minutes_per_million": 2.0,
           "fid_abs_delta": 0.01, "pretrain_samples_per_s": 25_000.0,
           "pretrain_vs_dataloader": 3.0}
PROFILE_ROWS = 25  # ops in a --profile table
# every sampler's images/s at this many evaluations an image (Heun's: the nearest odd count)
SAMPLER_EVALUATIONS = 20
SIZES = {
    "real": dict(arch="ddpm-cifar10-32", sample_batch=1024, sample_images=4096, sampler_images=2048,
                 pipeline_images=1, pipeline_steps=1000, fid_images=5000, fid_batch=1000, fid_dims=2048,
                 encoder="resnet18", batch=512, pretrain_images=4096, steps=50, warmup=10,
                 workers=os.cpu_count(), real=50_000, generated=1_000_000, ddp_steps=20,
                 compile=True, rehearsal="run"),
    # Every section's code path in seconds of CPU: compile is off (Inductor's first compile
    # takes minutes on a CPU; the compiled paths are tested by tests/test_gpu_paths.py) and FID
    # uses the 64-d first Inception block (a 2048-d matrix square root alone costs ~30 s here).
    "smoke": dict(arch="smoke", sample_batch=2, sample_images=2, sampler_images=2, pipeline_images=1,
                  pipeline_steps=10, fid_images=2, fid_batch=2, fid_dims=64, encoder="smoke", batch=4,
                  pretrain_images=16, steps=1, warmup=1, workers=0, real=48, generated=64,
                  ddp_steps=4, compile=False, rehearsal="plan"),
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the torchrun of ddp())."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bf16_peak(name: str) -> float | None:
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)


def part(name: str):
    """A labelled range for --profile's table of a section's parts (the measured loop and its
    baseline run in one section); nearly free when no profiler runs."""
    return torch.profiler.record_function(f"bench: {name}")


def device_name(device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def sampling(s, device) -> dict:
    # imported here, as in fid(): the torchrun worker of ddp() needs neither diffusers nor
    # pytorch-fid, and each import costs seconds of CPU
    import sample as bench_sample
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(**bench_sample.ARCHS[s["arch"]]).to(device).eval().requires_grad_(False)
    config = DDPMScheduler(**bench_sample.DDPM_CIFAR10_32_SCHEDULER).config
    flops = bench_sample.unet_flops(unet, device)
    with part("sampling: DDPMPipeline"):
        base = bench_sample.time_pipeline(unet, config, s["pipeline_images"], device,
                                          s["pipeline_steps"])
    with part("sampling: ours"):
        ips, nfe = bench_sample.time_ours(unet, config, "edm", "bf16", s["sample_batch"],
                                          s["sample_images"], device, s["compile"])
    with part("sampling: per sampler"):
        samplers = per_sampler(unet, config, s, device)
    peak = bf16_peak(device_name(device))
    tflops = ips * nfe * flops / 1e12
    return {"arch": s["arch"], "batch": s["sample_batch"], "evaluations": nfe,
            "gflop_per_evaluation": flops / 1e9, "images_per_s": ips, "tflops": tflops,
            "bf16_peak_tflops": peak, "fraction_of_peak": tflops / peak if peak else None,
            "ddpmpipeline_steps": s["pipeline_steps"], "ddpmpipeline_images_per_s": base,
            "vs_ddpmpipeline": ips / base,
            "minutes_per_million": 1e6 / ips / 60, "per_sampler": samplers}


def per_sampler(unet, config, s, device) -> dict:
    """images/s of every sampler at about SAMPLER_EVALUATIONS evaluations an image (bf16, the
    UNet prepared and compiled once for all of them), and 1M images' minutes."""
    import sample as bench_sample
    from sampler_fid import SAMPLERS, steps_for
    from pipeline.generation.samplers import prepare_unet

    model = prepare_unet(unet, device, channels_last=device.type == "cuda", compile=s["compile"])
    out = {}
    for name in SAMPLERS:
        ips, nfe = bench_sample.time_ours(model, config, name, "bf16", s["sample_batch"],
                                          s["sampler_images"], device, s["compile"],
                                          steps=steps_for(name, SAMPLER_EVALUATIONS),
                                          prepared=True)
        out[name] = {"evaluations": nfe, "images_per_s": ips, "minutes_per_million": 1e6 / ips / 60}
    return out


def fid(s, device) -> dict:
    import fid as bench_fid

    model, weights = bench_fid.fid_model(device, s["fid_dims"])
    a, b = bench_fid.two_sets(s["fid_images"])
    rows = bench_fid.measure(model, a, b, s["fid_batch"], device, ["fp32", "tf32", "bf16"])
    return {"weights": weights if weights == "random" else "pytorch-fid", "dims": s["fid_dims"],
            "images": len(a), "rows": rows}


def pretraining(s, device) -> dict:
    widths, blocks = bench_pretrain.ARCHS[s["encoder"]]
    args = SimpleNamespace(batch_size=s["batch"], steps=s["steps"], warmup=s["warmup"],
                           precision="bf16", workers=s["workers"], compile=s["compile"],
                           channels_last=device.type == "cuda")
    images = np.random.default_rng(0).integers(0, 256, (s["pretrain_images"], 32, 32, 3),
                                               dtype=np.uint8)
    loops = {"ours": bench_pretrain.bench_ours, "dataloader": bench_pretrain.bench_dataloader,
             "model_step_only": bench_pretrain.bench_model_only}
    rates = {}
    for name, loop in loops.items():
        with part(f"pretrain: {name}"):
            rates[name] = loop(images, widths, blocks, args, device)
    return {"encoder": s["encoder"], "global_batch": s["batch"], "precision": "bf16",
            "compile": args.compile, "channels_last": args.channels_last,
            "dataloader_workers": args.workers, "samples_per_s": rates,
            "ours_vs_dataloader": rates["ours"] / rates["dataloader"],
            "ours_vs_model_step": rates["ours"] / rates["model_step_only"]}


def resident_data(s):
    """The preset's real and generated sets (random pixels; 1M images tile a random block)."""
    rng = np.random.default_rng(1)
    real = rng.integers(0, 256, (s["real"], 32, 32, 3), dtype=np.uint8)
    generated = np.resize(real, (s["generated"], 32, 32, 3))
    return real, generated


def memory(s, device) -> dict:
    widths, blocks = bench_pretrain.ARCHS[s["encoder"]]
    cfg = PretrainConfig(widths=widths, blocks=blocks, steps=3, batch_size=s["batch"],
                         optimizer="lars", lr=0.3, precision="bf16", log_every=10**9,
                         channels_last=device.type == "cuda", method="simclr", warmup_steps=10,
                         dup=1, seed=0)
    real, generated = resident_data(s)
    method = build_method("simclr", Encoder(widths, blocks, [0.5] * 3, [0.25] * 3))
    plan = estimate_run_memory(cfg, method, len(real) + len(generated), (32, 32, 3), world=1)
    peak = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    pretrain(cfg, view_params("standard"), real, generated, DistContext(0, 1, device))
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    return {"images_resident": len(real) + len(generated), "data_bytes": plan.data,
            "plan_bytes": plan.total, "plan": plan.breakdown(), "peak_bytes": peak,
            "peak_vs_plan": peak / plan.total if peak else None}


def ddp(s, device) -> dict:
    """One torchrun process: process group, DDP (SyncBN on CUDA), checkpoint, kill, resume."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ddp.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "1", str(Path(__file__).resolve()), "--ddp-worker", str(out),
               "--device", str(device), "--encoder", s["encoder"], "--steps",
               str(s["ddp_steps"]), "--batch", str(s["batch"])]
        env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # as the parent
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        if r.returncode != 0:
            raise RuntimeError(f"torchrun failed ({r.returncode}): {r.stderr[-2000:]}")
        return json.loads(out.read_text())


class Killed(Exception):
    pass


def rehearsal(s, device) -> dict:
    """The cifar10 preset's whole DAG (bench/rehearsal.py) on this device with the preset's bf16,
    channels_last and compile. Its jobs share the one device (CUDA_VISIBLE_DEVICES set, so
    pipeline.core.gpu_slots leaves them be) at 2 threads each. At smoke size it is only planned:
    the inputs made and `snakemake -n` checked, seconds instead of the CPU run's minutes."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rehearsal.json"
        cmd = [sys.executable, str(HERE / "rehearsal.py"), "--work", str(Path(tmp) / "work"),
               "--out", str(out), "--device", "cuda" if device.type == "cuda" else "cpu"]
        if s["rehearsal"] == "plan":
            cmd.append("--dry-run")
        else:
            cmd += ["--compile", "--threads", "2", "--cores", str(os.cpu_count())]
        env = dict(os.environ)
        if device.type == "cuda":
            env.setdefault("CUDA_VISIBLE_DEVICES", str(device.index or 0))
        log = Path(tmp) / "rehearsal.log"
        with open(log, "w") as f:
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=1200)
        if r.returncode != 0:
            raise RuntimeError(f"bench/rehearsal.py failed ({r.returncode}): "
                               f"{log.read_text()[-3000:]}")
        result = json.loads(out.read_text())
    result.pop("work")
    result.pop("accuracy", None)  # random encoders: no figure to keep
    return result


def ddp_worker(args) -> None:
    device = resolve_device(args.device)
    ctx = init_distributed(device)
    calls = {"syncbn": 0}
    original = torch.nn.SyncBatchNorm.forward

    def counted(self, x):  # SyncBN is what ran, not plain BN
        calls["syncbn"] += 1
        return original(self, x)

    torch.nn.SyncBatchNorm.forward = counted
    widths, blocks = bench_pretrain.ARCHS[args.encoder]
    cfg = PretrainConfig(widths=widths, blocks=blocks, steps=args.steps, batch_size=args.batch,
                         optimizer="lars", lr=0.3, precision="bf16",
                         checkpoint_every=args.steps // 2, log_every=1, method="simclr",
                         warmup_steps=10, dup=1, seed=0)
    images = np.random.default_rng(2).integers(0, 256, (4 * args.batch, 32, 32, 3),
                                               dtype=np.uint8)
    aug_params = view_params("standard")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt.pt"

        def kill(step):
            if step == args.steps // 2:
                raise Killed

        try:
            pretrain(cfg, aug_params, images, None, ctx, checkpoint=ckpt, callback=kill)
        except Killed:
            pass
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)["step"]
        _, history = pretrain(cfg, aug_params, images, None, ctx, checkpoint=ckpt)
    steps = [h["step"] for h in history]
    result = {"processes": ctx.world, "process_group": ctx.group,
              "backend": torch.distributed.get_backend() if ctx.group else None,
              "syncbn_calls": calls["syncbn"], "checkpoint_step": saved,
              "resumed_steps_contiguous": steps == list(range(1, args.steps + 1)),
              "final_loss": history[-1]["loss"]}
    if ctx.is_main:
        Path(args.ddp_worker).write_text(json.dumps(result))
    if ctx.group:
        torch.distributed.destroy_process_group()


def verdicts(r) -> dict:
    """Each target: the figure, the target, whether it is met, and the section that measured it.
    The labels are written from TARGETS, so a changed goal cannot leave a stale label."""
    t, checks = TARGETS, {}
    sm = r.get("sampling")
    if sm:
        if sm["fraction_of_peak"] is not None:
            checks[f"sampling ≥ {100 * t['sampling_fraction_of_peak']:g} % of bf16 peak"] = (
                "sampling", sm["fraction_of_peak"], t["sampling_fraction_of_peak"], ">=")
        checks[f"sampling ≥ {t['sampling_vs_ddpmpipeline']:g}× DDPMPipeline per image"] = (
            "sampling", sm["vs_ddpmpipeline"], t["sampling_vs_ddpmpipeline"], ">=")
        checks[f"sampling 1M images ≤ {t['sampling_minutes_per_million']:g} min"] = (
            "sampling", sm["minutes_per_million"], t["sampling_minutes_per_million"], "<=")
    for row in r.get("fid", {}).get("rows", []):
        checks[f"FID stats 1M ≤ {t['fid_minutes_per_million']:g} min ({row['precision']})"] = (
            "fid", row["minutes_per_million"], t["fid_minutes_per_million"], "<=")
        if row["precision"] != "fp32":
            checks[f"|ΔFID| ≤ {t['fid_abs_delta']:g} ({row['precision']} vs fp32)"] = (
                "fid", abs(row["fid_delta_vs_fp32"]), t["fid_abs_delta"], "<=")
    pt = r.get("pretrain")
    if pt:
        checks[f"pretraining ≥ {t['pretrain_samples_per_s'] / 1000:g}k samples/s"] = (
            "pretrain", pt["samples_per_s"]["ours"], t["pretrain_samples_per_s"], ">=")
        checks[f"pretraining ≥ {t['pretrain_vs_dataloader']:g}× DataLoader"] = (
            "pretrain", pt["ours_vs_dataloader"], t["pretrain_vs_dataloader"], ">=")
    return {k: {"value": v, "target": g, "met": v >= g if op == ">=" else v <= g,
                "section": section}
            for k, (section, v, g, op) in checks.items()}


def missed(targets: dict, section: str) -> list[str]:
    """The targets of `section` not met."""
    return [k for k, v in targets.items() if v["section"] == section and not v["met"]]


def profile_section(run, path: Path, device, rows: int = PROFILE_ROWS) -> list[dict]:
    """Runs `run()` again under torch.profiler and writes its top ops by self time (the device's
    on CUDA, else the CPU's) to `path`: where the time of a missed target goes. A second run, not
    the timed one, so the profiler's overhead never enters a figure. Returns the top five ops."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        run()
        sync(device)
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = prof.key_averages()
    # the section's parts (part()): the measured loop against its baseline, in total time
    span = "device_time_total" if cuda else "cpu_time_total"
    parts = [f"{e.key}: {getattr(e, span) / 1e3:.1f} ms" for e in events
             if e.key.startswith("bench: ")]
    ops = sorted((e for e in events if not e.key.startswith("bench: ")),
                 key=lambda e: getattr(e, key), reverse=True)
    path.write_text("\n".join(parts) + "\n\n" + events.table(sort_by=key, row_limit=rows) + "\n")
    total = sum(getattr(e, key) for e in ops) or 1
    return [{"op": e.key, "self_ms": getattr(e, key) / 1e3, "share": getattr(e, key) / total,
             "calls": e.count} for e in ops[:5]]


def report_lines(r) -> list[str]:
    lines = [f"device: {r['device']}; torch {r['torch']}; {r['size']} size; "
             f"{r['seconds']:.0f} s in all"]
    if "sampling" in r:
        sm = r["sampling"]
        peak = f"{100 * sm['fraction_of_peak']:.1f} % of bf16 peak" if sm["fraction_of_peak"] \
            else "no bf16 peak known for this device"
        lines.append(f"sampling  EDM {sm['evaluations']} evals bf16 batch {sm['batch']}: "
                     f"{sm['images_per_s']:.1f} img/s, {sm['tflops']:.2f} TFLOP/s ({peak}), "
                     f"{sm['vs_ddpmpipeline']:.1f}× DDPMPipeline ({sm['ddpmpipeline_steps']} "
                     f"steps) per image, 1M images in "
                     f"{sm['minutes_per_million']:.1f} min")
        for name, row in sm.get("per_sampler", {}).items():
            lines.append(f"sampler   {name:13s} {row['evaluations']:3d} evals bf16: "
                         f"{row['images_per_s']:9.1f} img/s, 1M images in "
                         f"{row['minutes_per_million']:.1f} min")
    for row in r.get("fid", {}).get("rows", []):
        lines.append(f"fid       {row['precision']:5s} {row['images_per_s']:9.1f} img/s  "
                     f"ΔFID vs fp32 {row['fid_delta_vs_fp32']:+.5f}  1M in "
                     f"{row['minutes_per_million']:.1f} min ({r['fid']['weights']} weights)")
    if "pretrain" in r:
        pt = r["pretrain"]
        for k, v in pt["samples_per_s"].items():
            lines.append(f"pretrain  {k:16s} {v:10.1f} samples/s  "
                         f"{v / pt['samples_per_s']['dataloader']:5.2f}× DataLoader")
    if "memory" in r:
        m = r["memory"]
        peak = f"{m['peak_bytes'] / 1e9:.2f} GB peak" if m["peak_bytes"] else "no device peak (CPU)"
        lines.append(f"memory    {m['images_resident']} images resident: {peak}; plan {m['plan']}")
    if "ddp" in r:
        d = r["ddp"]
        lines.append(f"ddp       torchrun ×{d['processes']} ({d['backend']}): SyncBN calls "
                     f"{d['syncbn_calls']}, checkpoint at step {d['checkpoint_step']}, resumed "
                     f"steps contiguous: {d['resumed_steps_contiguous']}")
    if "rehearsal" in r:
        h = r["rehearsal"]
        if "planned_jobs" in h:
            lines.append(f"rehearsal planned only (smoke): {sum(h['planned_jobs'].values())} "
                         f"jobs {h['planned_jobs']}")
        else:
            lines.append(f"rehearsal cifar10 preset DAG on {h['device']} (compile "
                         f"{h['compile']}): {h['evaluations']} evaluations, FID over "
                         f"{h['fid_shards']} shards; {h['wall_s']:.0f} s wall, "
                         f"{h['cpu_s']:.0f} s CPU")
    for section, top in r.get("profiles", {}).items():
        ops = ", ".join(f"{o['op']} {100 * o['share']:.0f} %" for o in top["ops"][:3])
        lines.append(f"profile   {section}: {ops} of self time; top ops in {top['file']}")
    for name, error in r.get("errors", {}).items():
        lines.append(f"FAILED    {name}: {error}")
    for k, v in r["targets"].items():
        lines.append(f"target    {k:42s} {v['value']:10.3f} vs {v['target']:g}: "
                     f"{'met' if v['met'] else 'NOT met'}")
    return lines


SECTIONS = {"sampling": sampling, "fid": fid, "pretrain": pretraining, "memory": memory,
            "ddp": ddp, "rehearsal": rehearsal}
DEFAULT_SECTIONS = ["sampling", "fid", "pretrain", "memory", "ddp"]


def profile_missed(result: dict, section: str, s: dict, device, path: Path) -> None:
    """--profile: the section once more under the profiler; its top ops into result["profiles"]
    (a failure is recorded as the section's, as a failing section is)."""
    print(f"[{section} missed {', '.join(missed(result['targets'], section))}: profiling it]",
          flush=True)
    try:
        ops = profile_section(lambda: SECTIONS[section](s, device), path, device)
        result.setdefault("profiles", {})[section] = {"file": path.name, "ops": ops}
    except Exception as e:  # noqa: BLE001 - reported, and the other sections still run
        result["errors"][f"{section} profile"] = f"{type(e).__name__}: {str(e)[-1500:]}"


def write(result, lines, out: Path, stem: str) -> None:
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.txt").write_text("\n".join(lines) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: runs on CPU in seconds")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda:1 ...")
    p.add_argument("--sections", nargs="+", default=DEFAULT_SECTIONS, choices=list(SECTIONS),
                   help=f"which parts to run (default: {' '.join(DEFAULT_SECTIONS)})")
    p.add_argument("--all", action="store_true",
                   help="every section, the preset's rehearsal last: the one command for a lent "
                        "GPU (≤ 8 min on an H200)")
    p.add_argument("--profile", action="store_true",
                   help="run each section that misses a target once more under torch.profiler "
                        "and write its top ops to gpu-<device>-profile-<section>.txt beside the "
                        "figures")
    p.add_argument("--out-dir", default=None,
                   help="folder for gpu-<device>.json and .txt (default: bench/results, or a new "
                        "temporary folder with --smoke so a smoke run never lands beside the "
                        "committed figures)")
    p.add_argument("--ddp-worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--encoder", default="resnet18", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=20, help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=512, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.ddp_worker:
        return ddp_worker(args)
    device = resolve_device(args.device)
    size = "smoke" if args.smoke else "real"
    s = SIZES[size]
    if args.smoke:
        # tiny tensors gain nothing from intra-op threads, and on a busy machine each op waits
        # for a descheduled OpenMP thread: two threads ran the smoke 20× slower than one
        torch.set_num_threads(1)
    name = device_name(device)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower().replace("nvidia", "")).strip("-")
    if args.out_dir:
        out = Path(args.out_dir)
    else:
        out = Path(tempfile.mkdtemp(prefix="gpu-smoke-")) if args.smoke else HERE / "results"
    out.mkdir(parents=True, exist_ok=True)
    stem = f"gpu-{slug}" + ("-smoke" if args.smoke else "")
    sections = list(SECTIONS) if args.all else args.sections
    t0 = time.perf_counter()
    result = {"device": name, "torch": torch.__version__, "size": size, "sizes": s,
              "seconds_per_section": {}, "errors": {}}
    # Each section's figures are written as soon as it ends, and a failing section is recorded
    # and skipped: a run cut short (a lent device's time ends) still reports what it measured.
    for i, section in enumerate(sections):
        print(f"[{i + 1}/{len(sections)} {section} ...]", flush=True)
        t, cpu = time.perf_counter(), cpu_seconds()
        try:
            result[section] = SECTIONS[section](s, device)
            sync(device)
        except Exception as e:  # noqa: BLE001 - reported, and the other sections still run
            result["errors"][section] = f"{type(e).__name__}: {str(e)[-1500:]}"
        result["seconds_per_section"][section] = round(time.perf_counter() - t, 1)
        result["targets"] = verdicts(result)
        if args.profile and missed(result["targets"], section):
            profile_missed(result, section, s, device, out / f"{stem}-profile-{section}.txt")
        result["seconds"] = time.perf_counter() - t0
        lines = report_lines(result)
        write(result, lines, out, stem)
        status = "FAILED" if section in result["errors"] else "done"
        print(f"[{section} {status}: {result['seconds_per_section'][section]} s, "
              f"{cpu_seconds() - cpu:.1f} s of CPU; {result['seconds']:.0f} s in all; "
              f"figures so far in {out / stem}.json]", flush=True)
    print("\n".join(lines))
    print(f"wrote {out / stem}.json and .txt")
    if result["errors"]:
        raise SystemExit(f"failed sections: {', '.join(result['errors'])}")
    return result


if __name__ == "__main__":
    main()
