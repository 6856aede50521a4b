"""Stage: fetch one external asset (a hub generator, CIFAR, the FID Inception weights) to disk.

The workflow runs it as a local rule (on a cluster: on the host running Snakemake, where the
network is) before any job that needs the asset; those jobs then read only local files. An asset
already there is verified and not fetched again. Without network it fails with one line naming
the asset, the command to run where there is network, and the config key of a local copy.

    python -m pipeline.fetch generator --model google/ddpm-cifar10-32 --out DIR --record DIR.json
    python -m pipeline.fetch real --source cifar10 --root data/cifar10 --record real.json
    python -m pipeline.fetch inception --out ~/.cache/torch/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth --record inception.json
"""

from __future__ import annotations

import argparse
import shlex
import sys

from pipeline.core import assets, cli, runtime


def build_parser() -> argparse.ArgumentParser:
    p = cli.parser(__doc__)
    p.add_argument("--retry", default=None,
                   help="the command the one-line error tells the user to run where there is "
                        "network (default: this command line)")
    sub = p.add_subparsers(dest="asset", required=True,
                           help="the asset: generator, real, inception or dinov2 (each has its --help)")
    g = sub.add_parser("generator", help="a diffusers pipeline from the Hugging Face hub",
                       formatter_class=cli.HelpFormatter)
    g.add_argument("--model", required=True, help="hub id, e.g. google/ddpm-cifar10-32")
    g.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    g.add_argument("--out", required=True, help="folder the pipeline's files are written to")
    g.add_argument("--record", required=True, help="JSON record: commit, files, sizes, sha256")
    r = sub.add_parser("real", help="CIFAR-10/100 with torchvision's download",
                       formatter_class=cli.HelpFormatter)
    r.add_argument("--source", required=True, choices=("cifar10", "cifar100"), help="data set")
    r.add_argument("--root", required=True, help="data folder (real.root)")
    r.add_argument("--record", required=True, help="JSON record: files, sizes, md5")
    i = sub.add_parser("inception", help="pytorch-fid's FID Inception weights",
                       formatter_class=cli.HelpFormatter)
    i.add_argument("--out", required=True, help="the weights file (the torch.hub cache's path)")
    i.add_argument("--url", default=assets.FID_WEIGHTS_URL, help="where they come from")
    i.add_argument("--record", required=True, help="JSON record: path, size, sha256")
    d = sub.add_parser("dinov2", help="timm's DINOv2 weights (FD-DINOv2) from the Hugging Face hub",
                       formatter_class=cli.HelpFormatter)
    d.add_argument("--repo", default=assets.DINOV2_REPO, help="timm's hub repository")
    d.add_argument("--out", required=True, help="the weights file (safetensors)")
    d.add_argument("--record", required=True, help="JSON record: repo, commit, path, size, sha256")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    runtime.setup(args, uses_torch=False)
    retry = args.retry or shlex.join(["python", "-m", "pipeline.fetch",
                                      *(sys.argv[1:] if argv is None else argv)])
    if args.asset == "generator":
        info = assets.fetch_generator(args.model, args.out, args.record, args.revision, retry)
        runtime.log.info("generator %s at commit %s in %s", args.model, info["commit"], args.out)
    elif args.asset == "real":
        assets.fetch_real(args.source, args.root, args.record, retry)
        runtime.log.info("%s verified in %s", args.source, args.root)
    elif args.asset == "dinov2":
        info = assets.fetch_dinov2(args.repo, args.out, args.record, retry)
        runtime.log.info("DINOv2 weights %s at commit %s: %s", args.repo, info["commit"], args.out)
    else:
        info = assets.fetch_inception(args.out, args.record, args.url, retry)
        runtime.log.info("FID Inception weights verified: %s (sha256 %s)", args.out,
                         info["sha256"][:16])


if __name__ == "__main__":
    runtime.run(main)
