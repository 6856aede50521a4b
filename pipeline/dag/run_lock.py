"""The output folder's lock: one Snakemake run at a time per output_dir, from any checkout.

Snakemake's own lock lives in the checkout's `.snakemake/locks`, so two checkouts (or two
`--directory`s) writing the same output_dir both ran every job; and after `kill -9` it stays,
asking for `--unlock`. This one is an flock on `OUTPUT_DIR/.run.lock`, taken by the Snakemake
process when it starts running jobs (the Snakefile's `onstart`: never for `-n`) and held until it
exits: the kernel releases it when the process dies, however it dies, so no lock is ever stale.
The file names its holder (pid, host, checkout) for the second run's one-line error.
Torch-free (the Snakefile imports it).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from pipeline.core.errors import ConfigError

LOCK_NAME = ".run.lock"


def hold(out: str | os.PathLike, checkout: str | os.PathLike):
    """Lock `out` for this process's lifetime; return the open file (keep it: closing it ends
    the lock). A ConfigError naming the holder when another process holds it."""
    path = Path(out) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")  # not truncated: the holder's record stays until the lock is ours
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            f.close()  # a file system without locks (some NFS mounts): run unlocked
            return None
        f.seek(0)
        holder = f.read().strip()
        f.close()
        raise ConfigError(busy_line(out, path, holder)) from None
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                        "checkout": str(checkout), "since": time.strftime("%Y-%m-%d %H:%M:%S")}))
    f.flush()
    return f


def busy_line(out, path: Path, holder: str) -> str:
    try:
        h = json.loads(holder)
        who = f"pid {h['pid']} on {h['host']} (checkout {h['checkout']}, since {h['since']})"
    except (ValueError, KeyError, TypeError):
        who = "another process"
    return (f"output_dir {str(out)!r} is in use by the Snakemake run of {who}; wait for it to "
            f"finish (or stop it), or set another output_dir. The lock ({path}) ends with that "
            "process, so a killed run never leaves it behind")


def in_use(out: str | os.PathLike) -> bool:
    """Whether another process holds `out`'s lock now (a run writing there: what a second
    process reads of it may be half-updated, an output renamed into place before its record)."""
    path = Path(out) / LOCK_NAME
    if not path.exists():
        return False
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            return e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
        fcntl.flock(f, fcntl.LOCK_UN)
    return False
