"""Device memory plan for pretraining: the resident data set plus the model's training memory.

Pretraining keeps every real and generated image on the device (uint8), so a config either fits
or fails after minutes of loading; the plan lets the stage refuse it up front instead.

- data: exact, images × H × W × C bytes.
- model: parameters, gradients and the optimizer's state (fp32), from the parameter count.
- activations: what autograd saves for the backward pass, counted per sample by running the
  method's forward at batches of 2 and 4 under FakeTensorMode (shapes and dtypes only, no
  arithmetic; CPU autocast gives the device's autocast dtypes) and taking the difference, which
  cancels what does not grow with the batch (weights and their autocast copies).
- augmentation: the float batch and its two views.
- reserve: cuDNN workspaces and allocator fragmentation, which no shape tells.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

# Optimizer state tensors per parameter (SGD/LARS momentum, AdamW's two moments).
OPTIMIZER_STATES = {"lars": 1, "sgd": 1, "adamw": 2}
RESERVE_BYTES = 1 << 30  # cuDNN workspaces + caching-allocator fragmentation (a generous GiB)
GB = 1e9


class MemoryPlanError(ValueError):
    pass


@dataclass(frozen=True)
class MemoryPlan:
    data: int
    model: int
    activations: int
    augmentation: int
    reserve: int = RESERVE_BYTES

    @property
    def total(self) -> int:
        return self.data + self.model + self.activations + self.augmentation + self.reserve

    def breakdown(self) -> str:
        """The total and each part, in GB (what a refusal states)."""
        return (f"{self.total / GB:.2f} GB (data {self.data / GB:.2f}, model+optimizer "
                f"{self.model / GB:.2f}, activations {self.activations / GB:.2f}, augmentation "
                f"{self.augmentation / GB:.2f}, reserve {self.reserve / GB:.2f})")


def dataset_bytes(num_images: int, image_shape) -> int:
    """uint8 images resident on the device: exact."""
    h, w, c = image_shape
    return int(num_images) * h * w * c


def saved_tensor_bytes(method: torch.nn.Module, batch: int, size: int, autocast) -> int:
    """Bytes autograd saves for backward in one forward of `method` on two views of `batch`
    images (each storage counted once: in-place ReLUs share their input's)."""
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        seen[storage._cdata] = storage.nbytes()  # _cdata: the storage itself, not its wrapper
        return t

    with FakeTensorMode(allow_non_fake_inputs=True):
        x1, x2 = torch.rand(batch, 3, size, size), torch.rand(batch, 3, size, size)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
            method(x1, x2)
    return sum(seen.values())


def activation_bytes_per_sample(method: torch.nn.Module, size: int, precision_dtype=None) -> int:
    """Per-sample saved-activation bytes of `method` (two views per sample)."""
    method = method.train()
    autocast = (torch.autocast("cpu", dtype=precision_dtype) if precision_dtype is not None
                else contextlib.nullcontext())
    state = {k: v.clone() for k, v in method.state_dict().items()}  # BN running stats, queues
    try:
        small = saved_tensor_bytes(method, 2, size, autocast)
        large = saved_tensor_bytes(method, 4, size, autocast)
    finally:
        method.load_state_dict(state)
    return max(0, (large - small) // 2)


def estimate_memory(*, num_images: int, image_shape, method: torch.nn.Module, optimizer: str,
                batch_size: int, precision_dtype=None) -> MemoryPlan:
    """The device memory one pretraining process needs (batch_size per process), from the
    counts and the model; pipeline.pretraining.loop.estimate_run_memory gives it for a run's
    config, and check_fits refuses a plan over the budget."""
    h, w, c = image_shape
    params = sum(p.numel() * p.element_size() for p in method.parameters())
    buffers = sum(b.numel() * b.element_size() for b in method.buffers())
    grads = sum(p.numel() * p.element_size() for p in method.parameters() if p.requires_grad)
    model = params + buffers + grads * (1 + OPTIMIZER_STATES.get(optimizer, 2))
    per_sample = activation_bytes_per_sample(method, h, precision_dtype)
    return MemoryPlan(
        data=dataset_bytes(num_images, image_shape), model=model,
        activations=per_sample * batch_size,
        augmentation=batch_size * 3 * h * w * 4 * 3,  # float batch + two float views
    )


def device_budget(device: torch.device) -> int | None:
    """Free memory of a CUDA device (None elsewhere: host memory is not planned)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return free


def check_fits(plan: MemoryPlan, budget: int | None, device) -> None:
    """Refuse (MemoryPlanError) a plan over `budget` bytes; None: no budget, nothing to check."""
    if budget is not None and plan.total > budget:
        raise MemoryPlanError(
            f"pretraining needs about {plan.breakdown()} on {device}, but {budget / GB:.2f} GB is "
            "free: lower pretrain.batch_size, the generated set, or use a larger device")
