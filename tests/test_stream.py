"""Tests of wavesep.data.stream: chunks rendered from MIDI on the fly through a pool."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import torch
from data_helpers import fingerprint

import wavesep.data.dataset
import wavesep.data.stream
from wavesep.data.filters import ChunkFilter
from wavesep.data.sharding import Shard
from wavesep.data.stream import StreamingChunks
from wavesep.synth.render import Renderer, RenderSettings

# --- streaming ---------------------------------------------------------------------------------


def test_streaming_pool_reuse_and_corrupt_files(corpus, tmp_path):
    corrupt = tmp_path / "corrupt.mid"
    corrupt.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    paths = [corpus["midi"]["alpha"], corrupt, corpus["midi"]["bravo"]]
    stream = StreamingChunks(paths, "band", 11025, pool_size=8, reuse=3, epochs=1, seed=0)
    items = list(stream)
    assert stream.stats["corrupt"] == 1 and stream.stats["songs"] == 2
    mixture, stems = items[0]
    assert mixture.shape == (2, 11025) and stems.shape == (6, 2, 11025)
    counts = collections.Counter(fingerprint(item) for item in items)
    assert max(counts.values()) <= 3
    assert len(counts) == stream.stats["kept"] and len(items) == 3 * stream.stats["kept"]
    for mixture, stems in items[:5]:
        torch.testing.assert_close(mixture, stems.sum(0), atol=1e-6, rtol=0)
        assert ChunkFilter().keep(mixture, stems)
    # The pool shuffles: reuses of a chunk are not all back to back.
    order = [fingerprint(item) for item in items]
    assert any(a != b for a, b in zip(order, order[1:]))


def test_streaming_caps_chunks_per_song(corpus):
    stream = StreamingChunks([corpus["midi"]["bravo"]], "band", 4410, pool_size=4, reuse=1,
                             max_chunks_per_song=3, epochs=2, seed=1)
    items = list(stream)
    assert len(items) == 6 and stream.stats["capped"] > 0
    # Three chunks per epoch, each yielded once (reuse=1), and the two epochs cut different chunks.
    assert stream.stats["kept"] == 6
    assert set(collections.Counter(fingerprint(item) for item in items).values()) == {1}


def test_streaming_split_index_sharding_and_mono(corpus):
    folder = corpus["midi"]["alpha"].parent
    everything = StreamingChunks(folder, "seed4", 11025, split=None, epochs=1, pool_size=2, channels=1)
    items = list(everything)
    assert everything.stats["songs"] == 4 and items[0][1].shape == (4, 1, 11025)
    nowhere = StreamingChunks(folder, "band", 11025, split="no-such-split", epochs=1)
    assert list(nowhere) == [] and nowhere.stats["other_split"] == 4
    from_index = StreamingChunks(corpus["index"], "band", 11025, split="valid", epochs=1)
    assert [p.stem for p in from_index.paths] == ["delta"] and from_index.paths[0].is_file()
    assert len(list(from_index)) > 0 and from_index.stats["corrupt"] == 0
    shards = [StreamingChunks(folder, "band", 11025, split=None, epochs=1, rank=r, world_size=2) for r in (0, 1)]
    fingerprints = [{fingerprint(item) for item in shard} for shard in shards]
    assert [shard.stats["songs"] for shard in shards] == [2, 2]
    assert not fingerprints[0] & fingerprints[1]
    paths = everything.paths
    for num_workers in (1, 2, 3):  # every song goes to exactly one worker of one rank
        parts = [shards[rank].shard_paths(Shard(rank, 2, worker, num_workers))
                 for rank in (0, 1) for worker in range(num_workers)]
        assert sorted(path for part in parts for path in part) == sorted(paths)
    assert [shard.shard() for shard in shards] == [Shard(0, 2), Shard(1, 2)]


def test_streaming_cuts_songs_shorter_than_two_segments(corpus):
    stream = StreamingChunks([corpus["midi"]["alpha"]], "band", 1000, filter=None)
    rows = np.random.default_rng(0).standard_normal((6, 2, 1600)).astype(np.float32)
    starts = set()
    for seed in range(20):
        chunks = stream.cut_chunks(rows, np.random.default_rng(seed))
        assert len(chunks) == 1
        matches = [start for start in range(601) if np.array_equal(chunks[0], rows[..., start : start + 1000])]
        assert len(matches) == 1
        starts.add(matches[0])
    assert len(starts) > 1  # the phase is still random
    for n_frames in (1000, 600):  # one segment exactly, and shorter: one chunk, zero-padded
        chunks = stream.cut_chunks(rows[..., :n_frames], np.random.default_rng(0))
        assert len(chunks) == 1 and chunks[0].shape == (6, 2, 1000)
        assert np.array_equal(chunks[0][..., :n_frames], rows[..., :n_frames]) and not chunks[0][..., n_frames:].any()


def test_streaming_epochs_differ_and_resume_by_seed(corpus):
    def make():
        return StreamingChunks([corpus["midi"]["alpha"]], "band", 11025, pool_size=2, epochs=1, seed=3)

    def epoch_of(iterable):
        return [fingerprint(item) for item in iterable]

    stream = make()
    first, second = epoch_of(stream), epoch_of(stream)
    assert set(first) != set(second) and stream.state_dict() == {"seed": 3, "epoch": 2}
    again = make()
    assert epoch_of(again) == first
    again.load_state_dict({"seed": 3, "epoch": 1})
    assert epoch_of(again) == second
    # A DataLoader worker iterates a copy: set_epoch chooses the epoch it plays.
    again.set_epoch(1)
    assert epoch_of(torch.utils.data.DataLoader(again, batch_size=None, num_workers=1)) == second


def test_streaming_renders_with_its_settings_drum_kits_included(corpus):
    """Another drum kit changes the drums alone: the same chunks, the other stems as before (up to
    the song's common gain)."""
    def chunks(settings):
        return list(StreamingChunks([corpus["midi"]["alpha"]], "band", 11025, filter=None, pool_size=1,
                                    epochs=1, seed=0, render_settings=settings))

    standard, eight_o_eight = chunks(None), chunks(RenderSettings(drum_kits=(25,)))
    assert len(standard) == len(eight_o_eight) > 4
    drums = [np.corrcoef(a[1][0].ravel(), b[1][0].ravel())[0, 1]
             for a, b in zip(standard, eight_o_eight) if a[1][0].abs().amax() > 0]
    assert drums and max(drums) < 0.5
    others = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for (_, ours), (_, theirs) in zip(eight_o_eight, standard)
              for a, b in zip(ours[1:], theirs[1:]) if b.abs().amax() > 1e-3]
    assert len(others) > 20 and min(others) > 0.99


def test_streaming_skips_a_song_that_raises_anything(corpus, monkeypatch):
    read_song = wavesep.data.stream.read_song

    def buggy_parser(path, limits):
        if Path(path).stem == "bravo":
            raise RuntimeError("a bug in the parser")
        return read_song(path, limits)

    class CrashingRenderer(Renderer):
        def render(self, song):
            if song.path.stem == "charlie":
                raise OSError("the synthesizer crashed")
            return super().render(song)

    monkeypatch.setattr(wavesep.data.stream, "read_song", buggy_parser)
    monkeypatch.setattr(wavesep.data.stream, "Renderer", CrashingRenderer)
    paths = [corpus["midi"][name] for name in ("alpha", "bravo", "charlie")]
    stream = StreamingChunks(paths, "band", 11025, pool_size=2, epochs=1)
    items = list(stream)
    assert stream.stats["error"] == 2 and stream.stats["songs"] == 1
    assert len(items) == stream.stats["kept"] > 0
