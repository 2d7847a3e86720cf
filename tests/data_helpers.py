"""Helpers shared by the data tests: a tiny corpus of songs and ways to compare streams."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import torch

SAMPLE_RATE = 44100
FULL_BAND = ((9, None), (0, 33), (1, 0), (2, 48), (3, 73))  # (channel, program): drums, bass, piano, strings, flute
NO_PIANO = ((9, None), (0, 33), (2, 48), (3, 73))
SONGS = {  # name: (beats at 120 BPM, seed of the melody, instruments)
    "alpha": (10, 1, FULL_BAND),
    "bravo": (12, 2, FULL_BAND),
    "charlie": (8, 3, NO_PIANO),
    "delta": (9, 4, FULL_BAND),  # the only song of the valid split
}


def write_midi(path: Path, n_beats: int, seed: int, instruments) -> Path:
    """A tiny song: one track per instrument, a note every half beat."""
    rng = np.random.default_rng(seed)
    midi = mido.MidiFile(ticks_per_beat=480)
    for channel, program in instruments:
        track = mido.MidiTrack()
        midi.tracks.append(track)
        if program is not None:
            track.append(mido.Message("program_change", channel=channel, program=program, time=0))
        for _ in range(2 * n_beats):
            note = int(rng.choice([36, 38, 42])) if channel == 9 else 40 + 10 * channel + int(rng.integers(0, 12))
            track.append(mido.Message("note_on", channel=channel, note=note, velocity=100, time=0))
            track.append(mido.Message("note_off", channel=channel, note=note, velocity=0, time=240))
    midi.save(path)
    return path


def song_named(songs, name):
    return next(song for song in songs if song.song_id.startswith(name))


def take(dataset, n):
    iterator = iter(dataset)
    return [next(iterator) for _ in range(n)]


def same_items(a, b):
    return all(torch.equal(x, y) for pair_a, pair_b in zip(a, b) for x, y in zip(pair_a, pair_b))


def fingerprint(item) -> bytes:
    return item[1].numpy().tobytes()
