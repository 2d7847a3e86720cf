"""The song plan: styles, meters, forms, harmony, tempo map, and the instruments' palettes.

A song is planned before any part is written: :func:`_plan` draws a :class:`Style` (with its
:class:`Meter`), tempo, key, form and a chord per slot into a :class:`Plan` of :class:`Section`
spans, and :func:`_tempo_changes` its tempo map. The palettes and :func:`_choose_roles` say which
parts a song has and which GM programs they may use. The random-draw helpers (:func:`_pick`,
:func:`_pick_index`, :class:`Noise`) live here too, for the plan and the part writers alike.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from wavesep.midi.generate.theory import (
    BLUES, EIGHTH, JAZZ_PROGRESSIONS, MAJOR, MAJOR_KEYS, MINOR, MINOR_KEYS, PROGRESSIONS,
    TICKS_PER_BEAT, Chord, _chord,
)

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
VOLUMES = {"drums": 100, "bass": 100, "comp": 86, "melody": 100, "pad": 72, "counter": 82,
           "perc": 80, "fx": 66, "sfx": 70}
BEND_FAMILIES = (3, 7, 8, 10, 13)  # guitar, brass, reed, synth lead, ethnic: they bend into notes


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
