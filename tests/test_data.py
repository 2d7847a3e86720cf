"""Tests of wavesep.data: metadata, chunks, mixture rules, filters, augmentation."""

from __future__ import annotations

import json
import math
import shutil
import tracemalloc

import numpy as np
import pytest
import soundfile
import torch
from data_helpers import (
    SAMPLE_RATE,
    song_named,
    take,
)

import wavesep.data.dataset
import wavesep.data.stream
from wavesep.data.augment import (
    Augmentation,
    augment_stems,
    random_equalizer,
    remix_sources,
    repitch,
    shift_starts,
)
from wavesep.data.dataset import (
    StemDataset,
    describe_dataset,
    load_songs,
    read_chunk,
    read_instruments,
)
from wavesep.data.filters import ChunkFilter
from wavesep.data.train_chunks import TrainChunks
from wavesep.instruments import get_stem_set

# --- metadata ----------------------------------------------------------------------------------


def test_load_songs_reads_metadata_and_skips_unfinished(corpus, tmp_path):
    split = tmp_path / "train"
    shutil.copytree(corpus["dataset"] / "train", split)
    shutil.copytree(split / sorted(p.name for p in split.iterdir())[0], split / ".tmp-half-done")
    (split / "no-metadata").mkdir()
    songs = load_songs(split)
    assert sorted(song.song_id.split("-")[0] for song in songs) == ["alpha", "bravo", "charlie"]
    alpha = song_named(songs, "alpha")
    assert alpha.sample_rate == SAMPLE_RATE and alpha.split == "train"
    assert alpha.num_frames == soundfile.info(alpha.folder / "mix.flac").frames
    assert sorted(alpha.programs) == [0, 33, 48, 73, 128]
    assert all(stem.path.is_file() for stem in alpha.stems)
    both = load_songs([corpus["dataset"] / "train", corpus["dataset"] / "valid"])
    assert len(both) == 4


def test_load_songs_explains_a_dataset_root(corpus):
    with pytest.raises(ValueError, match="dataset root"):
        load_songs(corpus["dataset"])


@pytest.mark.parametrize("content, message", [
    ("{not json", "broken metadata"),
    (json.dumps({"sample_rate": 44100}), "missing key"),
    (json.dumps({"sample_rate": 44100, "channels": 2, "num_frames": 10,
                 "stems": {"x": {"file": "stems/x.flac", "program": 200}}}), "program"),
    (json.dumps({"sample_rate": 0, "channels": 2, "num_frames": 10, "stems": {}}), "sample_rate"),
])
def test_broken_metadata_is_a_value_error_naming_the_file(corpus, tmp_path, content, message):
    split = tmp_path / "train"
    shutil.copytree(corpus["dataset"] / "train", split)
    broken = sorted(split.glob("*/metadata.json"))[1]
    broken.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        load_songs(split)
    assert str(broken) in str(error.value)


def test_describe_dataset_lists_splits_hours_and_classes(corpus):
    text = describe_dataset(corpus["dataset"])
    assert "train: 3 songs" in text and "valid: 1 songs" in text
    assert " h" in text and "4 songs" in text
    assert "Drums 4" in text and "Piano 3" in text
    assert "MB on disk" in text


# --- chunks and mixtures -----------------------------------------------------------------------


@pytest.mark.parametrize("channels", [2, 1])
def test_stem_dataset_shapes(train_songs, channels):
    dataset = StemDataset(train_songs, "band", segment_samples=11025, channels=channels)
    mixture, stems = dataset[3]
    assert mixture.shape == (channels, 11025) and mixture.dtype == torch.float32
    assert stems.shape == (len(get_stem_set("band")), channels, 11025) and stems.dtype == torch.float32
    assert dataset.stem_names == ["drums", "bass", "piano", "guitar", "strings", "other"]
    assert dataset.segment_s == pytest.approx(0.25)


def test_mono_is_the_mean_of_the_channels(train_songs):
    stereo = StemDataset(train_songs, "band", segment_samples=11025)
    mono = StemDataset(train_songs, "band", segment_samples=11025, channels=1)
    torch.testing.assert_close(mono[5][1], stereo[5][1].mean(1, keepdim=True), atol=1e-6, rtol=0)


def test_chunks_cover_each_song_with_a_padded_last_chunk(train_songs):
    segment, stride = 44100, 30000
    dataset = StemDataset(train_songs, "band", segment_samples=segment, stride_samples=stride)
    expected = sum(math.ceil((s.num_frames - segment) / stride) + 1 for s in train_songs)
    assert len(dataset) == expected
    song, start = dataset.chunk_info(len(dataset) - 1)
    assert start < song.num_frames <= start + segment
    _, stems = dataset[len(dataset) - 1]
    assert not stems[..., song.num_frames - start :].any()  # zero past the end
    whole = StemDataset(train_songs, "band")  # no segment: one whole song per item
    assert len(whole) == 3 and whole[0][0].shape[-1] == train_songs[0].num_frames


def test_band_stems_sum_to_the_mixture_and_to_mix_flac(train_songs):
    dataset = StemDataset(train_songs, "band", segment_samples=22050)
    for index in (0, 7, len(dataset) - 1):
        mixture, stems = dataset[index]
        torch.testing.assert_close(mixture, stems.sum(0), atol=1e-6, rtol=0)
    song = song_named(train_songs, "alpha")
    whole = StemDataset([song], "band")
    mixture, stems = whole[0]
    mix_flac, _ = soundfile.read(song.folder / "mix.flac", dtype="float32", always_2d=True)
    torch.testing.assert_close(mixture, torch.from_numpy(mix_flac.T), atol=1e-6, rtol=0)
    assert stems[3].abs().max() == 0  # no guitar in these songs
    assert stems[5].abs().max() > 0  # the flute went to other


def test_unnamed_instruments_stay_in_the_mixture_unless_excluded(train_songs):
    song = song_named(train_songs, "alpha")
    flute = [i for i, program in enumerate(song.programs) if program == 73]
    start, length = 30000, 22050
    flute_audio = torch.from_numpy(read_instruments(song, start, length, 2, flute)[0])
    assert flute_audio.abs().max() > 0
    chunk = read_chunk(song, start, length, "seed4")
    mixture = torch.from_numpy(chunk.mixture())
    stems = torch.from_numpy(chunk.stems)
    torch.testing.assert_close(mixture - stems.sum(0), flute_audio, atol=1e-6, rtol=0)
    dataset = StemDataset([song], "seed4", segment_samples=length, exclude_unnamed=True)
    index = next(i for i in range(len(dataset)) if dataset.chunk_info(i)[1] == 0)
    excluded_mixture, excluded_stems = dataset[index]
    torch.testing.assert_close(excluded_mixture, excluded_stems.sum(0), atol=1e-6, rtol=0)
    kept_mixture, kept_stems = StemDataset([song], "seed4", segment_samples=length)[index]
    assert torch.equal(kept_stems, excluded_stems)
    assert (kept_mixture - excluded_mixture).abs().max() > 0


def test_read_chunk_zero_pads_outside_the_song(train_songs):
    song = train_songs[0]
    tail = read_instruments(song, song.num_frames - 100, 1000)  # (instruments, channels, time)
    file_tail, _ = soundfile.read(song.stems[0].path, start=song.num_frames - 100, dtype="float32", always_2d=True)
    np.testing.assert_array_equal(tail[0, :, :100], file_tail.T)
    assert not tail[..., 100:].any()
    chunk = read_chunk(song, song.num_frames - 100, 1000, "band")
    assert chunk.stems.shape == (6, 2, 1000) and not chunk.stems[..., 100:].any()
    np.testing.assert_allclose(chunk.mixture(), tail.sum(0), atol=1e-6)
    assert not read_chunk(song, song.num_frames + 5, 50, "band").stems.any()
    head = read_instruments(song, -10, 20)
    assert not head[..., :10].any()
    np.testing.assert_array_equal(head[..., 10:], read_instruments(song, 0, 10))


def test_sample_rate_mismatch_is_an_error(train_songs):
    with pytest.raises(ValueError, match="44100 Hz, expected 22050 Hz"):
        StemDataset(train_songs, "band", segment_samples=1000, sample_rate=22050)


# --- filters -----------------------------------------------------------------------------------


def stems_with_silence(silent_fractions, length=1000):
    """(n_stems, 2, length) of 0.5, with the first fraction of each stem's samples at zero."""
    stems = np.full((len(silent_fractions), 2, length), 0.5, np.float32)
    for stem, fraction in zip(stems, silent_fractions):
        stem[:, : round(fraction * length)] = 0.0
    return stems


def test_filter_silence_rule_and_threshold():
    rule = ChunkFilter(drop_identical=False)
    assert rule.silent(stems_with_silence([0.5, 0.39, 0.41])).tolist() == [True, False, True]
    assert rule.reason(np.zeros((2, 1000)), stems_with_silence([1.0, 0.9])) == "silent"
    assert rule.keep(np.zeros((2, 1000)), stems_with_silence([1.0, 0.3]))
    assert ChunkFilter(min_active_stems=2, drop_identical=False).reason(
        np.zeros((2, 1000)), stems_with_silence([1.0, 0.3])) == "silent"
    at_threshold = np.full((1, 2, 10), 1e-4, np.float32)
    above = np.full((1, 2, 10), 2e-4, np.float32)
    assert rule.silent(at_threshold)[0] and not rule.silent(above)[0]
    assert not ChunkFilter(silence_threshold=1e-5).silent(at_threshold)[0]
    assert ChunkFilter(max_silent_fraction=0.6).keep(np.zeros((2, 1000)), stems_with_silence([0.5]))


def test_filter_identical_rule_threshold_and_switch():
    rng = np.random.default_rng(0)
    stems = rng.uniform(-0.5, 0.5, (2, 2, 1000)).astype(np.float32)
    for fraction, expected in [(0.7, "identical"), (0.6, None)]:
        mixture = stems[0].copy()
        mixture[:, round(fraction * 1000) :] += 0.1  # differs from stem 0 after `fraction`
        mixture[:, : round(fraction * 1000)] += 5e-5  # within the tolerance of 1e-4
        assert ChunkFilter().reason(mixture, stems) == expected
    mixture = stems[0] + np.where(np.arange(1000) < 700, 5e-5, 0.1).astype(np.float32)
    assert ChunkFilter(max_identical_fraction=0.75).keep(mixture, stems)
    assert not ChunkFilter(identical_tolerance=1e-5).identical(mixture, stems).any()
    assert ChunkFilter(drop_identical=False).keep(mixture, stems)
    assert ChunkFilter().keep(stems.sum(0), stems)  # a real two-stem mixture is kept
    assert ChunkFilter().keep(torch.from_numpy(stems.sum(0)), torch.from_numpy(stems))  # tensors work too


def test_stem_dataset_filter_drops_and_counts(train_songs):
    plain = StemDataset(train_songs, "seed4", segment_samples=22050, exclude_unnamed=True)
    rule = ChunkFilter()
    filtered = StemDataset(train_songs, "seed4", segment_samples=22050, exclude_unnamed=True, filter=rule)
    assert sum(filtered.drop_counts.values()) == len(plain) - len(filtered) > 0
    for index in range(len(filtered)):
        mixture, stems = filtered[index]
        assert rule.keep(mixture, stems)
    again = StemDataset(train_songs, "seed4", segment_samples=22050, exclude_unnamed=True, filter=rule)
    assert again.chunks == filtered.chunks
    assert all(torch.equal(a, b) for a, b in zip(again[2], filtered[2]))


def test_stem_dataset_filter_reads_a_window_at_a_time(train_songs, monkeypatch):
    song = song_named(train_songs, "alpha")
    settings = dict(segment_samples=4410, stride_samples=3000, filter=ChunkFilter())  # overlapping chunks
    whole_song = StemDataset([song], "band", **settings)  # the default window holds the whole song
    monkeypatch.setattr(wavesep.data.dataset, "FILTER_WINDOW_S", 0.3)  # three chunks per window
    tracemalloc.start()
    try:
        windowed = StemDataset([song], "band", **settings)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert windowed.chunks == whole_song.chunks and windowed.drop_counts == whole_song.drop_counts
    # Reading every instrument of the song at once would take five times this.
    assert peak_bytes < song.num_frames * 2 * 4  # one stereo float32 instrument of the whole song


# --- augmentation ------------------------------------------------------------------------------


def test_augment_stems_gain_sign_and_channel_swap():
    stems = np.empty((400, 2, 8), np.float32)
    stems[:, 0], stems[:, 1] = 1.0, 2.0  # left 1, right 2: a swap shows
    augmentation = Augmentation(gain_db=(-6.0, 3.0))
    out = augment_stems(stems, np.random.default_rng(0), augmentation)
    left, right = out[:, 0, 0], out[:, 1, 0]
    swapped = np.abs(left) > np.abs(right)
    gains = np.where(swapped, np.abs(right), np.abs(left))
    assert gains.min() >= 10 ** (-6 / 20) - 1e-6 and gains.max() <= 10 ** (3 / 20) + 1e-6
    assert 0.3 < (left < 0).mean() < 0.7  # signs flip about half the time
    assert 0.3 < swapped.mean() < 0.7
    np.testing.assert_allclose(np.where(swapped, left / right, right / left), 2.0, rtol=1e-5)
    assert np.array_equal(out, augment_stems(stems, np.random.default_rng(0), augmentation))
    assert np.array_equal(augment_stems(stems, np.random.default_rng(1), Augmentation.none()), stems)
    mono = augment_stems(stems[:, :1], np.random.default_rng(0), augmentation)
    assert mono.shape == (400, 1, 8)


def test_random_timbre_eq_and_lowpass():
    flat = random_equalizer(np.random.default_rng(0), 3, 513, 0.0, 0.0)
    assert flat.shape == (3, 513) and np.array_equal(flat, np.ones_like(flat))
    eq = random_equalizer(np.random.default_rng(0), 50, 4097, 6.0, 0.0)
    db = 20 * np.log10(eq)
    assert db.min() >= -6.0 - 1e-4 and db.max() <= 6.0 + 1e-4 and db.std() > 1.0
    assert np.abs(np.diff(db[:, 64:], axis=1)).max() < 0.5  # smooth: a curve, not a noise
    lowpass = random_equalizer(np.random.default_rng(0), 50, 513, 0.0, 1.0)
    np.testing.assert_allclose(lowpass[:, :128], 1.0)  # nothing below a quarter of Nyquist is cut
    assert (lowpass[:, -1] < 0.5).mean() > 0.5 and lowpass.max() <= 1.0

    t = np.arange(4096)
    tones = np.stack([np.sin(np.pi * 0.05 * t), np.sin(np.pi * 0.9 * t)]).astype(np.float32)[:, None]
    augmentation = Augmentation(gain_db=(0.0, 0.0), flip_sign_probability=0.0, swap_channels_probability=0.0,
                                lowpass_probability=1.0)
    rms = [np.sqrt(np.mean(augment_stems(tones, np.random.default_rng(seed), augmentation) ** 2, axis=(1, 2)))
           for seed in range(20)]
    low, high = np.array(rms).T / np.sqrt(0.5)
    np.testing.assert_allclose(low, 1.0, atol=1e-3)  # the low tone passes
    assert high.max() <= 1.0 + 1e-3 and high.min() < 0.3  # the high one is cut, by a random amount


def test_repitch_plays_a_stem_higher_or_lower():
    t = np.arange(8192)
    tone = np.sin(2 * np.pi * 0.02 * t).astype(np.float32)[None, None]  # 0.02 cycles per sample
    assert np.array_equal(repitch(tone, np.array([1.0])), tone)
    up = repitch(tone, np.array([2 ** (2 / 12)]))[0, 0]  # two semitones up
    spectrum = np.abs(np.fft.rfft(up[1024:-1024] * np.hanning(6144)))
    assert abs(np.argmax(spectrum) / 6144 - 0.02 * 2 ** (2 / 12)) < 1 / 6144
    assert np.all(up[:400] == 0) and np.all(up[-400:] == 0)  # a faster stem leaves silence at the ends
    down = repitch(tone, np.array([0.5]))[0, 0]
    np.testing.assert_allclose(down[4096:4196], np.sin(2 * np.pi * 0.01 * (np.arange(4096, 4196) - 4095.5) + 2 * np.pi * 0.02 * 4095.5),
                               atol=2e-3)  # half speed about the centre: an octave down
    augmentation = Augmentation(gain_db=(0.0, 0.0), flip_sign_probability=0.0, swap_channels_probability=0.0,
                                repitch_semitones=2.0)
    out = augment_stems(np.repeat(tone, 20, axis=0), np.random.default_rng(0), augmentation)
    peaks = [np.argmax(np.abs(np.fft.rfft(stem[0, 1024:-1024] * np.hanning(6144)))) / 6144 for stem in out]
    assert min(peaks) >= 0.02 * 2 ** (-2 / 12) - 1 / 6144 and max(peaks) <= 0.02 * 2 ** (2 / 12) + 1 / 6144
    assert len(set(peaks)) > 5  # each stem its own pitch


def test_shift_and_remix_draws():
    rng = np.random.default_rng(0)
    starts = shift_starts(rng, 1000, 500, 300, max_start=1200)
    assert starts.min() >= 700 and starts.max() <= 1200 and len(set(starts.tolist())) > 50
    candidates = [np.array([0, 1, 2]), np.array([], np.int64)]
    cumulative = [np.cumsum([1.0, 0.0, 1.0]), np.zeros(0)]
    draws = [remix_sources(rng, 1.0, candidates, cumulative) for _ in range(200)]
    assert {d[0] for d in draws} == {0, 2}  # weight 0 is never drawn
    assert all(d[1] is None for d in draws)  # no song has that stem: kept
    assert all(s is None for s in remix_sources(rng, 0.0, candidates, cumulative))


def test_remix_takes_stems_from_other_songs(train_songs):
    augmentation = Augmentation.none()
    remix = Augmentation(gain_db=(0.0, 0.0), flip_sign_probability=0.0, swap_channels_probability=0.0,
                         remix_probability=1.0)
    plain = TrainChunks(train_songs, "band", 4410, augmentation=augmentation, filter=None, seed=2)
    mixed = TrainChunks(train_songs, "band", 4410, augmentation=remix, filter=None, seed=2)
    for index in range(20):
        assert {song for song, _ in plain.plan(index).stem_sources} == {plain.plan(index).song}
    plans = [mixed.plan(index) for index in range(20)]
    assert any(len({song for song, _ in plan.stem_sources}) > 1 for plan in plans)
    charlie = train_songs.index(song_named(train_songs, "charlie"))  # has no piano
    assert all(plan.stem_sources[2][0] != charlie for plan in plans)
    assert all(plan.stem_sources[3] == (plan.song, plan.start) for plan in plans)  # no song has a guitar
    # The audio of each stem is the audio of its source.
    mixture, stems = mixed.example(0)
    for stem, (song, start) in enumerate(plans[0].stem_sources):
        expected = read_chunk(train_songs[song], start, 4410, "band").stems[stem]
        np.testing.assert_array_equal(stems[stem].numpy(), expected)
    torch.testing.assert_close(mixture, stems.sum(0), atol=1e-6, rtol=0)


def test_augmented_mixture_is_the_sum_of_augmented_stems(train_songs):
    augmentation = Augmentation(max_shift_samples=2000, remix_probability=0.5, eq_db=6.0, lowpass_probability=0.5,
                                repitch_semitones=2.0)
    band = TrainChunks(train_songs, "band", 4410, augmentation=augmentation, seed=9)
    for mixture, stems in take(band, 5):
        torch.testing.assert_close(mixture, stems.sum(0), atol=1e-6, rtol=0)
    seed4 = TrainChunks(train_songs, "seed4", 4410, augmentation=augmentation, seed=9, filter=None)
    unnamed = [(mixture - stems.sum(0)).abs().max() for mixture, stems in take(seed4, 5)]
    assert max(unnamed) > 0  # the flute is in the mixture, in no stem
    excluded = TrainChunks(train_songs, "seed4", 4410, augmentation=augmentation, seed=9, exclude_unnamed=True)
    for mixture, stems in take(excluded, 5):
        torch.testing.assert_close(mixture, stems.sum(0), atol=1e-6, rtol=0)


