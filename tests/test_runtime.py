"""Tests of the shared helpers in pipeline.core: precision by name and the uint8 image tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.core.runtime import PRECISIONS, autocast
from pipeline.core.tensors import to_nchw


@pytest.mark.parametrize("precision", sorted(PRECISIONS))
def test_autocast_runs_a_matmul_in_the_precision_s_dtype(precision):
    a = torch.randn(4, 4)
    with autocast(precision, "cpu"):
        dtype = (a @ a).dtype
    assert dtype == (PRECISIONS[precision] or torch.float32)


def test_to_nchw_keeps_uint8_or_scales_to_float():
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 5, 3), dtype=np.uint8)
    x = to_nchw(images)
    assert x.dtype == torch.uint8 and x.shape == (2, 3, 3, 5)
    assert torch.equal(x[1, 2], torch.from_numpy(images[1, :, :, 2]))
    unit = to_nchw(images, "cpu", scale=255)
    assert unit.dtype == torch.float32 and float(unit.max()) <= 1.0
    torch.testing.assert_close(unit, x.float() / 255, rtol=0, atol=0)
    model = to_nchw(images, scale=127.5, shift=1.0)
    torch.testing.assert_close(model, x.float() / 127.5 - 1, rtol=0, atol=0)
    assert float(model.min()) >= -1.0
