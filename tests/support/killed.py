"""A pretraining job killed mid-run, as the tests of checkpoint and resume see it."""

from __future__ import annotations

import pytest

from pipeline.pretraining.loop import pretrain


class Killed(Exception):
    """What a job killed mid-run looks like to the test."""


def pretrain_killed_after(step: int, *args, **kwargs) -> None:
    """pretrain(*args, **kwargs), killed as soon as `step` has finished (and been checkpointed
    when the config checkpoints at that step)."""
    def kill(s):
        if s == step:
            raise Killed

    with pytest.raises(Killed):
        pretrain(*args, callback=kill, **kwargs)
