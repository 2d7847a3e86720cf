"""Tests of the procedural song generator: determinism, valid MIDI, variety and musical sense.

The songs are read back from disk with mido, as a renderer would, and checked through what the
files say: tracks, channels, programs, notes, and the conductor's tempo, meter, key, section
markers and chord symbols.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import mido
import pytest

from wavesep.instruments import DRUM_CHANNEL, DRUMS, FAMILY_NAMES, family_name
from wavesep.midi.generate import generate_song, generate_songs, song_seed

N_SONGS = 60
NOTE_INDEX = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
QUALITIES = {"": (0, 4, 7), "m": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8), "7": (0, 4, 7, 10),
             "maj7": (0, 4, 7, 11), "m7": (0, 3, 7, 10), "m7b5": (0, 3, 6, 10)}
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)


def pitch_class(name: str) -> int:
    """'F#' -> 6, 'Bb' -> 10."""
    return (NOTE_INDEX[name[0]] + name.count("#") - name.count("b")) % 12


def parse_chord(symbol: str) -> tuple[int, set[int]]:
    """Root and pitch classes of a chord symbol such as 'F#m7' or 'Bb'."""
    root, quality = re.fullmatch(r"([A-G][#b]?)(.*)", symbol).groups()
    return pitch_class(root), {(pitch_class(root) + interval) % 12 for interval in QUALITIES[quality]}


@dataclass
class Track:
    name: str
    channels: set[int]
    programs: list[int]
    notes: list[tuple[int, int, int, int]] = field(default_factory=list)  # (start, end, pitch, velocity)
    messages: list[tuple[int, mido.Message]] = field(default_factory=list)  # (tick, message)


@dataclass
class SongInfo:
    midi: mido.MidiFile
    length_s: float
    tempos: list[int]
    meter: tuple[int, int]
    key: str
    markers: list[tuple[int, str]]
    chords: list[tuple[int, int, set[int]]]  # (tick, root, pitch classes)
    tracks: list[Track]

    @property
    def bar_ticks(self) -> int:
        return self.meter[0] * self.midi.ticks_per_beat * 4 // self.meter[1]

    @property
    def scale(self) -> set[int]:
        tonic = pitch_class(self.key.rstrip("m"))
        return {(tonic + step) % 12 for step in (MINOR if self.key.endswith("m") else MAJOR)}

    def chord_at(self, tick: int) -> set[int]:
        return [pcs for start, _, pcs in self.chords if start <= tick][-1]

    def root_at(self, tick: int) -> int:
        return [root for start, root, _ in self.chords if start <= tick][-1]

    def role(self, role: str) -> Track | None:
        return next((track for track in self.tracks if track.name.startswith(role + ":")), None)

    def families(self) -> set[str]:
        return {family_name(DRUMS if DRUM_CHANNEL in t.channels else t.programs[0]) for t in self.tracks}


def absolute(track: mido.MidiTrack):
    tick = 0
    for message in track:
        tick += message.time
        yield tick, message


def read_track(midi_track: mido.MidiTrack) -> Track:
    """Notes of a track, asserting that note-ons and note-offs pair up and never overlap."""
    track = Track(midi_track.name, set(), [])
    sounding: dict[tuple[int, int], tuple[int, int]] = {}
    for tick, message in absolute(midi_track):
        if message.is_meta:
            continue
        track.channels.add(message.channel)
        track.messages.append((tick, message))
        key = (message.channel, getattr(message, "note", None))
        if message.type == "program_change":
            track.programs.append(message.program)
        elif message.type == "note_on" and message.velocity > 0:
            assert key not in sounding, f"{track.name}: note {key} struck again while sounding at {tick}"
            sounding[key] = (tick, message.velocity)
        elif message.type in ("note_on", "note_off"):
            assert key in sounding, f"{track.name}: note-off without note-on for {key} at {tick}"
            start, velocity = sounding.pop(key)
            track.notes.append((start, tick, message.note, velocity))
    assert not sounding, f"{track.name}: notes never released: {sorted(sounding)}"
    return track


def read_song(path) -> SongInfo:
    midi = mido.MidiFile(path)
    conductor = list(absolute(midi.tracks[0]))
    assert all(message.is_meta for _, message in conductor), "the conductor track holds only meta messages"
    time_signature = next(m for _, m in conductor if m.type == "time_signature")
    return SongInfo(
        midi=midi,
        length_s=midi.length,
        tempos=[m.tempo for _, m in conductor if m.type == "set_tempo"],
        meter=(time_signature.numerator, time_signature.denominator),
        key=next(m.key for _, m in conductor if m.type == "key_signature"),
        markers=[(tick, m.text) for tick, m in conductor if m.type == "marker"],
        chords=[(tick, *parse_chord(m.text)) for tick, m in conductor if m.type == "text"],
        tracks=[read_track(track) for track in midi.tracks[1:]],
    )


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> list[SongInfo]:
    paths = generate_songs(tmp_path_factory.mktemp("songs"), N_SONGS, seed=11)
    return [read_song(path) for path in paths]


def test_same_seed_gives_the_same_bytes(tmp_path):
    first = generate_songs(tmp_path / "a", 4, seed=3)
    second = generate_songs(tmp_path / "b", 4, seed=3)
    assert [p.name for p in first] == [f"gen-3-{i:05d}.mid" for i in range(4)]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_different_seeds_give_different_songs(tmp_path):
    batch_a = [p.read_bytes() for p in generate_songs(tmp_path / "a", 3, seed=1)]
    batch_b = [p.read_bytes() for p in generate_songs(tmp_path / "b", 3, seed=2)]
    assert len(set(batch_a + batch_b)) == 6
    assert song_seed(1, 0) != song_seed(0, 1)


def test_generate_songs_creates_the_folder_and_leaves_no_temporary_files(tmp_path):
    out = tmp_path / "deep" / "folder"
    paths = generate_songs(out, 2, seed=0)
    assert sorted(out.iterdir()) == sorted(paths)
    assert generate_songs(tmp_path / "none", 0) == []


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_seeds_are_refused(bad):
    with pytest.raises(ValueError):
        generate_song(bad)


def test_generate_song_is_a_type_1_file_at_480_ticks():
    midi = generate_song(5)
    assert isinstance(midi, mido.MidiFile)
    assert (midi.type, midi.ticks_per_beat) == (1, 480)
    assert len(midi.tracks) >= 3


def test_every_part_has_one_channel_a_program_volume_and_pan(batch):
    for song in batch:
        for track in song.tracks:
            assert len(track.channels) == 1, track.name
            assert len(track.programs) == 1 and track.messages[0][0] == 0, track.name
            controls = {m.control for _, m in track.messages if m.type == "control_change"}
            assert {7, 10} <= controls, track.name
            assert track.notes, f"{track.name} plays nothing"
        channels = [next(iter(t.channels)) for t in song.tracks]
        assert len(set(channels)) == len(channels), "parts share a channel"


def test_drums_are_on_channel_10_and_nothing_else_is(batch):
    with_drums = 0
    for song in batch:
        for track in song.tracks:
            is_drums = track.name.startswith("drums:")
            assert (DRUM_CHANNEL in track.channels) == is_drums, track.name
            with_drums += is_drums
    assert with_drums >= 0.8 * len(batch)


def test_notes_are_in_range_and_velocities_audible(batch):
    for song in batch:
        for track in song.tracks:
            assert all(0 <= pitch <= 127 and 1 <= velocity <= 127 for _, _, pitch, velocity in track.notes)
            assert all(end > start for start, end, _, _ in track.notes)


def test_durations_stay_within_20_to_90_seconds(batch):
    lengths = [song.length_s for song in batch]
    assert min(lengths) >= 20 and max(lengths) <= 90, (min(lengths), max(lengths))


def test_tempo_key_and_meter_vary(batch):
    songs = batch[:30]
    assert len({song.tempos[0] for song in songs}) > 5
    assert len({song.key for song in songs}) > 5
    assert {song.key.endswith("m") for song in songs} == {True, False}
    meters = Counter(song.meter for song in batch)
    assert set(meters) == {(4, 4), (3, 4), (6, 8)} and meters.most_common(1)[0][0] == (4, 4)
    for song in batch:
        assert all(60 <= 60_000_000 / tempo <= 175 for tempo in song.tempos[:1])
        assert all(40 <= 60_000_000 / tempo <= 190 for tempo in song.tempos)
    assert any(len(song.tempos) > 1 for song in batch), "no song changes tempo"


def test_every_gm_family_appears_and_stem_families_are_common(batch):
    counts = Counter(family for song in batch for family in song.families())
    assert set(FAMILY_NAMES) <= set(counts), set(FAMILY_NAMES) - set(counts)
    counts["Strings or Ensemble"] = sum(bool({"Strings", "Ensemble"} & song.families()) for song in batch)
    for family in ("Drums", "Bass", "Piano", "Guitar", "Strings or Ensemble"):
        assert counts[family] >= 0.2 * len(batch), (family, counts[family])


def test_songs_have_sections_and_end_on_the_tonic(batch):
    for song in batch:
        kinds = [kind for _, kind in song.markers]
        assert len(kinds) >= 3 and kinds[-1] == "ending"
        assert len(set(kinds) - {"intro", "ending"}) >= 1
        assert song.root_at(song.markers[-1][0]) == pitch_class(song.key.rstrip("m"))


def test_chords_are_diatonic_and_comping_plays_chord_tones(batch):
    in_key = total = 0
    for song in batch:
        for _, _, pcs in song.chords:
            in_key += pcs <= song.scale | {(min(song.scale) + 11) % 12}  # leading tone of minor keys
            total += 1
        comp = song.role("comp")
        tones = [pitch % 12 in song.chord_at(start + 20) for start, _, pitch, _ in comp.notes]
        assert sum(tones) >= 0.95 * len(tones), song.midi.tracks[0].name
    assert in_key >= 0.8 * total


def near_beat(tick: int, beat_ticks: int, tolerance: int = 24) -> int | None:
    """The beat a humanised onset belongs to, or None for an offbeat note."""
    beat = round(tick / beat_ticks) * beat_ticks
    return beat if abs(tick - beat) <= tolerance else None


def test_melody_puts_chord_tones_on_beats_and_stays_in_key(batch):
    on_beat = chord_tones = in_scale = n_notes = 0
    for song in batch:
        melody = song.role("melody")
        if melody is None:
            continue
        pulse = 720 if song.meter == (6, 8) else 480
        for start, _, pitch, _ in melody.notes:
            chord = song.chord_at(start + 30)
            n_notes += 1
            in_scale += pitch % 12 in song.scale | chord
            beat = near_beat(start, pulse)
            if beat is not None:
                on_beat += 1
                chord_tones += pitch % 12 in song.chord_at(beat)
    assert n_notes > 1000
    assert chord_tones >= 0.7 * on_beat, (chord_tones, on_beat)
    assert in_scale >= 0.9 * n_notes, (in_scale, n_notes)


def test_melody_repeats_motifs_and_rests_between_phrases(batch):
    for song in batch[:20]:
        melody = song.role("melody")
        if melody is None:
            continue
        bar = song.bar_ticks
        rhythms = Counter(tuple(near_beat(s % bar, 120, 40) for s, _, _, _ in melody.notes if s // bar == b)
                          for b in {s // bar for s, _, _, _ in melody.notes})
        assert rhythms.most_common(1)[0][1] >= 2, "no bar rhythm ever comes back"
        gaps = [b[0] - a[1] for a, b in zip(melody.notes, melody.notes[1:])]
        assert sum(gap >= 300 for gap in gaps) >= 2, "the melody never breathes"


def test_bass_plays_roots_on_downbeats_in_the_bass_register(batch):
    roots = downbeats = 0
    for song in batch:
        bass = song.role("bass")
        if bass is None:
            continue
        assert all(28 <= pitch <= 55 for _, _, pitch, _ in bass.notes)
        for start, _, pitch, _ in bass.notes:
            beat = near_beat(start, song.bar_ticks)
            if beat is not None:
                downbeats += 1
                roots += pitch % 12 == song.root_at(beat)
    assert roots >= 0.8 * downbeats, (roots, downbeats)


def test_controllers_are_used_like_real_midi(batch):
    pedal = bends = 0
    for song in batch:
        for track in song.tracks:
            values = [m.value for _, m in track.messages if m.type == "control_change" and m.control == 64]
            if values:
                pedal += 1
                assert values[-1] == 0, "the sustain pedal is left down"
            wheel = [m.pitch for _, m in track.messages if m.type == "pitchwheel"]
            if wheel:
                bends += 1
                assert wheel[-1] == 0, "a pitch bend is left off centre"
    assert pedal >= 3 and bends >= 3
