"""An exponential moving average of a model's weights, for validation and the best checkpoint.

Averaging the weights over the last hundred or so steps smooths the step-to-step noise of SGD;
Demucs validates such an average. After ``n`` updates the average is

    sum_k (1 - d) d^(n - k) w_k / (1 - d^n)

over the weights ``w_k`` after each update ``k``: it starts from zero and divides by the weight it
has gathered (as Adam corrects its moments), so the random initial weights count for nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


class WeightAverage:
    """The average of ``model``'s floating-point parameters and buffers, decaying by ``decay`` per
    :meth:`update`; :meth:`applied` puts it into the model for the time of a ``with`` block."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"the weight average's decay must be in (0, 1), got {decay}")
        self.decay, self.updates = decay, 0
        self.sums = {name: torch.zeros_like(value, dtype=torch.float32)
                     for name, value in model.state_dict().items() if value.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module):
        """Fold in the model's current weights (after an optimiser step)."""
        current = model.state_dict()
        names = list(self.sums)
        torch._foreach_lerp_([self.sums[n] for n in names], [current[n].float() for n in names], 1 - self.decay)
        self.updates += 1

    def averaged(self) -> dict[str, torch.Tensor]:
        """The average, bias-corrected; empty before the first update."""
        if not self.updates:
            return {}
        gathered = 1 - self.decay ** self.updates
        return {name: total / gathered for name, total in self.sums.items()}

    @contextmanager
    def applied(self, model: torch.nn.Module) -> Iterator[None]:
        """The model holds the average inside the block (its own weights before the first update)."""
        average = self.averaged()
        own = {name: value.detach().clone() for name, value in model.state_dict().items() if name in average}
        model.load_state_dict(average, strict=False)
        try:
            yield
        finally:
            model.load_state_dict(own, strict=False)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "sums": self.sums}

    def load_state_dict(self, state: dict):
        if state["sums"].keys() != self.sums.keys():
            raise ValueError("the weight average is of another model")
        self.decay, self.updates = state["decay"], state["updates"]
        self.sums = {name: value.float() for name, value in state["sums"].items()}
