"""The exceptions for bad input that a stage reports as one line, without a traceback, and the
translation of a damaged file's library error (numpy's, zipfile's, torch's) into such a line."""

from __future__ import annotations

import contextlib
import errno
import pickle
import zipfile
import zlib


class UserError(Exception):
    """Bad input (a file, a value) that the user can fix; the message names it."""


class ConfigError(ValueError):
    """A config value that cannot work, found when the Snakefile reads the config; the message
    names the key."""


# The fixes a damaged file's line names. {path} is the file.
REBUILD = ("a damaged output of this workflow: delete it and rebuild it: rm {path} && "
           "snakemake --cores all {path} (with your --configfile)")
RESTART = ("a damaged checkpoint: delete it and the job starts fresh: rm {path}, then run "
           "snakemake again")
REPLACE = "your input file: write or download it again"


def _damage(e: BaseException) -> str | None:
    """What a library's error says about a damaged or wrong file, or None when it is not that."""
    if isinstance(e, zipfile.BadZipFile | zlib.error | EOFError | pickle.UnpicklingError):
        first = str(e).splitlines()[0] if str(e) else ""
        return f"damaged or truncated ({type(e).__name__}: {first})"
    if isinstance(e, OSError) and e.errno == errno.EINVAL:  # torch.load of a truncated file
        return "damaged or truncated (torch.load: Invalid argument)"
    text = str(e)
    if isinstance(e, RuntimeError) and ("PytorchStreamReader" in text or "zip archive" in text):
        return f"damaged or truncated (torch.load: {text.splitlines()[0]})"
    if isinstance(e, ValueError) and "allow_pickle" in text:  # numpy's advice: never the fix here
        return "holds Python objects or pickled data, not plain arrays"
    return None


@contextlib.contextmanager
def reading(path, fix: str = REBUILD):
    """Read `path` in the block; a damaged or wrong file becomes one line naming it and `fix`."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError, pickle.UnpicklingError, OSError,
            RuntimeError, ValueError) as e:
        what = _damage(e)
        if what is None:
            raise
        raise UserError(f"{path}: {what}; {fix.format(path=path)}") from e
