"""Which slice of a data stream this process yields: its distributed rank and DataLoader worker.

The DataLoader worker exists only once iteration starts, so datasets call :func:`current_shard`
inside ``__iter__``. The distributed rank is subtler: DataLoader workers started with the spawn or
forkserver methods are fresh processes in which ``torch.distributed`` is *not* initialised, so a
rank read there would be 0 on every rank. A :class:`RankedStream` therefore fixes its rank and
world size in a process that sees ``torch.distributed``, the first of:

1. the ``rank`` and ``world_size`` arguments, when given;
2. ``torch.distributed`` when the dataset is built, if it is initialised by then;
3. ``torch.distributed`` when the DataLoader sends the dataset to spawn/forkserver workers (it is
   pickled in the main process), or when iteration starts in the main process or in a forked
   worker (a fork inherits the initialised process group);
4. otherwise rank 0 of 1.

A trainer that builds its datasets after ``init_process_group`` (or passes ``rank`` and
``world_size``) never depends on 3.
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


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def capture_rank(rank: int | None, world_size: int | None) -> tuple[int | None, int | None]:
    """``rank`` and ``world_size`` as given, filled in from torch.distributed when it is initialised
    in this process; None where still unknown (resolved later by :func:`resolve_rank`).

    Raises:
        ValueError: both are known and ``rank`` is not in ``0..world_size - 1``.
    """
    if _distributed():
        rank = torch.distributed.get_rank() if rank is None else rank
        world_size = torch.distributed.get_world_size() if world_size is None else world_size
    if rank is not None and world_size is not None and not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
    return rank, world_size


def resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``rank`` and ``world_size`` as given, else from torch.distributed when initialised, else (0, 1)."""
    rank, world_size = capture_rank(rank, world_size)
    rank, world_size = (0 if rank is None else rank), (1 if world_size is None else world_size)
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


class RankedStream:
    """Mixin for iterable datasets: a rank and world size that reach DataLoader workers intact.

    Call :meth:`_capture_rank` in ``__init__`` and :meth:`shard` in ``__iter__``; see the module
    docstring for where the rank comes from.
    """

    rank: int | None
    world_size: int | None

    def _capture_rank(self, rank: int | None, world_size: int | None):
        self.rank, self.world_size = capture_rank(rank, world_size)

    def __getstate__(self) -> dict:
        # Spawn/forkserver workers unpickle a copy pickled here, in the main process, and cannot
        # see torch.distributed themselves: fix the rank now, while it can be seen.
        state = self.__dict__.copy()
        state["rank"], state["world_size"] = capture_rank(self.rank, self.world_size)
        return state

    def shard(self) -> Shard:
        """The shard of the calling process (call it inside ``__iter__``)."""
        return current_shard(self.rank, self.world_size)
