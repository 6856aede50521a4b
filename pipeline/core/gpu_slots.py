r"""python -m pipeline.core.gpu_slots --gpus 1 -- nvidia-smi

Run a command on GPUs of its own: `python -m pipeline.core.gpu_slots --gpus K -- CMD ...`.

Snakemake's `--resources gpu=N` only counts GPUs; it never says which device a job gets. This
launcher takes K free devices of this machine by locking one file per device (flock), sets
CUDA_VISIBLE_DEVICES to them and execs CMD. The locked descriptors are inherited across exec
(and by CMD's children, e.g. torchrun's workers), so the devices stay taken exactly as long as
the job lives and are freed by the kernel however it ends. It changes nothing when the devices
are already chosen: CUDA_VISIBLE_DEVICES set, or inside a SLURM job (the scheduler assigns
them), or on a machine without GPUs. With K = 0 the command sees no GPU.
"""

from __future__ import annotations

import argparse
import fcntl
import glob
import os
import sys
import time

from pipeline.core import cli
from pipeline.vocab import options

DEFAULT_LOCK_DIR = "/tmp/adainf-gpu-slots"


def device_count() -> int:
    if os.environ.get("ADAINF_GPU_COUNT"):
        return int(os.environ["ADAINF_GPU_COUNT"])
    if not glob.glob("/dev/nvidia[0-9]*"):
        return 0  # no NVIDIA device: skip importing torch, which takes seconds
    import torch

    return torch.cuda.device_count()


def try_acquire(k: int, n: int, lock_dir: str) -> tuple[list[int], list[int]] | None:
    """Lock k of the n device files without blocking: (devices, fds), or None (nothing held)."""
    os.makedirs(lock_dir, exist_ok=True)
    devices, fds = [], []
    for i in range(n):
        fd = os.open(os.path.join(lock_dir, f"gpu{i}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        devices.append(i)
        fds.append(fd)
        if len(devices) == k:
            return devices, fds
    # all or nothing, so that two multi-GPU jobs never hold half each and wait forever
    for fd in fds:
        os.close(fd)
    return None


def acquire(k: int, n: int, lock_dir: str, timeout: float | None = None,
            poll: float = 0.5) -> tuple[list[int], list[int]]:
    if k > n:
        raise SystemExit(f"gpu_slots: the job asks for {k} GPU(s), this machine has {n}")
    deadline = None if timeout is None else time.monotonic() + timeout
    waiting = False
    while (got := try_acquire(k, n, lock_dir)) is None:
        if deadline is not None and time.monotonic() >= deadline:
            raise SystemExit(f"gpu_slots: no {k} free GPU(s) of {n} after {timeout:g} s "
                             f"(locks in {lock_dir})")
        if not waiting:
            print(f"gpu_slots: waiting for {k} free GPU(s) of {n} (locks in {lock_dir})",
                  file=sys.stderr, flush=True)
            waiting = True
        time.sleep(poll)
    return got


def build_parser() -> argparse.ArgumentParser:
    p = cli.add_options(cli.parser(__doc__,
                                   usage="%(prog)s --gpus K [options] -- CMD [ARGS ...]"),
                        options.GPU_SLOTS)
    # read when the parser is built, as a test's or a job's environment sets it
    p.set_defaults(lock_dir=os.environ.get("ADAINF_GPU_LOCK_DIR", DEFAULT_LOCK_DIR))
    return p


def main(argv=None) -> None:
    p = build_parser()
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        p.error("no command given after --")

    if "CUDA_VISIBLE_DEVICES" in os.environ or "SLURM_JOB_ID" in os.environ:
        pass
    elif args.gpus <= 0:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif (n := args.count if args.count is not None else device_count()) == 0:
        pass  # no GPU here: nothing to share, the stage runs on the CPU
    else:
        devices, fds = acquire(args.gpus, n, args.lock_dir, args.timeout)
        for fd in fds:
            os.set_inheritable(fd, True)
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, devices))
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main()
