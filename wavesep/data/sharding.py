"""Which slice of a data stream this process yields: its distributed rank and DataLoader worker.

Every iterable dataset of :mod:`wavesep.data` asks :func:`current_shard` when iteration starts
(not when the dataset is built: ``torch.distributed`` may be initialised later, and DataLoader
workers only exist once iteration starts).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Shard:
    """Position of this iterating process among all of them."""

    rank: int = 0  # distributed rank
    world_size: int = 1  # number of distributed ranks
    worker_id: int = 0  # DataLoader worker of this rank
    num_workers: int = 1  # DataLoader workers per rank (1 when iterating in the main process)

    @property
    def index(self) -> int:
        """Index of this process among ``count``: ranks outside, workers inside."""
        return self.rank * self.num_workers + self.worker_id

    @property
    def count(self) -> int:
        return self.world_size * self.num_workers


def resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``rank`` and ``world_size`` as given, else from torch.distributed when initialised, else (0, 1)."""
    initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
    if rank is None:
        rank = torch.distributed.get_rank() if initialised else 0
    if world_size is None:
        world_size = torch.distributed.get_world_size() if initialised else 1
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    return rank, world_size


def current_shard(rank: int | None = None, world_size: int | None = None) -> Shard:
    """The shard of the calling process (call it inside ``__iter__``)."""
    rank, world_size = resolve_rank(rank, world_size)
    info = torch.utils.data.get_worker_info()
    if info is None:
        return Shard(rank, world_size)
    return Shard(rank, world_size, info.id, info.num_workers)
