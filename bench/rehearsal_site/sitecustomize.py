"""On PYTHONPATH only in bench/rehearsal.py's run: every Python process of that run (Snakemake
and its jobs) imports this at start-up.

The rehearsal's CIFAR-10 pickles are in the real on-disk format, but synthetic files cannot have
the real files' md5s, which torchvision's CIFAR10 checks before reading. So, once
torchvision.datasets.cifar is imported, its integrity check becomes "the file exists" (as
tests/test_real_data.py's fixture does); nothing else changes, and nothing is imported early.
"""

import importlib.abc
import importlib.util
import os
import sys

_MODULE = "torchvision.datasets.cifar"


def _exists(fpath, md5=None):
    return os.path.isfile(fpath)


class _RelaxCifarChecksums(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != _MODULE:
            return None
        sys.meta_path.remove(self)  # find the real module with the other finders
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            module.check_integrity = _exists

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _RelaxCifarChecksums())
