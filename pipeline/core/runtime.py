"""Things every stage's main() needs: device choice, threads, logging, numeric precision.

Torch is imported where it is used: the numpy-only stages (preparing data at their own size,
packing, pixel FID statistics, the report) never load it, which saves about 2 s of CPU per job.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pickle
import socket
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core import cli
from pipeline.core.errors import UserError
from pipeline.vocab.names import PRECISIONS  # noqa: F401  (stages import it from here)
from pipeline.vocab.options import COMMON

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
        raise SystemExit(f"device: {name!r}, but CUDA is not available on "
                         f"{socket.gethostname()}; set device: auto (CUDA when present, else "
                         "CPU) or cpu")
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
    return cli.add_options(parser, COMMON)


def first_line(e: BaseException, limit: int = 200) -> str:
    """An exception as one short line: libraries' messages (diffusers' OSError) span a page."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


# What a user causes or meets rather than a bug: bad input (UserError), a missing or unreadable
# file, model or download (OSError is EnvironmentError: FileNotFoundError, diffusers' and
# huggingface_hub's load errors, urllib's URLError, a full disk), a damaged weights file
# (torch.load's pickle errors, EOFError).
USER_FACING = (UserError, OSError, pickle.UnpicklingError, EOFError)


def run(main) -> None:
    """Run a stage's main(): a failure the user can fix (USER_FACING) ends it with one line naming
    the problem on stderr and exit status 1. The workflow sends stderr to the job's log and shows
    the log's last line on the console: that line. A library's error keeps its traceback, in the
    log only, above the line; a UserError (a message of ours) is the line alone, with the
    traceback of what caused it, if anything did."""
    try:
        main()
    except USER_FACING as e:
        cause = e if not isinstance(e, UserError) else e.__cause__
        if cause is not None:
            traceback.print_exception(cause, file=sys.stderr)
        line = first_line(e, 10_000) if isinstance(e, (UserError, FileNotFoundError)) else (
            f"{type(e).__name__}: {first_line(e)}")
        sys.exit(f"{Path(sys.argv[0]).stem}: {line}")
