"""Tests of wavesep.data.train_chunks: reproducible, resumable, sharded training streams."""

from __future__ import annotations

import pytest
import torch
from data_helpers import (
    same_items,
    take,
)

from wavesep.data.augment import Augmentation
from wavesep.data.filters import ChunkFilter
from wavesep.data.train_chunks import TrainChunks

# --- training chunks ---------------------------------------------------------------------------


def test_train_chunks_are_reproducible_per_seed(train_songs):
    def make(seed):
        return TrainChunks(train_songs, "band", 11025, augmentation=Augmentation(), seed=seed)

    first = take(make(3), 4)
    assert same_items(first, take(make(3), 4))
    assert not same_items(first, take(make(4), 4))
    for mixture, stems in first:
        assert mixture.shape == (2, 11025) and stems.shape == (6, 2, 11025)
        torch.testing.assert_close(mixture, stems.sum(0), atol=1e-6, rtol=0)


def test_train_chunks_resume_from_state_dict(train_songs):
    dataset = TrainChunks(train_songs, "band", 11025, augmentation=Augmentation(), seed=5)
    items = take(dataset, 8)
    resumed = TrainChunks(train_songs, "band", 11025, augmentation=Augmentation(), seed=0)
    reference = TrainChunks(train_songs, "band", 11025, augmentation=Augmentation(), seed=5)
    iterator = iter(reference)
    for _ in range(5):
        next(iterator)
    resumed.load_state_dict(reference.state_dict())
    assert reference.state_dict() == {"seed": 5, "position": 5}
    assert same_items(take(resumed, 3), items[5:])


def test_train_chunks_workers_and_ranks_get_different_streams(train_songs):
    def loader(num_workers):
        dataset = TrainChunks(train_songs, "band", 4410, seed=7, batch_size=2)
        return iter(torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=num_workers))

    in_process, workers = loader(0), loader(2)
    in_process = [next(in_process) for _ in range(4)]
    with_workers = [next(workers) for _ in range(4)]
    del workers
    # Blocks of batch_size go to workers in turn: the loop sees the same batches either way.
    assert same_items(in_process, with_workers)
    mixtures = torch.cat([mixture for mixture, _ in with_workers])
    assert len({m.numpy().tobytes() for m in mixtures}) == len(mixtures) == 8
    rank0 = take(TrainChunks(train_songs, "band", 4410, seed=7, rank=0, world_size=2), 3)
    rank1 = take(TrainChunks(train_songs, "band", 4410, seed=7, rank=1, world_size=2), 3)
    assert not any(torch.equal(a[0], b[0]) for a in rank0 for b in rank1)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_train_chunks_resume_gives_the_batches_of_an_uninterrupted_run(train_songs, num_workers):
    batch_size, n_batches = 2, 5

    def run(state, n):
        dataset = TrainChunks(train_songs, "band", 2205, seed=7, batch_size=batch_size)
        if state is not None:
            dataset.load_state_dict(state)
        batches = iter(torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers))
        return dataset, [next(batches) for _ in range(n)]

    dataset, uninterrupted = run(None, n_batches)
    if num_workers == 0:  # the object itself iterated: its state is exact
        assert dataset.state_dict() == {"seed": 7, "position": n_batches * batch_size}
    for steps in (1, 2, 3):  # odd and even: with two workers, an odd start used to swap batches
        state = {"seed": 7, "position": steps * batch_size}  # what a trainer saves (module docstring)
        _, resumed = run(state, n_batches - steps)
        assert len(resumed) == n_batches - steps and same_items(resumed, uninterrupted[steps:])


def test_rank_is_fixed_where_torch_distributed_is_seen(train_songs, monkeypatch):
    def make(**rank):
        return TrainChunks(train_songs, "band", 2205, seed=7, filter=None, **rank)

    rank1 = take(make(rank=1, world_size=2), 2)
    assert not same_items(rank1, take(make(rank=0, world_size=2), 2))
    built_before = make()
    with monkeypatch.context() as patch:  # as if init_process_group had made this rank 1 of 2
        patch.setattr(torch.distributed, "is_available", lambda: True)
        patch.setattr(torch.distributed, "is_initialized", lambda: True)
        patch.setattr(torch.distributed, "get_rank", lambda group=None: 1)
        patch.setattr(torch.distributed, "get_world_size", lambda group=None: 2)
        built_during = make()
        # A spawned worker does not see torch.distributed: the copy pickled for it must carry the rank.
        spawned = take(torch.utils.data.DataLoader(
            built_before, batch_size=None, num_workers=1, multiprocessing_context="spawn"), 2)
    assert (built_during.rank, built_during.world_size) == (1, 2)
    assert same_items(take(built_during, 2), rank1)
    assert same_items(spawned, rank1)
    with pytest.raises(ValueError, match="rank 2"):
        make(rank=2, world_size=2)


def test_train_chunks_filter_is_applied_and_counted(train_songs):
    rule = ChunkFilter(min_active_stems=3)
    dataset = TrainChunks(train_songs, "seed4", 4410, filter=rule, seed=1)
    for mixture, stems in take(dataset, 10):
        assert rule.keep(mixture, stems)
    assert dataset.stats["kept"] == 10
    impossible = TrainChunks(train_songs, "seed4", 4410, filter=ChunkFilter(min_active_stems=5), max_attempts=3)
    with pytest.raises(RuntimeError, match="3 attempts"):
        take(impossible, 1)


