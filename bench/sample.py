"""Sampling throughput: images/s and achieved TFLOP/s of our samplers against DDPMPipeline.

    python bench/sample.py                          # CPU, a tiny UNet: runs anywhere
    python bench/sample.py --arch ddpm-cifar10-32 --batch-size 2048 --images 8192 \
        --precisions bf16 fp32 --out bench/results/sample-h100.json      # on a GPU

`ddpm-cifar10-32` is google/ddpm-cifar10-32's architecture with random weights (speed does not
depend on the weights). The baseline is diffusers' DDPMPipeline with its defaults (batch_size 1,
1000 steps) on the same model, measured in the same run; ratios are per image.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.core.runtime import resolve_device  # noqa: E402
from pipeline.generation.unet import DDPM_CIFAR10_32_SCHEDULER, DDPM_CIFAR10_32_UNET  # noqa: E402
from pipeline.generation.samplers import Sampler, SamplerSettings, prepare_unet  # noqa: E402

ARCHS = {
    "smoke": dict(sample_size=8, block_out_channels=(8, 16), layers_per_block=1,
                  norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "UpBlock2D")),
    "tiny": dict(sample_size=16, block_out_channels=(32, 64), layers_per_block=1,
                 norm_num_groups=8, down_block_types=("DownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "UpBlock2D")),
    "ddpm-cifar10-32": DDPM_CIFAR10_32_UNET,  # 35.7M parameters
}
DEFAULT_STEPS = {"ddpm": 1000, "ddim": 50, "edm": 18}


def unet_flops(unet, device) -> int:
    """FLOPs of one UNet evaluation of one image (a multiply-add counts 2)."""
    size = unet.config.sample_size
    x = torch.randn(1, 3, size, size, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet(x, torch.tensor([10], device=device))
    return counter.get_total_flops()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_ours(unet, config, sampler, precision, batch_size, images, device, compile,
              steps: int | None = None, prepared: bool = False):
    """images/s and evaluations per image of one sampler (`steps`: DEFAULT_STEPS's by default;
    `prepared`: the UNet is already on its device, compiled as wanted)."""
    settings = SamplerSettings(sampler, num_steps=steps or DEFAULT_STEPS[sampler], eta=0.0,
                               precision=precision)
    model = unet if prepared else prepare_unet(unet, device, channels_last=device.type == "cuda",
                                               compile=compile)
    s = Sampler(model, config, settings, device)
    s.images(0, 0, batch_size)  # warm-up (and compilation)
    sync(device)
    t0 = time.perf_counter()
    for lo in range(batch_size, batch_size + images, batch_size):
        s.images(0, lo, lo + batch_size)
    sync(device)
    seconds = time.perf_counter() - t0
    n = len(range(batch_size, batch_size + images, batch_size)) * batch_size
    return n / seconds, s.evaluations_per_image


def time_pipeline(unet, config, images, device, steps: int = 1000):
    """images/s of DDPMPipeline at batch 1; `steps` 1000 is its default (fewer only in smoke
    runs, where the figure is not compared)."""
    pipe = DDPMPipeline(unet=unet.to(device), scheduler=DDPMScheduler.from_config(config))
    pipe.set_progress_bar_config(disable=True)
    pipe(num_inference_steps=2)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for _ in range(images):
        pipe(num_inference_steps=steps)  # its defaults: batch_size 1, 1000 steps
    sync(device)
    return images / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--arch", default="tiny", choices=sorted(ARCHS))
    p.add_argument("--device", default="auto")
    p.add_argument("--samplers", nargs="+", default=["edm", "ddim", "ddpm"])
    p.add_argument("--precisions", nargs="+", default=["fp32"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--images", type=int, default=64, help="images timed per configuration")
    p.add_argument("--pipeline-images", type=int, default=1, help="images timed for DDPMPipeline")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="device peak for the precision, to print the fraction reached")
    p.add_argument("--out", default=None, help="JSON file for the figures")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    unet = UNet2DModel(**ARCHS[args.arch]).to(device).eval().requires_grad_(False)
    config = DDPMScheduler(**DDPM_CIFAR10_32_SCHEDULER).config
    flops = unet_flops(unet, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {name}; arch {args.arch}: {sum(p.numel() for p in unet.parameters()) / 1e6:.1f}M "
          f"parameters, {flops / 1e9:.2f} GFLOP per evaluation per image")

    base = time_pipeline(unet, config, args.pipeline_images, device)
    print(f"DDPMPipeline defaults (batch 1, 1000 steps): {base:.4f} img/s")
    rows = []
    for sampler in args.samplers:
        for precision in args.precisions:
            ips, nfe = time_ours(unet, config, sampler, precision, args.batch_size, args.images,
                                 device, args.compile)
            tflops = ips * nfe * flops / 1e12
            row = {"sampler": sampler, "precision": precision, "evaluations": nfe,
                   "images_per_s": ips, "tflops": tflops, "vs_ddpmpipeline": ips / base,
                   "hours_per_million": 1e6 / ips / 3600}
            if args.peak_tflops:
                row["fraction_of_peak"] = tflops / args.peak_tflops
            rows.append(row)
            print(f"{sampler:5s} {precision:5s} {nfe:5d} evals  {ips:10.1f} img/s  "
                  f"{tflops:8.3f} TFLOP/s  {ips / base:9.1f}x DDPMPipeline  "
                  f"1M images in {1e6 / ips / 3600:.2f} h")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({
            "device": name, "arch": args.arch, "batch_size": args.batch_size,
            "gflop_per_eval": flops / 1e9, "ddpmpipeline_images_per_s": base,
            "compile": args.compile, "torch": torch.__version__, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
