"""Music theory for the song generator: the tick grid, scales, keys, chords and voicings.

Everything here is pure and draws nothing at random: the sixteenth-note grid, major and natural
minor scales, key and note names, the progressions as scale-degree chord tokens, :class:`Chord`
and its symbols, and the helpers that find pitches, chord scales and voice-led voicings.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class Chord:
    """A chord: root pitch class, semitones above the root, and its symbol."""

    root: int
    intervals: tuple[int, ...]
    name: str

    @property
    def pcs(self) -> tuple[int, ...]:
        return tuple((self.root + interval) % 12 for interval in self.intervals)



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
