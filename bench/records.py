"""What a record costs (pipeline.core.records): writing and verifying the record of an encoder
of the CIFAR preset's size (ResNet-18, configs/cifar10.yaml's backbone, ~45 MB), against loading
the encoder itself (torch.load, what linear_eval does right after verifying), in the same run.

The file is in the page cache (just written), as when a consumer reads an encoder soon after
pretraining; from a cold disk both sides add the same read.

    python bench/records.py                 # 5 repeats, the median of each
    python bench/records.py --repeats 9 --widths 64 128 256 512 --blocks 2 2 2 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.core import records  # noqa: E402
from pipeline.pretraining.encoders import Encoder, load_encoder, save_encoder  # noqa: E402


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--blocks", type=int, nargs="+", default=[2, 2, 2, 2])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    encoder = Encoder(args.widths, args.blocks, [0.5] * 3, [0.25] * 3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "encoder.pt"
        save_encoder(path, encoder, {"bench": True})
        size = path.stat().st_size
        write = median_seconds(lambda: records.write(path, {"--bench": []}), args.repeats)
        verify = median_seconds(lambda: records.verify(path), args.repeats)
        load = median_seconds(lambda: torch.load(path, map_location="cpu", weights_only=True),
                              args.repeats)
        load_encoder(path)  # the consumer's path: verified, then loaded
    print(f"encoder: {size / 1e6:.1f} MB ({sum(p.numel() for p in encoder.parameters()) / 1e6:.1f}M "
          f"parameters), median of {args.repeats}")
    print(f"write record (sha256 + provenance): {write * 1e3:.0f} ms")
    print(f"verify (sha256 against the record): {verify * 1e3:.0f} ms "
          f"({size / verify / 1e9:.2f} GB/s)")
    print(f"torch.load of the same file:        {load * 1e3:.0f} ms; verify / load = "
          f"{verify / load:.2f}")


if __name__ == "__main__":
    main()
