"""Pretraining throughput: samples/s of our loop (data and augmentation on the device) against
the same model fed by a torchvision DataLoader with PIL transforms on all cores, and the model
step alone on fixed inputs (the ceiling). One sample = one image, two augmented views.

    python bench/pretrain.py                           # CPU, a tiny backbone: runs anywhere
    python bench/pretrain.py --arch resnet18 --batch-size 256 --steps 100 --precision bf16 \
        --out bench/results/pretrain-h100.json          # the paper's CIFAR setting on a GPU

Then the cost of the live curves (pipeline/core/tracking.py): our loop for --tracking-steps steps
with TensorBoard event files and a progress line every --log-every steps, against the same loop
without, as a ratio of steps/s, and the time spent inside the reports as a share of the run's.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.pretraining.augment import view_params  # noqa: E402
from pipeline.pretraining.distributed import DistContext  # noqa: E402
from pipeline.pretraining.encoders import Encoder  # noqa: E402
from pipeline.pretraining.optim import make_optimizer  # noqa: E402
from pipeline.core.runtime import PRECISIONS, autocast, resolve_device  # noqa: E402
from pipeline.pretraining.methods import build_method  # noqa: E402
from pipeline.pretraining.loop import PretrainConfig, pretrain  # noqa: E402
from pipeline.core.tracking import Progress, Tracker  # noqa: E402

ARCHS = {"smoke": ([8, 16], [1, 1]), "tiny": ([16, 32, 64], [1, 1, 1]),
         "resnet18": ([64, 128, 256, 512], [2, 2, 2, 2])}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class PILTwoViews(torch.utils.data.Dataset):
    """The usual CPU pipeline: uint8 array → PIL → torchvision transforms, twice."""

    def __init__(self, images: np.ndarray, p):
        self.images = images
        size = images.shape[1]
        self.t = T.Compose([
            T.RandomResizedCrop(size, scale=(p.crop_min_scale, 1.0)),
            T.RandomHorizontalFlip(p.flip_prob),
            T.RandomApply([T.ColorJitter(p.brightness, p.contrast, p.saturation, p.hue)],
                          p=p.jitter_prob),
            T.RandomGrayscale(p.grayscale_prob),
            T.RandomApply([T.GaussianBlur(3, (0.1, 2.0))], p=p.blur_prob),
            T.ToTensor(),
        ])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        im = Image.fromarray(self.images[i])
        return self.t(im), self.t(im)


def make_method(widths, blocks, device):
    torch.manual_seed(0)
    enc = Encoder(widths, blocks, [0.5] * 3, [0.25] * 3)
    method = build_method("simclr", enc).to(device).train()
    opt = make_optimizer("lars", method.online_parameters(), 0.3, 1e-4)
    return method, opt


def step(method, opt, x1, x2, precision, device):
    with autocast(precision, device):
        loss = method(x1, x2)
    opt.zero_grad(set_to_none=True)
    loss.float().backward()
    opt.step()


def bench_ours(images, widths, blocks, args, device):
    times = {}

    def mark(s):
        if s in (args.warmup, args.warmup + args.steps):
            sync(device)
            times[s] = time.perf_counter()

    cfg = PretrainConfig(widths=widths, blocks=blocks, steps=args.warmup + args.steps,
                         batch_size=args.batch_size, optimizer="lars", lr=0.3,
                         precision=args.precision, log_every=10**9, compile=args.compile,
                         channels_last=args.channels_last, method="simclr", warmup_steps=10,
                         dup=1, seed=0)
    pretrain(cfg, view_params("standard"), images, None, DistContext(0, 1, device), callback=mark)
    return args.steps * args.batch_size / (times[args.warmup + args.steps] - times[args.warmup])


def run_loop(images, widths, blocks, args, device, tracker):
    """Steps/s of our loop over --tracking-steps steps after --warmup, flushing the loss every
    --log-every steps (as the workflow does), with `tracker` (None: no curves)."""
    times = {}
    start, end = args.warmup, args.warmup + args.tracking_steps

    def mark(s):
        if s in (start, end):
            sync(device)
            times[s] = time.perf_counter()

    cfg = PretrainConfig(widths=widths, blocks=blocks, steps=end, batch_size=args.batch_size,
                         optimizer="lars", lr=0.3, precision=args.precision,
                         log_every=args.log_every, compile=args.compile,
                         channels_last=args.channels_last, method="simclr", warmup_steps=10,
                         dup=1, seed=0)
    pretrain(cfg, view_params("standard"), images, None, DistContext(0, 1, device),
             callback=mark, tracker=tracker)
    return args.tracking_steps / (times[end] - times[start])


def bench_tracking(images, widths, blocks, args, device) -> dict:
    """The loop with TensorBoard and progress lines (to a log handler) against the loop with
    neither (its logger above INFO), alternating, the best of --repeats each; and the seconds
    spent in Progress.report as a share of the timed steps' time."""
    loop_log = logging.getLogger("pipeline.pretraining.loop")
    loop_log.propagate = False
    spent = [0.0]
    report = Progress.report

    def timed_report(self, *a, **kw):
        t0 = time.perf_counter()
        report(self, *a, **kw)
        spent[0] += time.perf_counter() - t0

    off, on, share, reported = [], [], [], {}
    scalars = Tracker.scalars

    def kept_scalars(self, values, step):  # the loop's own report, replayed by writer_cost
        reported.update(values)
        scalars(self, values, step)

    Tracker.scalars = kept_scalars
    for _ in range(args.repeats):
        loop_log.setLevel(logging.WARNING)
        off.append(run_loop(images, widths, blocks, args, device, None))
        handler = logging.StreamHandler(io.StringIO())
        loop_log.addHandler(handler)
        loop_log.setLevel(logging.INFO)
        Progress.report, spent[0] = timed_report, 0.0
        with tempfile.TemporaryDirectory() as tb:
            tracker = Tracker(tb)
            on.append(run_loop(images, widths, blocks, args, device, tracker))
            tracker.close()
        # every report falls in the timed steps (log_every > warmup)
        share.append(spent[0] / (args.tracking_steps / on[-1]))
        Progress.report = report
        loop_log.removeHandler(handler)
    Tracker.scalars = scalars
    per_report = writer_cost(reported)
    return {"steps_per_s_off": max(off), "steps_per_s_on": max(on),
            "ratio_on_vs_off": max(on) / max(off), "report_share_of_run": min(share),
            "writer_seconds_per_report": per_report,
            # at most, as if every report's writing (the writer thread's too) stopped the loop
            "writer_share_bound": per_report * max(on) / args.log_every,
            "lines": handler.stream.getvalue().count("\n")}


def writer_cost(values: dict, reports: int = 2000) -> float:
    """Seconds per report of `values` as TensorBoard scalars, the writer's thread included:
    `reports` reports, then close(), which waits until the thread has written them all. On a
    2-core machine the loop's steps/s vary more from run to run than this cost, so the on/off
    ratio cannot resolve it; this measures it alone."""
    with tempfile.TemporaryDirectory() as tb:
        tracker = Tracker(tb)
        t0 = time.perf_counter()
        for step in range(1, reports + 1):
            tracker.scalars(values, step)
        tracker.close()
        return (time.perf_counter() - t0) / reports


def bench_dataloader(images, widths, blocks, args, device):
    method, opt = make_method(widths, blocks, device)
    loader = torch.utils.data.DataLoader(
        PILTwoViews(images, view_params("standard")[0]), batch_size=args.batch_size,
        shuffle=True, drop_last=True, num_workers=args.workers,
        persistent_workers=args.workers > 0,
        pin_memory=device.type == "cuda")
    done, t0 = 0, None
    while done < args.warmup + args.steps:
        for x1, x2 in loader:
            if done == args.warmup:
                sync(device)
                t0 = time.perf_counter()
            step(method, opt, x1.to(device, non_blocking=True), x2.to(device, non_blocking=True),
                 args.precision, device)
            done += 1
            if done == args.warmup + args.steps:
                break
    sync(device)
    return args.steps * args.batch_size / (time.perf_counter() - t0)


def bench_model_only(images, widths, blocks, args, device):
    method, opt = make_method(widths, blocks, device)
    size = images.shape[1]
    x1 = torch.rand(args.batch_size, 3, size, size, device=device)
    x2 = torch.rand(args.batch_size, 3, size, size, device=device)
    for _ in range(args.warmup):
        step(method, opt, x1, x2, args.precision, device)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step(method, opt, x1, x2, args.precision, device)
    sync(device)
    return args.steps * args.batch_size / (time.perf_counter() - t0)


def loader_rows(images, widths, blocks, args, device) -> dict:
    rows = {
        "ours (device-resident data + augmentation)": bench_ours(images, widths, blocks, args, device),
        "torchvision DataLoader + PIL transforms": bench_dataloader(images, widths, blocks, args, device),
        "model step only (fixed inputs)": bench_model_only(images, widths, blocks, args, device),
    }
    base = rows["torchvision DataLoader + PIL transforms"]
    for k, v in rows.items():
        print(f"{k:45s} {v:10.1f} samples/s  {v / base:6.2f}x DataLoader")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--arch", default="tiny", choices=sorted(ARCHS))
    p.add_argument("--device", default="auto")
    p.add_argument("--images", type=int, default=4096, help="size of the (random) data set")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--precision", default="fp32", choices=sorted(PRECISIONS))
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder (our loop)")
    p.add_argument("--channels-last", action="store_true", help="channels_last (our loop)")
    p.add_argument("--tracking-steps", type=int, default=200,
                   help="steps of each run of the tracking comparison (0: skip it)")
    p.add_argument("--log-every", type=int, default=50,
                   help="steps between reports (config.yaml logging.log_every)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each tracking variant")
    p.add_argument("--tracking-only", action="store_true",
                   help="only the tracking comparison (not our loop against the DataLoader)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    widths, blocks = ARCHS[args.arch]
    images = np.random.default_rng(0).integers(0, 256, (args.images, args.size, args.size, 3),
                                               dtype=np.uint8)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; {args.arch}, {args.size}px, batch {args.batch_size}, "
          f"{args.precision}, DataLoader workers {args.workers}")
    rows, base = {}, None
    if not args.tracking_only:
        rows = loader_rows(images, widths, blocks, args, device)
        base = rows["torchvision DataLoader + PIL transforms"]
    tracking = None
    if args.tracking_steps:
        tracking = bench_tracking(images, widths, blocks, args, device)
        print(f"live curves every {args.log_every} steps: {tracking['steps_per_s_on']:.2f} vs "
              f"{tracking['steps_per_s_off']:.2f} steps/s without, ratio "
              f"{tracking['ratio_on_vs_off']:.4f}; reports take "
              f"{100 * tracking['report_share_of_run']:.3f} % of the steps' time "
              f"({tracking['lines']} progress lines); writing a report's scalars, the writer's "
              f"thread included, {1e3 * tracking['writer_seconds_per_report']:.3f} ms: at most "
              f"{100 * tracking['writer_share_bound']:.3f} % of the steps' time")
    if args.out:
        Path(args.out).write_text(json.dumps({"device": name, "args": vars(args), "samples_per_s": rows,
                                              "ratio_ours_vs_dataloader":
                                                  rows[next(iter(rows))] / base if rows else None,
                                              "tracking": tracking},
                                             indent=2) + "\n")


if __name__ == "__main__":
    main()
