"""Procedural multi-instrument songs, written as Standard MIDI files to train separators on.

A song is planned first (style, meter, tempo, key, sections, a chord per slot), then every part is
written against that plan: drums, bass, comping, melody, an optional pad and optional extras
(counter-melody, percussion, synth effects, sound effects). Sharing one plan keeps the parts
consonant; each part keeps its own track, channel and program, so a renderer gets one clean stem
per instrument. The conductor track (track 0) carries tempo, meter and key, a ``marker`` per
section (intro, verse, chorus, bridge, ending) and a ``text`` chord symbol (``"F#m7"``) at every
chord change, so readers and tests can check the harmony.

Determinism: a song depends only on its integer seed through numpy's PCG64 generator; no set
iteration, hashing, clock or float formatting reaches the file, so a seed gives the same bytes on
every machine (for a given numpy version, whose Generator streams are stable).

The code is split by stage: :mod:`~wavesep.midi.generate.theory` holds the tick grid, scales,
keys, chords and voicings; :mod:`~wavesep.midi.generate.plan` the styles, meters, forms, harmony,
tempo map and instrument palettes; :mod:`~wavesep.midi.generate.parts` the part writers and their
pattern tables; this module assembles the parts and writes the MIDI file.

Example::

    paths = generate_songs("data/generated", n_songs=100, seed=0)
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import mido
import numpy as np

from wavesep.instruments import DRUM_CHANNEL, DRUMS, program_name
from wavesep.midi.generate.parts import WRITERS, Part
from wavesep.midi.generate.plan import (
    BEND_FAMILIES, JAZZ_BASSES, M68, PALETTES, VOLUMES, Noise, Plan, _choose_roles, _pick, _pick_index,
    _plan,
)
from wavesep.midi.generate.theory import MAJOR_KEYS, MINOR_KEYS, TICKS_PER_BEAT

__all__ = ["generate_song", "generate_songs", "song_seed"]


def _make_parts(rng, noise: Noise, plan: Plan) -> list[Part]:
    """Choose instruments and channels for each role, and write every part."""
    channels = iter(c for c in range(16) if c != DRUM_CHANNEL)
    parts, used = [], set()
    for role in _choose_roles(rng):
        if role == "drums":
            part = Part(role, DRUMS, DRUM_CHANNEL)
        else:
            palette = JAZZ_BASSES if role == "bass" and plan.style.swing else PALETTES[role]
            for _ in range(8):  # two parts on one program would merge into one stem
                group = palette[_pick_index(rng, [w for _, w in palette])][0]
                program = int(_pick(rng, group))
                if program not in used:
                    break
            used.add(program)
            part = Part(role, program, next(channels), swing=plan.style.swing)
        WRITERS[role](rng, noise, plan, part)
        _mix_controls(rng, part)
        parts.append(part)
    return parts


def _mix_controls(rng, part: Part):
    """Volume and pan like a real mix; scoops into some notes (pitch bend) on lead and bass parts."""
    centred = part.role in ("drums", "bass", "melody")
    pan = 64 + int(rng.integers(-8, 9)) if centred else int(_pick(rng, (30, 44, 84, 98)))
    part.controls[:0] = [(0, "cc", 7, VOLUMES[part.role] + int(rng.integers(-8, 9))), (0, "cc", 10, pan)]
    lead = part.role == "melody" and part.program // 8 in BEND_FAMILIES
    if (lead or part.program in (35, 38, 39)) and rng.random() < 0.5:
        # RPN 0: bend range of 2 semitones, stated as real files do, then the null RPN.
        part.controls[2:2] = [(0, "cc", 101, 0), (0, "cc", 100, 0), (0, "cc", 6, 2), (0, "cc", 38, 0),
                              (0, "cc", 101, 127), (0, "cc", 100, 127)]
        for start, length, _, _ in part.notes:
            if length >= 360 and rng.random() < 0.25:
                depth = int(rng.integers(1024, 4097))  # up to a semitone below
                for k, value in enumerate((-depth, -depth * 2 // 3, -depth // 3, 0)):
                    part.controls.append((start + 30 * k, "bend", 0, value))


# MIDI writing ----------------------------------------------------------------------------------


def _settle(notes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Sort notes and end each one before the same pitch is struck again (no overlaps)."""
    notes = sorted(notes)
    last_by_pitch: dict[int, int] = {}
    kept: list[tuple[int, int, int, int] | None] = []
    for start, length, pitch, velocity in notes:
        previous = last_by_pitch.get(pitch)
        if previous is not None:
            first, first_length, _, first_velocity = kept[previous]
            if start == first:  # struck twice at once: keep one note
                continue
            if start < first + first_length:
                kept[previous] = (first, start - first, pitch, first_velocity)
        last_by_pitch[pitch] = len(kept)
        kept.append((start, length, pitch, velocity))
    return kept


def _track(name: str, events: list, end_tick: int) -> mido.MidiTrack:
    """A track from (tick, rank, message-or-kwargs) events; ties keep their insertion order."""
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
    now = 0
    for tick, _, message in sorted(events, key=lambda event: (event[0], event[1])):
        track.append(message.copy(time=tick - now) if isinstance(message, mido.MetaMessage)
                     else mido.Message(time=tick - now, **message))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
    return track


def _part_track(part: Part, end_tick: int) -> mido.MidiTrack:
    """Program change, controllers, bends and notes of one part; note-offs sort before note-ons."""
    channel = part.channel
    program = 0 if part.program == DRUMS else part.program  # drums: the standard kit
    events = [(0, 1, {"type": "program_change", "channel": channel, "program": program})]
    for tick, kind, number, value in part.controls:
        if kind == "cc":
            events.append((tick, 2, {"type": "control_change", "channel": channel,
                                     "control": number, "value": value}))
        else:
            events.append((tick, 3, {"type": "pitchwheel", "channel": channel, "pitch": value}))
    for start, length, pitch, velocity in _settle(part.notes):
        note = {"channel": channel, "note": pitch}
        events.append((start, 4, {"type": "note_on", "velocity": velocity, **note}))
        events.append((start + length, 0, {"type": "note_off", "velocity": 64, **note}))
    last_tick = max(tick for tick, _, _ in events)
    return _track(f"{part.role}: {program_name(part.program)}", events, max(end_tick, last_tick))


def _conductor(plan: Plan, seed: int) -> mido.MidiTrack:
    """Tempo map, meter, key, section markers and chord symbols."""
    meter = plan.meter
    clocks = 36 if meter is M68 else 24  # MIDI clocks per metronome click: dotted quarter in 6/8
    key = (MINOR_KEYS if plan.minor else MAJOR_KEYS)[plan.tonic]
    events = [(0, 0, mido.MetaMessage("time_signature", numerator=meter.numerator,
                                      denominator=meter.denominator, clocks_per_click=clocks,
                                      notated_32nd_notes_per_beat=8)),
              (0, 0, mido.MetaMessage("key_signature", key=key))]
    events += [(tick, 1, mido.MetaMessage("set_tempo", tempo=tempo)) for tick, tempo in plan.tempo_changes]
    events += [(s.start_tick, 2, mido.MetaMessage("marker", text=s.kind)) for s in plan.sections]
    events += [(start, 3, mido.MetaMessage("text", text=chord.name)) for start, _, chord in plan.slots]
    return _track(f"wavesep generated song, seed {seed}, {plan.style.name}", events, plan.end_tick)


def generate_song(seed: int) -> mido.MidiFile:
    """Generate one song.

    Args:
        seed: Non-negative integer; the song depends on nothing else.

    Returns:
        A type-1 MIDI file at 480 ticks per beat: a conductor track, then one track per part.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    plan = _plan(rng)
    parts = _make_parts(rng, Noise(rng), plan)
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(_conductor(plan, int(seed)))
    midi.tracks.extend(_part_track(part, plan.end_tick) for part in parts)
    return midi


def song_seed(seed: int, index: int) -> int:
    """Seed of song ``index`` of a batch: a 63-bit hash of (seed, index) through numpy's SeedSequence."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def generate_songs(out_dir: str | Path, n_songs: int, seed: int = 0) -> list[Path]:
    """Generate ``n_songs`` songs into ``out_dir`` as ``gen-{seed}-{i:05d}.mid``.

    Song ``i`` comes from :func:`song_seed` ``(seed, i)``, so a batch can be extended or
    regenerated in part. Each file is written to a temporary name and renamed, so a reader never
    sees half a file.

    Args:
        out_dir: Folder to write to; created if missing.
        n_songs: Number of songs.
        seed: Non-negative batch seed.

    Returns:
        The paths written, in order.
    """
    if isinstance(n_songs, bool) or not isinstance(n_songs, int) or n_songs < 0:
        raise ValueError(f"n_songs must be a non-negative integer, got {n_songs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n_songs):
        path = out_dir / f"gen-{seed}-{index:05d}.mid"
        buffer = io.BytesIO()
        generate_song(song_seed(seed, index)).save(file=buffer)
        temporary = out_dir / f".{path.name}.{os.getpid()}.tmp"
        try:
            temporary.write_bytes(buffer.getvalue())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        paths.append(path)
    return paths
