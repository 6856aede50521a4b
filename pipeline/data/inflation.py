"""Data inflation: real data replicated `dup` times plus generated data, shuffled each epoch.

The replicated set is virtual: index v < dup·R maps to real image v mod R, the rest to generated
images, so no copy of the real data is ever made.
"""

from __future__ import annotations

import torch


class InflatedIndex:
    def __init__(self, num_real: int, num_generated: int, dup: int, seed: int):
        if dup < 1:
            raise ValueError(f"dup must be >= 1, got {dup}")
        if num_real + num_generated == 0:
            raise ValueError("no images to train on")
        self.num_real, self.num_generated, self.dup = num_real, num_generated, dup
        self.size = dup * num_real + num_generated
        self.gen = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)

    def physical(self, virtual: torch.Tensor) -> torch.Tensor:
        """Map virtual indices to rows of [real; generated]."""
        cut = self.dup * self.num_real
        return torch.where(virtual < cut, virtual % max(self.num_real, 1),
                           virtual - cut + self.num_real)

    def state_dict(self) -> dict:
        return {"generator": self.gen.get_state(), "order": self._order.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["generator"])
        self._order = state["order"].clone()

    def next_batch(self, batch_size: int) -> torch.Tensor:
        """Rows of [real; generated] for the next batch; a new permutation at each epoch."""
        while len(self._order) < batch_size:
            self._order = torch.cat([self._order, torch.randperm(self.size, generator=self.gen)])
        batch, self._order = self._order[:batch_size], self._order[batch_size:]
        return self.physical(batch)
