"""Small MIDI files made by hand for tests: good ones with known content, and broken ones."""

from __future__ import annotations

import struct
from pathlib import Path

import mido

TICKS = 480


def part(channel: int, program: int | None, notes: list[tuple[int, int, int]], velocity: int = 90,
         extra: list[tuple[int, mido.Message]] = ()) -> mido.MidiTrack:
    """A track from (start_tick, length_ticks, key) notes, plus (tick, message) extras.

    A program change at tick 0 is added when ``program`` is not None.
    """
    events = []
    if program is not None:
        events.append((0, 0, mido.Message("program_change", channel=channel, program=program)))
    for start, length, key in notes:
        events.append((start, 2, mido.Message("note_on", channel=channel, note=key, velocity=velocity)))
        events.append((start + length, 1, mido.Message("note_off", channel=channel, note=key)))
    for tick, message in extra:
        events.append((tick, 0, message))
    return _track(events)


def _track(events) -> mido.MidiTrack:
    track = mido.MidiTrack()
    now = 0
    for tick, _, message in sorted(events, key=lambda item: (item[0], item[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    return track


def conductor(tempos: list[tuple[int, int]] = ((0, 500_000),)) -> mido.MidiTrack:
    """Tempo changes as (tick, microseconds per beat)."""
    return _track([(tick, 0, mido.MetaMessage("set_tempo", tempo=tempo)) for tick, tempo in tempos])


def scale(start_tick: int, n: int, base: int = 60, step_ticks: int = TICKS) -> list[tuple[int, int, int]]:
    major = [0, 2, 4, 5, 7, 9, 11, 12]
    return [(start_tick + i * step_ticks, step_ticks, base + major[i % 8]) for i in range(n)]


def band_song(path: Path, beats: int = 8, tempo: int = 500_000) -> Path:
    """Drums, bass (33), piano (0), strings (48) and a flute (73), ``beats`` beats long."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS)
    midi.tracks.append(conductor([(0, tempo)]))
    midi.tracks.append(part(9, None, [(i * TICKS, TICKS // 2, 36 if i % 2 == 0 else 38) for i in range(beats)]
                            + [(i * TICKS, TICKS // 4, 42) for i in range(beats)]))
    midi.tracks.append(part(1, 33, scale(0, beats, base=36)))
    midi.tracks.append(part(0, 0, scale(0, beats, base=60)))
    midi.tracks.append(part(2, 48, [(0, beats * TICKS, 67)]))
    midi.tracks.append(part(3, 73, scale(0, beats, base=72)))
    midi.save(path)
    return path


def save(path: Path, tracks: list[mido.MidiTrack], midi_type: int = 1) -> Path:
    midi = mido.MidiFile(type=midi_type, ticks_per_beat=TICKS)
    midi.tracks.extend(tracks)
    midi.save(path)
    return path


def raw_midi(path: Path, tracks: list[bytes], division: int = TICKS, midi_type: int = 1) -> Path:
    """A MIDI file from raw track bodies, for inputs mido would refuse to write."""
    data = b"MThd" + struct.pack(">IHHH", 6, midi_type, len(tracks), division)
    for body in tracks:
        data += b"MTrk" + struct.pack(">I", len(body)) + body
    path.write_bytes(data)
    return path


def varlen(value: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def kill_worker_on_boom(job):
    """A render job for tests: the worker process dies on files named boom*.mid."""
    import os

    from wavesep.synth.writer import Outcome

    if job.path.name.startswith("boom"):
        os._exit(9)
    return Outcome(job.path, "rendered", duration_s=1.0)


def no_setup(*args):
    pass
