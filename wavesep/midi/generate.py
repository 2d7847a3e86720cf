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

Example::

    paths = generate_songs("data/generated", n_songs=100, seed=0)
"""

from __future__ import annotations

import bisect
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np

from wavesep.instruments import DRUM_CHANNEL, DRUMS, program_name

TICKS_PER_BEAT = 480
STEP = TICKS_PER_BEAT // 4  # a sixteenth: the grid patterns are written on
EIGHTH = TICKS_PER_BEAT // 2
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)  # natural minor; chord tokens may raise the leading tone
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
MAJOR_KEYS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MINOR_KEYS = ("Cm", "C#m", "Dm", "Ebm", "Em", "Fm", "F#m", "Gm", "G#m", "Am", "Bbm", "Bm")
CHORD_SUFFIXES = {
    (0, 4, 7): "", (0, 3, 7): "m", (0, 3, 6): "dim", (0, 4, 8): "aug", (0, 4, 7, 10): "7",
    (0, 4, 7, 11): "maj7", (0, 3, 7, 10): "m7", (0, 3, 6, 10): "m7b5",
}
"""Chord symbol suffix of each quality, by semitones above the root."""

# Progressions as scale-degree tokens: "5" the diatonic triad, "57" its seventh chord, "5M" a major
# triad (the raised leading tone of minor keys), "5D" a dominant seventh (blues, minor ii-V-i).
PROGRESSIONS = {
    "major": ("1 5 6 4", "1 6 4 5", "1 4 5 4", "6 4 1 5", "1 4 6 5", "4 5 3 6", "1 2 4 5", "1 3 4 5"),
    "minor": ("1 6 3 7", "1 4 5 1", "1 7 6 5M", "1 4 7 3", "1 6 4 5M", "1 4 1 5M", "1 3 7 6"),
}
JAZZ_PROGRESSIONS = {
    "major": ("27 57 17 17", "17 67 27 57", "37 67 27 57"),
    "minor": ("27 5D 17 17", "17 47 27 5D"),
}
BLUES = {"major": "1D 1D 1D 1D 4D 4D 1D 1D 5D 4D 1D 5D", "minor": "1 1 1 1 4 4 1 1 6 5D 1 5D"}
FORMS = ("vcvc", "vvcv", "vcvcbc", "vcbc", "vvcvc", "vcvbc")  # verse, chorus, bridge
KIND_NAMES = {"v": "verse", "c": "chorus", "b": "bridge"}
KIND_LEVELS = {"intro": 72, "verse": 82, "chorus": 96, "bridge": 86, "ending": 92}


@dataclass(frozen=True)
class Meter:
    """A time signature and where its beats fall, in ticks."""

    numerator: int
    denominator: int
    pulse_ticks: int  # the felt beat: a quarter, or a dotted quarter in 6/8
    strong_ticks: tuple[int, ...]  # strong pulses within a bar

    @property
    def bar_ticks(self) -> int:
        return self.numerator * TICKS_PER_BEAT * 4 // self.denominator

    def accent(self, tick: int) -> int:
        """Velocity accent for a note starting at song tick ``tick``: downbeats loudest."""
        position = tick % self.bar_ticks
        if position == 0:
            return 10
        if position in self.strong_ticks:
            return 6
        if position % self.pulse_ticks == 0:
            return 3
        return 0 if position % EIGHTH == 0 else -4


M44, M34, M68 = Meter(4, 4, 480, (0, 960)), Meter(3, 4, 480, (0,)), Meter(6, 8, 720, (0, 720))


@dataclass(frozen=True)
class Style:
    """A genre: meter, tempo range and the drum and bass patterns that fit it."""

    name: str
    weight: float
    meter: Meter
    tempo_bpm: tuple[int, int]  # quarter notes per minute, inclusive range
    drums: tuple[str, ...]  # keys of DRUM_PATTERNS
    bass: tuple[str, ...]  # keys of BASS_PATTERNS, or "walking"
    swing: bool = False  # offbeat eighths played late, on the last triplet
    blues: float = 0.0  # probability of a 12-bar blues form
    jazz: bool = False  # ii-V progressions of seventh chords


STYLES = (
    Style("rock", 0.17, M44, (100, 150), ("rock", "pop"), ("eighths", "rock", "root5")),
    Style("pop", 0.20, M44, (84, 128), ("pop", "rock", "disco"), ("pop", "root5", "octave")),
    Style("funk", 0.08, M44, (90, 116), ("funk",), ("funk", "octave")),
    Style("disco", 0.06, M44, (110, 128), ("disco",), ("octave", "eighths")),
    Style("ballad", 0.10, M44, (70, 90), ("ballad",), ("half", "root5")),
    Style("shuffle", 0.08, M44, (84, 132), ("shuffle",), ("boogie", "walking"), swing=True, blues=0.6),
    Style("jazz", 0.07, M44, (100, 170), ("jazz",), ("walking",), swing=True, jazz=True),
    Style("waltz", 0.12, M34, (90, 170), ("waltz", "waltz2"), ("waltz", "three")),
    Style("sixeight", 0.12, M68, (96, 160), ("sixeight", "sixeight2"), ("sixeight", "sixeight2")),
)

# Drum grooves: (grid_ticks, {GM drum key: one character per grid step}); "x" hit, "X" accent,
# "g" ghost note. 36 kick, 38 snare, 42 closed hat, 44 pedal hat, 46 open hat, 51 ride.
DRUM_PATTERNS = {
    "rock": (STEP, {36: "x.......x.x.....", 38: "....X.......X...", 42: "x.x.x.x.x.x.x.x."}),
    "pop": (STEP, {36: "x.....x.x.......", 38: "....X.......X...", 42: "xxxxxxxxxxxxxxxx"}),
    "funk": (STEP, {36: "x..x......x..x..", 38: "....X..g.g..X..g", 42: "xxxxxxxxxxxxxxxx"}),
    "disco": (STEP, {36: "x...x...x...x...", 38: "....X.......X...", 42: "x...x...x...x...",
                     46: "..x...x...x...x."}),
    "ballad": (STEP, {36: "x.........x.....", 38: "........X.......", 42: "x.x.x.x.x.x.x.x."}),
    "shuffle": (160, {36: "x.....x.....", 38: "...X.....X..", 42: "x.xx.xx.xx.x"}),
    "jazz": (160, {36: "g.....g.....", 51: "x..x.xx..x.x", 44: "...x.....x..", 38: "........g..."}),
    "waltz": (STEP, {36: "x...........", 38: "....x...x...", 42: "x.x.x.x.x.x."}),
    "waltz2": (STEP, {36: "x.......x...", 38: "....X.......", 42: "x...x...x..."}),
    "sixeight": (STEP, {36: "x.........x.", 38: "......X.....", 42: "x.x.x.x.x.x."}),
    "sixeight2": (STEP, {36: "x...x.......", 38: "......X.....", 42: "x.xxx.x.xxx."}),
}
DRUM_VELOCITIES = {"x": 92, "X": 108, "g": 42}
FILLS = ((38,), (50, 48, 45, 41), (38, 38, 48, 45), (38, 45, 41), (48, 47, 45, 43))
HAT, RIDE, CRASH, KICK = 42, 51, 49, 36

# Bass patterns: (sixteenth step, length in steps, tone); tones R root, 3 third, 5 fifth, 6 sixth,
# 8 octave. A note on a chord change always plays the root.
BASS_PATTERNS = {
    "half": ((0, 8, "R"), (8, 8, "5")),
    "root5": ((0, 6, "R"), (6, 2, "R"), (8, 6, "5"), (14, 2, "R")),
    "eighths": tuple((s, 2, "R") for s in range(0, 16, 2)),
    "rock": ((0, 3, "R"), (4, 2, "R"), (6, 2, "R"), (8, 3, "5"), (12, 2, "R"), (14, 2, "8")),
    "pop": ((0, 6, "R"), (6, 2, "R"), (8, 4, "5"), (12, 2, "8"), (14, 2, "5")),
    "octave": tuple((s, 2, "R8"[s // 2 % 2]) for s in range(0, 16, 2)),
    "funk": ((0, 2, "R"), (3, 1, "R"), (6, 1, "8"), (7, 1, "R"), (10, 2, "5"), (12, 1, "R"), (14, 1, "8")),
    "boogie": ((0, 4, "R"), (4, 4, "3"), (8, 4, "5"), (12, 4, "6")),
    "waltz": ((0, 8, "R"), (8, 4, "5")),
    "three": ((0, 4, "R"), (4, 4, "5"), (8, 4, "8")),
    "sixeight": ((0, 6, "R"), (6, 6, "5")),
    "sixeight2": ((0, 4, "R"), (4, 2, "5"), (6, 4, "8"), (10, 2, "5")),
}
BASS_LOW, BASS_HIGH = 28, 55  # E1 to G3

# Comping rhythms: (sixteenth step, length in steps), by meter numerator (or "jazz").
BLOCK_RHYTHMS = {
    4: (((0, 16),), ((0, 8), (8, 8)), ((0, 4), (4, 4), (8, 4), (12, 4)),
        ((0, 3), (3, 5), (8, 3), (11, 5)), ((0, 6), (6, 2), (8, 6), (14, 2))),
    3: (((0, 12),), ((0, 4), (4, 4), (8, 4)), ((4, 4), (8, 4)), ((0, 4), (4, 2), (8, 4))),
    6: (((0, 12),), ((0, 6), (6, 6)), ((0, 2), (2, 2), (4, 2), (6, 2), (8, 2), (10, 2))),
    "jazz": (((0, 5), (6, 4)), ((4, 2), (10, 4)), ((0, 4), (12, 2))),
}
STRUMS = {4: ("D.DU.UDU", "D.D.D.D.", "D..D..DU"), 3: ("D.DUDU", "D.D.D."), 6: ("D.UD.U", "D..D..")}
ARPEGGIOS = ((0, 1, 2, 3), (0, 1, 2, 3, 2, 1), (0, 2, 1, 2), (3, 2, 1, 0))
PERC_PATTERNS = {16: ("h.l.h.l.hhl.h.l.", "h..h..h.l.h.l...", "l...h...l...h..h"),
                 12: ("h.l.l.h.l.l.", "h..h..l..l..", "l.h.h.l.h.h.")}

# Melody rhythm cells for one pulse: ((onset, length) in ticks, busyness).
BEAT_CELLS = (((), 0.0), (((0, 480),), 1.0), (((0, 960),), 0.5), (((0, 240), (240, 240)), 2.0),
              (((240, 240),), 1.2), (((0, 360), (360, 120)), 2.2),
              (((0, 120), (120, 120), (240, 240)), 3.0))
DOTTED_CELLS = (((), 0.0), (((0, 720),), 1.0), (((0, 480), (480, 240)), 2.0),
                (((0, 240), (240, 480)), 2.0), (((0, 240), (240, 240), (480, 240)), 3.0))
MELODY_STEPS = ((-4, 0.03), (-3, 0.07), (-2, 0.15), (-1, 0.22), (0, 0.08), (1, 0.22), (2, 0.15),
                (3, 0.05), (4, 0.03))  # scale steps: mostly stepwise, some leaps

# Instrument palettes per role: (programs, weight); a program listed twice is twice as likely.
PALETTES = {
    "bass": (((32, 33, 33, 34, 34, 35, 36, 37, 38, 39), 1.0),),
    "comp": (((0, 0, 1, 2, 3, 4, 5, 6, 7), 0.40), ((24, 25, 26, 27, 28, 29, 30), 0.30),
             ((16, 17, 18, 19, 21), 0.15), ((8, 11, 12, 13, 15, 46), 0.15)),
    "melody": (((0, 1, 4, 5, 6), 0.07), ((8, 9, 10, 11, 12, 13), 0.05), ((16, 21, 22, 23), 0.04),
               ((24, 25, 26, 27, 29, 30), 0.12), ((40, 41, 42), 0.10), ((56, 57, 59, 60), 0.10),
               ((64, 65, 66, 68, 71), 0.13), ((72, 73, 74, 75, 77, 78, 79), 0.13),
               (tuple(range(80, 88)), 0.13), (tuple(range(104, 112)), 0.08)),
    "pad": (((44, 48, 48, 49, 50, 51, 52, 53, 54), 0.45), (tuple(range(88, 96)), 0.30),
            ((16, 19, 20), 0.10), ((60, 61, 62, 63), 0.15)),
    "perc": ((tuple(range(112, 120)), 1.0),),
    "fx": (((96, 97, 98, 99, 100, 101, 102, 103), 1.0),),
    "sfx": ((tuple(range(120, 128)), 1.0),),
}
PALETTES["counter"] = PALETTES["melody"]
JAZZ_BASSES = (((32, 32, 32, 33, 35), 1.0),)  # swing styles: mostly upright bass
EXTRA_ROLES = (("counter", 0.30), ("perc", 0.25), ("fx", 0.20), ("sfx", 0.25))
MELODY_REGISTERS = {9: (72, 96), 10: (72, 96), 40: (62, 88), 41: (55, 79), 42: (48, 72),
                    57: (50, 74), 65: (55, 79), 66: (50, 74), 72: (74, 98), 73: (67, 91),
                    74: (67, 91), 78: (72, 96)}
VOLUMES = {"drums": 100, "bass": 100, "comp": 86, "melody": 100, "pad": 72, "counter": 82,
           "perc": 80, "fx": 66, "sfx": 70}
BEND_FAMILIES = (3, 7, 8, 10, 13)  # guitar, brass, reed, synth lead, ethnic: they bend into notes


@dataclass(frozen=True)
class Chord:
    """A chord: root pitch class, semitones above the root, and its symbol."""

    root: int
    intervals: tuple[int, ...]
    name: str

    @property
    def pcs(self) -> tuple[int, ...]:
        return tuple((self.root + interval) % 12 for interval in self.intervals)


@dataclass(frozen=True)
class Section:
    """A span of whole bars with one dynamic level and one density."""

    kind: str  # intro, verse, chorus, bridge or ending
    start_tick: int
    n_bars: int
    level: int  # base velocity
    density: float  # 0-1: how busy melody and comping are


@dataclass
class Plan:
    """Everything the parts share: style, key, tempo map, sections and chords."""

    style: Style
    tempo_bpm: int  # the opening tempo; tempo_changes holds the whole map
    tonic: int
    minor: bool
    scale: tuple[int, ...]
    sections: list[Section]
    slots: list[tuple[int, int, Chord]]  # (start_tick, end_tick, chord) in time order
    tempo_changes: list[tuple[int, int]]  # (tick, microseconds per quarter note)

    def __post_init__(self):
        self._slot_starts = [start for start, _, _ in self.slots]
        self._section_starts = [section.start_tick for section in self.sections]

    @property
    def meter(self) -> Meter:
        return self.style.meter

    @property
    def end_tick(self) -> int:
        last = self.sections[-1]
        return last.start_tick + last.n_bars * self.meter.bar_ticks

    def slot_index(self, tick: int) -> int:
        return bisect.bisect_right(self._slot_starts, tick) - 1

    def chord_at(self, tick: int) -> Chord:
        return self.slots[self.slot_index(tick)][2]

    def section_at(self, tick: int) -> Section:
        return self.sections[bisect.bisect_right(self._section_starts, tick) - 1]


@dataclass
class Part:
    """One instrument: its notes and controller events, on its own channel and track."""

    role: str
    program: int  # GM program 0-127, or DRUMS
    channel: int
    swing: bool = False
    # (start_tick, length_ticks, pitch, velocity)
    notes: list[tuple[int, int, int, int]] = field(default_factory=list)
    # (tick, "cc" or "bend", controller number (0 for bends), value)
    controls: list[tuple[int, str, int, int]] = field(default_factory=list)

    def add(self, start_tick: int, length_ticks: int, pitch: int, velocity: int, jitter_ticks: int = 0):
        """Add a note; swing delays offbeat eighths to the last triplet, then jitter humanises."""
        if self.swing and EIGHTH <= start_tick % TICKS_PER_BEAT < EIGHTH + 80:  # strummed strings too
            start_tick += 80
            length_ticks -= 80
        start_tick = max(0, start_tick + jitter_ticks)
        while pitch > 127:
            pitch -= 12
        while pitch < 0:
            pitch += 12
        self.notes.append((start_tick, max(1, length_ticks), pitch, min(127, max(1, velocity))))


class Noise:
    """Small humanising integers, drawn from the song's generator in blocks (scalar draws are slow)."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.values, self.used = rng, np.empty(0), 0

    def __call__(self, limit: int) -> int:
        """A uniform integer in [-limit, limit]."""
        if self.used == len(self.values):
            self.values, self.used = self.rng.random(512), 0
        self.used += 1
        return int(self.values[self.used - 1] * (2 * limit + 1)) - limit


def _pick_index(rng: np.random.Generator, weights) -> int:
    """Index drawn with probability proportional to ``weights`` (pure Python: platform independent)."""
    point, total = rng.random() * sum(weights), 0.0
    for index, weight in enumerate(weights):
        total += weight
        if point < total:
            return index
    return len(weights) - 1


def _pick(rng: np.random.Generator, items):
    """One of ``items``, uniformly."""
    return items[int(rng.integers(len(items)))]


def _chord(token: str, scale: tuple[int, ...], flats: bool) -> Chord:
    """The chord a progression token names in a key (see PROGRESSIONS)."""
    degree, flag = int(token[0]) - 1, token[1:]
    root = scale[degree]
    if flag in ("M", "D"):
        intervals = (0, 4, 7) if flag == "M" else (0, 4, 7, 10)
    else:
        size = 4 if flag == "7" else 3
        intervals = tuple((scale[(degree + 2 * k) % 7] - root) % 12 for k in range(size))
    return Chord(root, intervals, (FLAT_NAMES if flats else SHARP_NAMES)[root] + CHORD_SUFFIXES[intervals])


def _choose_harmony(rng, style: Style, meter: Meter, mode: str) -> tuple[dict[str, str], int]:
    """Progression per section kind, and chord length in ticks."""
    if rng.random() < style.blues:
        return dict.fromkeys(("verse", "chorus", "bridge"), BLUES[mode]), meter.bar_ticks
    pool = (JAZZ_PROGRESSIONS if style.jazz else PROGRESSIONS)[mode]
    order = rng.permutation(len(pool))
    kinds = ("verse", "chorus", "bridge")
    progressions = {kind: pool[order[i % len(pool)]] for i, kind in enumerate(kinds)}
    if meter is M44 and style.name != "ballad":
        lengths, weights = (meter.bar_ticks // 2, meter.bar_ticks, 2 * meter.bar_ticks), (0.2, 0.65, 0.15)
    else:
        lengths, weights = (meter.bar_ticks, 2 * meter.bar_ticks), (0.7, 0.3)
    return progressions, lengths[_pick_index(rng, weights)]


def _choose_form(rng, bar_s: float, unit_bars: int) -> tuple[int, int, str]:
    """(intro bars, bars per section, section letters) giving 16-48 bars and roughly 22-78 s."""
    min_bars, max_bars = max(16, math.ceil(22 / bar_s)), min(48, math.floor(78 / bar_s))
    form = _pick(rng, FORMS)
    lengths = [n for n in (4, 8) if n % unit_bars == 0] or [unit_bars]
    wanted_intro = int(_pick(rng, (0, 0, 2, 4)))
    fits = [(intro, length, n) for intro in (0, 2, 4) for length in lengths for n in range(1, 13)
            if min_bars <= intro + n * length + 1 <= max_bars]
    preferred = [fit for fit in fits if fit[0] == wanted_intro and fit[2] >= 2] or fits
    if not preferred:  # cannot happen with the tempo ranges above; keep the nearest length
        preferred = [(0, lengths[0], max(1, (max_bars - 1) // lengths[0]))]
    intro, length, n = _pick(rng, preferred)
    return intro, length, "".join(form[i % len(form)] for i in range(n))


def _plan(rng: np.random.Generator) -> Plan:
    """Draw a song's style, key, tempo, form and chords."""
    style = STYLES[_pick_index(rng, [s.weight for s in STYLES])]
    meter = style.meter
    tempo_bpm = int(rng.integers(style.tempo_bpm[0], style.tempo_bpm[1] + 1))
    tonic, minor = int(rng.integers(12)), bool(rng.random() < 0.4)
    key = (MINOR_KEYS if minor else MAJOR_KEYS)[tonic]
    flats = "b" in key[1:] or key in ("F", "Dm", "Gm", "Cm", "Fm")
    scale = tuple((tonic + step) % 12 for step in (MINOR if minor else MAJOR))
    progressions, chord_ticks = _choose_harmony(rng, style, meter, "minor" if minor else "major")
    progressions.update(intro=progressions["verse"], ending="1")
    unit_bars = max(1, len(progressions["verse"].split()) * chord_ticks // meter.bar_ticks)
    bar_s = meter.bar_ticks / TICKS_PER_BEAT * 60 / tempo_bpm
    intro_bars, section_bars, letters = _choose_form(rng, bar_s, unit_bars)
    kinds = (["intro"] if intro_bars else []) + [KIND_NAMES[c] for c in letters] + ["ending"]
    loudness, density = int(rng.integers(-14, 7)), float(rng.uniform(0.25, 0.8))
    sections, slots, tick = [], [], 0
    for kind in kinds:
        n_bars = intro_bars if kind == "intro" else 1 if kind == "ending" else section_bars
        boost = {"chorus": 0.15, "bridge": 0.05, "intro": -0.2}.get(kind, 0.0)
        busy = min(1.0, max(0.0, density + boost))
        sections.append(Section(kind, tick, n_bars, KIND_LEVELS[kind] + loudness, busy))
        chords = [_chord(token, scale, flats) for token in progressions[kind].split()]
        end, length = tick + n_bars * meter.bar_ticks, meter.bar_ticks if kind == "ending" else chord_ticks
        for i, start in enumerate(range(tick, end, length)):
            slots.append((start, min(start + length, end), chords[i % len(chords)]))
        tick = end
    plan = Plan(style, tempo_bpm, tonic, minor, scale, sections, slots, [])
    plan.tempo_changes = _tempo_changes(rng, plan)
    return plan


def _tempo_changes(rng, plan: Plan) -> list[tuple[int, int]]:
    """Tempo map: a steady tempo, sometimes a bridge at its own tempo, sometimes a final ritardando."""
    base_us = 60_000_000 // plan.tempo_bpm
    changes = [(0, base_us)]
    if rng.random() < 0.15:
        percent = int(_pick(rng, (88, 92, 108, 112)))  # microseconds: above 100 is slower
        for section in plan.sections:
            if section.kind == "bridge":
                changes.append((section.start_tick, base_us * percent // 100))
                changes.append((section.start_tick + section.n_bars * plan.meter.bar_ticks, base_us))
    if rng.random() < 0.3:  # ritardando over the last two bars, one step per pulse, to ~70 %
        pulse, start = plan.meter.pulse_ticks, plan.end_tick - 2 * plan.meter.bar_ticks
        n_steps = (plan.end_tick - start) // pulse
        changes = [change for change in changes if change[0] < start]
        for k in range(n_steps):
            changes.append((start + k * pulse, base_us * (100 + 45 * (k + 1) // n_steps) // 100))
    return changes


def _velocity(noise: Noise, plan: Plan, tick: int, level: int) -> int:
    return level + plan.meter.accent(tick) + noise(4)


def _nearest(pcs, reference: int, low: int, high: int) -> int:
    """The pitch with a pitch class in ``pcs`` nearest ``reference`` within [low, high]."""
    candidates = [p for p in range(low, high + 1) if p % 12 in pcs] or [reference]
    return min(candidates, key=lambda p: (abs(p - reference), p))


def _chord_scale(scale: tuple[int, ...], chord: Chord) -> tuple[int, ...]:
    """The key's scale with the chord's altered tones swapped in (e.g. G# over E in A minor)."""
    pcs = set(scale)
    for pc in chord.pcs:
        if pc not in pcs:
            pcs -= {(pc + 1) % 12, (pc - 1) % 12} - set(chord.pcs)
            pcs.add(pc)
    return tuple(sorted(pcs))


def _scale_step(pitch: int, steps: int, scale: tuple[int, ...]) -> int:
    """Move ``steps`` scale degrees from ``pitch`` (snapped up into the scale first)."""
    while pitch % 12 not in scale:
        pitch += 1
    direction = 1 if steps > 0 else -1
    for _ in range(abs(steps)):
        pitch += direction
        while pitch % 12 not in scale:
            pitch += direction
    return pitch


def _voice(pcs: tuple[int, ...], previous: list[int] | None, low: int, high: int) -> list[int]:
    """Close-position voicing of ``pcs`` in [low, high] that moves least from ``previous``."""
    centre, candidates = (low + high) / 2, []
    for inversion in range(len(pcs)):
        order = pcs[inversion:] + pcs[:inversion]
        for octave in (0, 12):
            notes = [low + (order[0] - low) % 12 + octave]
            for pc in order[1:]:
                notes.append(notes[-1] + (pc - notes[-1]) % 12)
            if notes[-1] <= high:
                candidates.append(notes)
    if not candidates:
        candidates = [notes]

    def cost(notes: list[int]) -> float:
        drift = abs(sum(notes) / len(notes) - centre)
        if previous is None:
            return drift
        moves = sum(min(abs(n - p) for p in previous) for n in notes)
        return moves + sum(min(abs(p - n) for n in notes) for p in previous) + 0.5 * drift

    return min(candidates, key=cost)


def _voicings(plan: Plan, low: int, high: int) -> list[list[int]]:
    """Voice-led voicing of every chord slot, in slot order."""
    voicings, previous = [], None
    for _, _, chord in plan.slots:
        previous = _voice(chord.pcs, previous, low, high)
        voicings.append(previous)
    return voicings


# Part writers ----------------------------------------------------------------------------------


def _drums(rng, noise: Noise, plan: Plan, part: Part):
    """Groove per section, a fill into every section change, a crash on every new section."""
    verse_groove, chorus_groove = _pick(rng, plan.style.drums), _pick(rng, plan.style.drums)
    chorus_ride = rng.random() < 0.4  # choruses often keep time on the ride instead of the hat
    fill_ticks = plan.meter.pulse_ticks * (1 if plan.meter is M68 else int(rng.integers(1, 3)))
    fill = _pick(rng, FILLS)
    bar = plan.meter.bar_ticks
    for section in plan.sections:
        offset = section.level - 85
        if section.kind != "intro":
            part.add(section.start_tick, 60, CRASH, 112 + offset)
        if section.kind == "ending":
            part.add(section.start_tick, 60, KICK, 110 + offset)
            continue
        grid, lines = DRUM_PATTERNS[chorus_groove if section.kind == "chorus" else verse_groove]
        for bar_index in range(section.n_bars):
            bar_start = section.start_tick + bar_index * bar
            groove_end = bar - fill_ticks if bar_index == section.n_bars - 1 else bar
            for key, steps in lines.items():
                if section.kind == "intro" and key != HAT and key != RIDE:
                    continue  # intros keep time without kick and backbeat
                key = RIDE if key == HAT and chorus_ride and section.kind == "chorus" else key
                for step, hit in enumerate(steps):
                    if hit != "." and step * grid < groove_end:
                        quiet = 14 if key in (42, 44, 46) else 0
                        velocity = DRUM_VELOCITIES[hit] - quiet + offset + noise(5)
                        velocity += plan.meter.accent(step * grid)
                        part.add(bar_start + step * grid, grid // 2, key, velocity, noise(3))
            if groove_end < bar:
                _drum_fill(noise, part, bar_start + groove_end, fill_ticks, grid, fill, offset)


def _drum_fill(noise: Noise, part: Part, start_tick: int, length_ticks: int, grid: int, keys, offset: int):
    """Snare and toms on the grid, descending and getting louder, into the next section."""
    n_hits = length_ticks // grid
    for i in range(n_hits):
        key = keys[i * len(keys) // n_hits]
        part.add(start_tick + i * grid, grid // 2, key, 80 + 30 * i // n_hits + offset + noise(4), noise(3))


def _bass(rng, noise: Noise, plan: Plan, part: Part):
    """Root-based patterns (or a walking line) following the chords, E1-G3."""
    pattern_name = _pick(rng, plan.style.bass)
    low = BASS_LOW + int(rng.integers(0, 5))  # the lowest root: E1 up to G#1
    if pattern_name == "walking":
        return _walking_bass(rng, noise, plan, part, low)
    pattern, bar = BASS_PATTERNS[pattern_name], plan.meter.bar_ticks
    intro_tacet = rng.random() < 0.5
    for section in plan.sections:
        if section.kind == "intro" and intro_tacet:
            continue
        for bar_index in range(section.n_bars):
            bar_start = section.start_tick + bar_index * bar
            steps = ((0, bar // STEP, "R"),) if section.kind == "ending" else pattern
            for step, length, tone in steps:
                tick = bar_start + step * STEP
                slot = plan.slots[plan.slot_index(tick)]
                chord = slot[2]
                tone = "R" if slot[0] == tick else tone
                offset = {"R": 0, "8": 12, "3": chord.intervals[1], "5": chord.intervals[2], "6": 9}[tone]
                pitch = low + (chord.root - low) % 12 + offset
                pitch -= 12 if pitch > BASS_HIGH else 0
                velocity = _velocity(noise, plan, tick, section.level - 2)
                part.add(tick, length * STEP - 20, pitch, velocity, noise(4))


def _walking_bass(rng, noise: Noise, plan: Plan, part: Part, low: int):
    """Quarter notes: the root on each chord, chord tones between, an approach into the next root."""
    previous = low + 7
    for i, (start, end, chord) in enumerate(plan.slots):
        section = plan.section_at(start)
        root = _nearest((chord.root,), previous, low, BASS_HIGH - 5)
        if section.kind == "ending":
            part.add(start, end - start - 60, root, section.level)
            continue
        next_root = plan.slots[i + 1][2].root if i + 1 < len(plan.slots) else chord.root
        target = _nearest((next_root,), root, low, BASS_HIGH)
        line = [root]
        n_beats = (end - start) // TICKS_PER_BEAT
        for beat in range(1, n_beats):
            direction = 1 if target >= line[-1] else -1
            if beat == n_beats - 1:  # approach the next root by a half or whole step
                line.append(target - direction * int(_pick(rng, (1, 1, 2))))
            else:
                line.append(_nearest(chord.pcs, line[-1] + 3 * direction, low, BASS_HIGH))
        for beat, pitch in enumerate(line):
            tick = start + beat * TICKS_PER_BEAT
            velocity = _velocity(noise, plan, tick, section.level - 4)
            part.add(tick, TICKS_PER_BEAT - 40, pitch, velocity, noise(4))
        previous = line[-1]


def _comp_block(noise, plan, part, bar_start, level, voicing_at, rhythm):
    """Whole chords on a rhythm of (sixteenth, length) hits."""
    for step, length in rhythm:
        tick = bar_start + step * STEP
        for pitch in voicing_at(tick):
            part.add(tick, length * STEP - 30, pitch, _velocity(noise, plan, tick, level), noise(5))


def _comp_arpeggio(noise, plan, part, bar_start, level, voicing_at, pattern):
    """Broken chords: one voicing tone per step, in a fixed order, left to ring for two steps."""
    step_ticks, order = pattern
    for k, tick in enumerate(range(bar_start, bar_start + plan.meter.bar_ticks, step_ticks)):
        voicing = voicing_at(tick)
        tones = voicing + [voicing[0] + 12]
        pitch = tones[order[k % len(order)] % len(tones)]
        part.add(tick, 2 * step_ticks, pitch, _velocity(noise, plan, tick, level - 4), noise(5))


def _comp_strum(noise, plan, part, bar_start, level, voicing_at, pattern):
    """Guitar strums on eighths ("D" down, "U" up), strings 12 ticks apart, ringing to the next."""
    hits = [i for i, stroke in enumerate(pattern) if stroke != "."] + [len(pattern)]
    for i, after in zip(hits, hits[1:]):
        tick, down = bar_start + i * EIGHTH, pattern[i] == "D"
        strings = voicing_at(tick) if down else voicing_at(tick)[::-1][:4]  # upstrokes: top strings
        velocity = _velocity(noise, plan, tick, level) - (0 if down else 12)
        for k, pitch in enumerate(strings):
            part.add(tick + 12 * k, (after - i) * EIGHTH - 12 * k - 20, pitch, velocity - k, noise(3))


def _comp_skank(noise, plan, part, bar_start, level, voicing_at, pattern):
    """Short offbeat stabs of the top three chord tones (reggae, ska, funk)."""
    for offbeat in range(EIGHTH, plan.meter.bar_ticks, EIGHTH):
        if offbeat % plan.meter.pulse_ticks:
            tick = bar_start + offbeat
            for pitch in voicing_at(tick)[-3:]:
                part.add(tick, 100, pitch, _velocity(noise, plan, tick, level), noise(3))


COMP_BARS = {"block": _comp_block, "arpeggio": _comp_arpeggio, "strum": _comp_strum, "skank": _comp_skank}


def _guitar_voicing(chord: Chord, low: int = 40) -> list[int]:
    """Five or six strings: root, fifth, octave (or seventh), third, fifth, maybe the top root."""
    root = low + (chord.root - low) % 12
    third, fifth = chord.intervals[1], chord.intervals[2]
    top = chord.intervals[3] + 12 if len(chord.intervals) > 3 else 12
    strings = [root, root + fifth, root + top, root + third + 12, root + fifth + 12]
    return sorted(strings + ([root + 24] if root < 46 else []))


def _comp_pattern(rng, plan: Plan, style: str):
    """The per-bar pattern a comping style needs: a rhythm, strum string or arpeggio."""
    meter, swing = plan.meter, plan.style.swing
    if style == "arpeggio":
        step = STEP if plan.tempo_bpm < 100 and not swing else EIGHTH  # slow songs: sixteenths
        return step, _pick(rng, ARPEGGIOS)
    if style == "strum":
        return _pick(rng, STRUMS[meter.numerator])
    rhythms = BLOCK_RHYTHMS["jazz" if plan.style.jazz else meter.numerator]
    return _pick(rng, [r for r in rhythms if not swing or all(s % 2 == 0 for s, _ in r)] or rhythms)


def _comp(rng, noise: Noise, plan: Plan, part: Part):
    """Chords: block hits, arpeggios, strums or offbeat stabs, voice-led, one style per section kind."""
    guitar = part.program // 8 == 3
    choices = ("strum", "strum", "arpeggio", "skank") if guitar else ("block", "block", "arpeggio")
    voicings = [_guitar_voicing(chord) for _, _, chord in plan.slots] if guitar else _voicings(plan, 53, 77)
    styles = {kind: _pick(rng, choices) for kind in KIND_LEVELS}
    patterns = {kind: _comp_pattern(rng, plan, styles[kind]) for kind in KIND_LEVELS}
    bar = plan.meter.bar_ticks
    for section in plan.sections:
        style, pattern = styles[section.kind], patterns[section.kind]
        if section.kind == "ending":
            style, pattern = "block", ((0, bar // STEP),)
        if style == "block" and guitar:  # a guitar "block" is a single strum
            style, pattern = "strum", "D" + "." * (bar // EIGHTH - 1)
        write_bar = COMP_BARS[style]
        for bar_index in range(section.n_bars):
            write_bar(noise, plan, part, section.start_tick + bar_index * bar, section.level - 10,
                      lambda tick: voicings[plan.slot_index(tick)], pattern)
    if part.program < 8 and rng.random() < 0.6:
        _sustain_pedal(plan, part)


def _sustain_pedal(plan: Plan, part: Part):
    """Legato pedalling: lift at each chord change, press again just after."""
    for start, _, _ in plan.slots:
        if start > 0:
            part.controls.append((start, "cc", 64, 0))
        part.controls.append((start + 40, "cc", 64, 127))
    part.controls.append((plan.end_tick, "cc", 64, 0))


def _pad(rng, noise: Noise, plan: Plan, part: Part, level_offset: int = -20, low: int = 52, high: int = 76):
    """Sustained voice-led chords, common tones tied across chord changes; some sections tacet."""
    plays = {kind: rng.random() < p for kind, p in (("intro", 0.7), ("verse", 0.5), ("bridge", 0.8))}
    plays.update(chorus=True, ending=True)
    voicings, held = _voicings(plan, low, high), {}
    for (start, end, _), voicing in zip(plan.slots, voicings):
        section = plan.section_at(start)
        if not plays[section.kind]:
            held = {}
            continue
        now_held = {}
        for pitch in voicing:
            if pitch in held:  # tie the common tone instead of re-striking it
                index = held[pitch]
                first, _, _, velocity = part.notes[index]
                part.notes[index] = (first, end - 10 - first, pitch, velocity)
            else:
                index = len(part.notes)
                part.add(start, end - start - 10, pitch, section.level + level_offset + noise(4))
            now_held[pitch] = index
        held = now_held


def _rhythm_bar(rng, meter: Meter, density: float, swing: bool) -> list[tuple[int, int]]:
    """One bar of melody rhythm from pulse-long cells, busier as ``density`` rises."""
    cells = DOTTED_CELLS if meter is M68 else BEAT_CELLS
    if swing:  # no sixteenths in a swing feel
        cells = [cell for cell in cells if all(on % EIGHTH == 0 and n % EIGHTH == 0 for on, n in cell[0])]
    target, notes, tick = 0.5 + 2.5 * density, [], 0
    while tick < meter.bar_ticks:
        spans = [max([meter.pulse_ticks] + [on + n for on, n in cell]) for cell, _ in cells]
        options = [i for i, span in enumerate(spans) if tick + span <= meter.bar_ticks]
        choice = options[_pick_index(rng, [1 / (0.3 + abs(cells[i][1] - target)) for i in options])]
        notes += [(tick + on, n) for on, n in cells[choice][0]]
        tick += spans[choice]
    return notes or [(0, meter.pulse_ticks)]


def _motif(rng, meter: Meter, density: float, swing: bool) -> tuple[list, list[int]]:
    """A bar of rhythm and a contour (scale steps per note) that leaps are followed by steps back."""
    rhythm = _rhythm_bar(rng, meter, density, swing)
    steps, previous = [], 0
    for _ in rhythm:
        if abs(previous) >= 3:
            step = -1 if previous > 0 else 1
        else:
            step = MELODY_STEPS[_pick_index(rng, [w for _, w in MELODY_STEPS])][0]
        steps.append(step)
        previous = step
    return rhythm, steps


def _melody(rng, noise: Noise, plan: Plan, part: Part, level_offset: int = 4):
    """Phrases built from motifs: chord tones on beats, scale steps between, a cadence and a rest."""
    low, high = MELODY_REGISTERS.get(part.program, (55, 79) if part.program // 8 == 3 else (60, 84))
    meter, bar = plan.meter, plan.meter.bar_ticks
    bar_s = bar / TICKS_PER_BEAT * 60 / plan.tempo_bpm
    roles = ("a", "cadence") if bar_s >= 2.8 else ("a", "b", "a", "cadence")  # phrases of ~5-10 s
    motifs, pitch = {}, (low + high) // 2
    for section in plan.sections:
        if section.kind == "intro":
            continue
        if section.kind == "ending":
            final = _nearest((plan.tonic,), pitch, low, high)
            part.add(section.start_tick, bar - 60, final, section.level + level_offset)
            continue
        if section.kind not in motifs or rng.random() < 0.4:  # repeats keep "a", often vary "b"
            new = {role: _motif(rng, meter, section.density, plan.style.swing) for role in ("a", "b")}
            motifs[section.kind] = {"a": motifs.get(section.kind, new)["a"], "b": new["b"]}
        for bar_index in range(section.n_bars):
            bar_start, role = section.start_tick + bar_index * bar, roles[bar_index % len(roles)]
            if role == "cadence" or bar_index == section.n_bars - 1:
                level = section.level + level_offset
                pitch = _cadence(rng, noise, plan, part, bar_start, pitch, (low, high), level)
                continue
            rhythm, steps = motifs[section.kind][role]
            for (onset, length), step in zip(rhythm, steps):
                tick = bar_start + onset
                chord = plan.chord_at(tick)
                scale = _chord_scale(plan.scale, chord)
                target = _scale_step(pitch, step, scale)
                if not low <= target <= high:  # turn back at the edges of the register
                    target = _scale_step(pitch, -step, scale)
                if onset % meter.pulse_ticks == 0:
                    target = _nearest(chord.pcs, target, low, high)
                velocity = _velocity(noise, plan, tick, section.level + level_offset)
                part.add(tick, length - 30, target, velocity, noise(5))
                pitch = target


def _cadence(rng, noise, plan: Plan, part: Part, bar_start: int, pitch: int, register, level: int) -> int:
    """A phrase ending: a long root or third on the downbeat, then a rest."""
    chord, pulse = plan.chord_at(bar_start), plan.meter.pulse_ticks
    pitch = _nearest(chord.pcs[:2], pitch, *register)
    n_pulses = int(rng.integers(1, max(2, plan.meter.bar_ticks // pulse)))
    part.add(bar_start, n_pulses * pulse - 40, pitch, _velocity(noise, plan, bar_start, level), noise(4))
    return pitch


def _counter(rng, noise: Noise, plan: Plan, part: Part):
    """A slow guide-tone line under the melody: one chord tone per chord, moving by the smallest step."""
    low, high = 55, 74
    plays = {"intro": False, "verse": rng.random() < 0.4, "chorus": True, "bridge": True, "ending": True}
    pitch = (low + high) // 2
    for start, end, chord in plan.slots:
        section = plan.section_at(start)
        if not plays[section.kind]:
            continue
        pitch = _nearest(chord.pcs[1:], pitch, low, high)  # thirds, fifths, sevenths: no roots
        part.add(start, end - start - 40, pitch, section.level - 12 + noise(4), noise(4))


def _perc(rng, noise: Noise, plan: Plan, part: Part):
    """Percussive family: reverse-cymbal swells, steel-drum arpeggios or a two-pitch ostinato."""
    bar, pulse = plan.meter.bar_ticks, plan.meter.pulse_ticks
    if part.program == 119:  # a reverse cymbal swells into each new section
        for section in plan.sections[1:]:
            part.add(section.start_tick - 2 * pulse, 2 * pulse - 10, 60, section.level - 10)
        return
    voicings = _voicings(plan, 60, 84)
    pattern = _pick(rng, PERC_PATTERNS[bar // STEP])
    high = 60 + int(rng.integers(0, 13))
    plays = {kind: rng.random() < 0.7 for kind in KIND_LEVELS}
    plays["chorus"] = True
    if not any(plays[section.kind] for section in plan.sections[:-1]):  # a form without a chorus
        plays = dict.fromkeys(KIND_LEVELS, True)
    for section in plan.sections:
        if not plays[section.kind] or section.kind == "ending":
            continue
        for bar_index in range(section.n_bars):
            bar_start = section.start_tick + bar_index * bar
            if part.program == 114:  # steel drums play the chords
                _comp_arpeggio(noise, plan, part, bar_start, section.level - 6,
                               lambda tick: voicings[plan.slot_index(tick)], (EIGHTH, (0, 1, 2, 1)))
                continue
            for step, hit in enumerate(pattern):
                if hit != ".":
                    tick = bar_start + step * STEP
                    pitch = high if hit == "h" else high - 5
                    velocity = _velocity(noise, plan, tick, section.level - 12)
                    part.add(tick, STEP - 20, pitch, velocity, noise(3))


def _fx(rng, noise: Noise, plan: Plan, part: Part):
    """Synth effects as a quiet, high texture over the chords."""
    _pad(rng, noise, plan, part, level_offset=-26, low=60, high=79)


def _sfx(rng, noise: Noise, plan: Plan, part: Part):
    """Sound effects now and then: at the start, the end and some section changes."""
    short = part.program in (120, 121, 124, 127)  # fret noise, breath, telephone, gunshot are brief
    bar = plan.meter.bar_ticks
    for index, section in enumerate(plan.sections):
        if index == 0 or section.kind == "ending" or rng.random() < 0.3:
            length = EIGHTH if short else min(section.n_bars, 2) * bar - 60
            pitch = 60 + int(rng.integers(-5, 6))
            part.add(section.start_tick, length, pitch, section.level - 10 + noise(6))


WRITERS = {"drums": _drums, "bass": _bass, "comp": _comp, "melody": _melody, "pad": _pad,
           "counter": _counter, "perc": _perc, "fx": _fx, "sfx": _sfx}


def _choose_roles(rng) -> list[str]:
    """The song's parts: drums and bass almost always, chords always, usually a melody, extras."""
    chances = (("drums", 0.92), ("bass", 0.95), ("comp", 1.0), ("melody", 0.9), ("pad", 0.6))
    roles = [role for role, p in chances if rng.random() < p]
    n_extras = _pick_index(rng, (0.15, 0.6, 0.25))
    weights = [w for _, w in EXTRA_ROLES]
    for _ in range(n_extras):
        index = _pick_index(rng, weights)
        roles.append(EXTRA_ROLES[index][0])
        weights[index] = 0.0  # at most one extra of each kind
    return roles


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
