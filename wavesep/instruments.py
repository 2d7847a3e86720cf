"""General MIDI knowledge: the 128 programs plus drums, their 16 families, and named stem sets.

Drums (anything on MIDI channel 10) are program 128, as Slakh does. A *stem set* is an ordered
list of stems, each a set of programs, with an optional ``other`` stem that takes every
instrument no stem names. Stem sets are built in (``seed4``, ``seed10``, ``band``) or loaded
from YAML::

    name: keys-and-rhythm
    stems:
      drums: [drums]              # program numbers, ranges "32-39", family or instrument names
      bass: [bass]
      keys: [piano, organ, chromatic percussion]
    other: true
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

DRUMS = 128
"""Program number given to drums (MIDI channel 10), following Slakh."""

DRUM_CHANNEL = 9
"""Zero-based MIDI channel of drums (channel 10 in one-based numbering)."""

PROGRAM_NAMES: tuple[str, ...] = (
    # Piano
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet",
    # Chromatic Percussion
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone",
    "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    # Organ
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ",
    "Reed Organ", "Accordion", "Harmonica", "Tango Accordion",
    # Guitar
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)",
    "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar",
    "Distortion Guitar", "Guitar Harmonics",
    # Bass
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass",
    "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    # Strings
    "Violin", "Viola", "Cello", "Contrabass",
    "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    # Ensemble
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2",
    "Choir Aahs", "Voice Oohs", "Synth Voice", "Orchestra Hit",
    # Brass
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet",
    "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2",
    # Reed
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax",
    "Oboe", "English Horn", "Bassoon", "Clarinet",
    # Pipe
    "Piccolo", "Flute", "Recorder", "Pan Flute",
    "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    # Synth Lead
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)",
    "Lead 5 (charang)", "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    # Synth Pad
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)",
    "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    # Synth Effects
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)",
    "FX 5 (brightness)", "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    # Ethnic
    "Sitar", "Banjo", "Shamisen", "Koto",
    "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    # Percussive
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock",
    "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
    # Sound Effects
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet",
    "Telephone Ring", "Helicopter", "Applause", "Gunshot",
)
assert len(PROGRAM_NAMES) == 128

FAMILY_NAMES: tuple[str, ...] = (
    "Piano", "Chromatic Percussion", "Organ", "Guitar",
    "Bass", "Strings", "Ensemble", "Brass",
    "Reed", "Pipe", "Synth Lead", "Synth Pad",
    "Synth Effects", "Ethnic", "Percussive", "Sound Effects",
)
"""The 16 General MIDI families; family ``k`` holds programs ``8k`` to ``8k + 7``."""

DRUMS_NAME = "Drums"


def check_program(program: int) -> int:
    """Return ``program`` if it is 0-127 or :data:`DRUMS`, else raise ValueError."""
    if isinstance(program, bool) or not isinstance(program, int) or not 0 <= program <= DRUMS:
        raise ValueError(f"program must be an integer in 0-128 (128 = drums), got {program!r}")
    return program


def program_name(program: int) -> str:
    """GM name of a program, 'Drums' for 128."""
    check_program(program)
    return DRUMS_NAME if program == DRUMS else PROGRAM_NAMES[program]


def family_name(program: int) -> str:
    """GM family (instrument class) of a program, 'Drums' for 128."""
    check_program(program)
    return DRUMS_NAME if program == DRUMS else FAMILY_NAMES[program // 8]


def family_programs(family: str) -> range:
    """Programs of a family given by name (case-insensitive); 'drums' gives range(128, 129)."""
    key = slug(family)
    if key == slug(DRUMS_NAME):
        return range(DRUMS, DRUMS + 1)
    for index, name in enumerate(FAMILY_NAMES):
        if slug(name) == key:
            return range(8 * index, 8 * index + 8)
    raise ValueError(f"unknown GM family {family!r}; known: {', '.join(FAMILY_NAMES)}, Drums")


def slug(text: str) -> str:
    """File-name friendly lowercase form: 'Acoustic Guitar (nylon)' -> 'acoustic-guitar-nylon'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")



_PROGRAM_BY_SLUG = {slug(name): program for program, name in enumerate(PROGRAM_NAMES)}
_PROGRAM_BY_SLUG[slug(DRUMS_NAME)] = DRUMS


def parse_programs(spec: int | str | list | tuple) -> frozenset[int]:
    """Programs named by a spec.

    A spec is a program number, a range ``"32-39"``, a family name (``"bass"``, ``"synth pad"``),
    an instrument name (``"flute"``, ``"acoustic guitar (nylon)"``), ``"drums"``, or a list of these.
    """
    if isinstance(spec, (list, tuple)):
        programs: set[int] = set()
        for item in spec:
            programs |= parse_programs(item)
        return frozenset(programs)
    if isinstance(spec, int) and not isinstance(spec, bool):
        return frozenset({check_program(spec)})
    if not isinstance(spec, str):
        raise ValueError(f"cannot read programs from {spec!r}")
    text = spec.strip()
    if match := re.fullmatch(r"(\d+)\s*-\s*(\d+)", text):
        low, high = (check_program(int(group)) for group in match.groups())
        if low > high:
            raise ValueError(f"empty program range {text!r}")
        return frozenset(range(low, high + 1))
    if text.isdigit():
        return frozenset({check_program(int(text))})
    key = slug(text)
    if key in _PROGRAM_BY_SLUG:
        return frozenset({_PROGRAM_BY_SLUG[key]})
    try:
        return frozenset(family_programs(text))
    except ValueError:
        raise ValueError(
            f"{spec!r} is not a program number, range, GM family or GM instrument name"
        ) from None


@dataclass(frozen=True)
class Stem:
    """One output of a stem set: a name and the programs summed into it."""

    name: str
    programs: frozenset[int]


OTHER = "other"
"""Name of the stem that takes every instrument no other stem names."""


@dataclass(frozen=True)
class StemSet:
    """An ordered list of stems; with ``other=True`` a last stem ``other`` takes the rest.

    Without ``other``, instruments no stem names belong to no stem (:meth:`stem_index` gives None);
    whether they stay in the mixture is the data reader's choice.
    """

    name: str
    stems: tuple[Stem, ...]
    other: bool = False

    def __post_init__(self):
        if not self.stems:
            raise ValueError(f"stem set {self.name!r} has no stems")
        names = [stem.name for stem in self.stems]
        if len(set(names)) != len(names) or (self.other and OTHER in names):
            raise ValueError(f"stem set {self.name!r} has duplicate stem names: {names}")
        seen: dict[int, str] = {}
        for stem in self.stems:
            if not stem.programs:
                raise ValueError(f"stem {stem.name!r} of {self.name!r} names no program")
            for program in stem.programs:
                if program in seen:
                    raise ValueError(
                        f"program {program} ({program_name(program)}) is in both stems "
                        f"{seen[program]!r} and {stem.name!r} of stem set {self.name!r}"
                    )
                seen[program] = stem.name

    @property
    def names(self) -> list[str]:
        """Stem names in output order, ``other`` last when present."""
        return [stem.name for stem in self.stems] + ([OTHER] if self.other else [])

    def __len__(self) -> int:
        return len(self.stems) + int(self.other)

    def stem_index(self, program: int) -> int | None:
        """Index of the stem a program belongs to, or None when no stem takes it."""
        for index, stem in enumerate(self.stems):
            if program in stem.programs:
                return index
        return len(self.stems) if self.other else None

    @classmethod
    def from_dict(cls, data: dict, default_name: str = "custom") -> StemSet:
        """Build a stem set from its YAML form (see the module docstring); unknown keys are errors."""
        if not isinstance(data, dict):
            raise ValueError("a stem set must be a mapping with 'stems' (and optionally 'name', 'other')")
        unknown = set(data) - {"name", "stems", "other"}
        if unknown:
            raise ValueError(f"unknown key(s) in stem set: {', '.join(sorted(unknown))}")
        stems = data.get("stems")
        if not isinstance(stems, dict) or not stems:
            raise ValueError("a stem set needs 'stems': a mapping of stem name to programs")
        other = data.get("other", False)
        if not isinstance(other, bool):
            raise ValueError(f"'other' must be true or false, got {other!r}")
        return cls(
            name=str(data.get("name", default_name)),
            stems=tuple(Stem(str(name), parse_programs(spec)) for name, spec in stems.items()),
            other=other,
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> StemSet:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
            return cls.from_dict(data, default_name=path.stem)
        except (OSError, yaml.YAMLError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None


def _stem(name: str, spec) -> Stem:
    return Stem(name, parse_programs(spec))


STEM_SETS: dict[str, StemSet] = {
    # The original study's four-instrument experiments.
    "seed4": StemSet("seed4", (
        _stem("drums", DRUMS), _stem("bass", "32-39"), _stem("piano", "0-7"), _stem("strings", "40-55"),
    )),
    # The original study's ten most frequent distinct instruments, one program each.
    "seed10": StemSet("seed10", (
        _stem("drums", DRUMS), _stem("piano", 0), _stem("strings", 48), _stem("bass", 33),
        _stem("guitar-steel", 25), _stem("guitar-nylon", 24), _stem("choir", 52),
        _stem("flute", 73), _stem("electric-piano", 4), _stem("trumpet", 56),
    )),
    # The default model's stems.
    "band": StemSet("band", (
        _stem("drums", DRUMS), _stem("bass", "32-39"), _stem("piano", "0-7"),
        _stem("guitar", "24-31"), _stem("strings", "40-55"),
    ), other=True),
}


def stem_set_named(names: list[str] | tuple[str, ...]) -> StemSet | None:
    """The built-in stem set whose stems are ``names`` in that order (a model's sources), or None."""
    return next((stem_set for stem_set in STEM_SETS.values() if stem_set.names == list(names)), None)


def get_stem_set(name_or_path: str | StemSet) -> StemSet:
    """A built-in stem set by name, or one loaded from a YAML file path."""
    if isinstance(name_or_path, StemSet):
        return name_or_path
    if name_or_path in STEM_SETS:
        return STEM_SETS[name_or_path]
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        if not path.is_file():
            raise ValueError(f"{path}: stem set file not found")
        return StemSet.from_yaml(path)
    raise ValueError(
        f"unknown stem set {name_or_path!r}: use one of {', '.join(STEM_SETS)} or a YAML file"
    )
