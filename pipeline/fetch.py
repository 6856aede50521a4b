r"""python -m pipeline.fetch inception \
    --out ~/.cache/torch/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth \
    --record results/assets/inception.json

Stage: fetch one external asset (a hub generator, CIFAR, the FID Inception weights) to disk.

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
from pipeline.vocab import options

ASSET_HELP = {"generator": "a diffusers pipeline from the Hugging Face hub",
              "real": "CIFAR-10/100 with torchvision's download",
              "inception": "pytorch-fid's FID Inception weights",
              "dinov2": "timm's DINOv2 weights (FD-DINOv2) from the Hugging Face hub"}


def build_parser() -> argparse.ArgumentParser:
    p = cli.add_options(cli.parser(__doc__), options.FETCH)
    sub = p.add_subparsers(dest="asset", required=True,
                           help="the asset: generator, real, inception or dinov2 (each has its --help)")
    for asset, help in ASSET_HELP.items():
        cli.add_options(sub.add_parser(asset, help=help, formatter_class=cli.HelpFormatter),
                        options.FETCH_ASSETS[asset])
    sub.choices["inception"].set_defaults(url=assets.FID_WEIGHTS_URL)
    sub.choices["dinov2"].set_defaults(repo=assets.DINOV2_REPO)
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
