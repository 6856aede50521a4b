"""Things every stage's main() needs: device choice, threads, logging, numeric precision.

Torch is imported where it is used: the numpy-only stages (preparing data at their own size,
packing, pixel FID statistics, the report) never load it, which saves about 2 s of CPU per job.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.errors import UserError
from pipeline.vocab.names import PRECISIONS  # noqa: F401  (stages import it from here)

if TYPE_CHECKING:
    import torch

log = logging.getLogger("pipeline")



def precision_dtype(precision: str) -> torch.dtype | None:
    """The dtype a network runs in under autocast at `precision` (None for fp32: no autocast)."""
    import torch

    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(precision: str, device) -> contextlib.AbstractContextManager:
    """The context a network runs in at `precision` (a PRECISIONS name) on `device`."""
    import torch

    dtype = precision_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def set_tf32(device, enabled: bool) -> None:
    """TF32 tensor cores for CUDA matmuls and convolutions, on or off (a process-wide switch;
    nothing on other devices)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` means CUDA when present, else CPU; anything else is passed to torch."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"device {name!r} asked for, but CUDA is not available here")
    return device


def setup(args: argparse.Namespace, uses_torch: bool = True) -> torch.device | None:
    """Configure logging and, for a stage that computes with torch, its threads from the common
    arguments; return the device (None for a numpy-only stage, which never imports torch)."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    if not uses_torch:
        if getattr(args, "threads", None):  # for torch, should a library still import it
            os.environ["OMP_NUM_THREADS"] = str(args.threads)
        return None
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return resolve_device(getattr(args, "device", "auto"))


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--device and --threads: the workflow always passes them (config device, threads), so
    they are required, as every option the workflow passes is (its default is config.yaml's)."""
    parser.add_argument("--device", required=True,
                        help="auto (CUDA if present, else CPU), cpu, cuda, cuda:1 ...")
    parser.add_argument("--threads", type=int, required=True, help="CPU threads for torch")
    return parser


def run(main) -> None:
    """Run a stage's main(): bad input (UserError, a missing file) ends it with one line naming
    the problem on stderr and exit status 1, no traceback; the workflow shows that line."""
    try:
        main()
    except (UserError, FileNotFoundError) as e:
        sys.exit(f"{Path(sys.argv[0]).stem}: {e}")
