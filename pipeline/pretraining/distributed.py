"""Multi-process training under torchrun: process group set-up and the rank's device."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    group: bool = False  # a process group is set up (torchrun), even with one process

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistContext:
    """Join the process group torchrun describes (it sets LOCAL_RANK, also for one process,
    which then runs DDP and SyncBN as N would); a plain `python` process stays single.

    NCCL on CUDA (one device per local rank), gloo on CPU.
    """
    if "LOCAL_RANK" not in os.environ:
        return DistContext(0, 1, device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), device, group=True)


_LOCAL = False


@contextlib.contextmanager
def local_only():
    """gather() is the identity inside: for measuring one process's forward on its own."""
    global _LOCAL
    old, _LOCAL = _LOCAL, True
    try:
        yield
    finally:
        _LOCAL = old


def gather(x: torch.Tensor) -> torch.Tensor:
    """The batch of every rank, concatenated, with gradients flowing back to each rank's part
    (identity in a single process): contrastive negatives and Barlow's correlation then span
    the global batch, as in solo-learn."""
    if _LOCAL or not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    import torch.distributed.nn.functional as dist_nn

    return torch.cat(dist_nn.all_gather(x))
