"""Reading MIDI: instruments as (track, channel, program), timing, and guards on broken files."""

import mido
import pytest

from midi_factory import TICKS, band_song, conductor, part, raw_midi, save, scale, varlen
from wavesep.midi.song import EventKind, MidiError, ParseLimits, read_song


def test_band_song_instruments_and_duration(tmp_path):
    song = read_song(band_song(tmp_path / "a.mid", beats=8))
    assert [i.id for i in song.instruments] == [
        "t01-c09-p128", "t02-c01-p033", "t03-c00-p000", "t04-c02-p048", "t05-c03-p073"]
    assert song.notes_per_instrument == [16, 8, 8, 1, 8]
    assert song.duration_s == pytest.approx(4.0)  # 8 beats at 120 BPM
    assert song.instruments[0].is_drum and song.instruments[0].family == "Drums"
    assert len(song.sha256) == 64


def test_program_change_mid_track_makes_two_instruments(tmp_path):
    change = (4 * TICKS, mido.Message("program_change", channel=0, program=40))
    track = part(0, 0, scale(0, 8), extra=[change])
    song = read_song(save(tmp_path / "a.mid", [conductor(), track]))
    assert [(i.program, n) for i, n in zip(song.instruments, song.notes_per_instrument)] == [(0, 4), (40, 4)]


def test_note_off_follows_its_note_on_across_a_program_change(tmp_path):
    # A long note starts as piano; the program changes while it sounds.
    change = (TICKS, mido.Message("program_change", channel=0, program=40))
    track = part(0, 0, [(0, 4 * TICKS, 60), (2 * TICKS, TICKS, 64)], extra=[change])
    song = read_song(save(tmp_path / "a.mid", [conductor(), track]))
    offs = [(e.instrument, e.a) for e in song.events if e.kind == EventKind.NOTE_OFF]
    assert (0, 60) in offs and (1, 64) in offs


def test_tracks_sharing_a_channel_are_separate_instruments(tmp_path):
    # music21 writes every chorale voice on channel 0 with the same program.
    tracks = [conductor(), part(0, 52, scale(0, 4, 72)), part(0, 52, scale(0, 4, 60))]
    song = read_song(save(tmp_path / "a.mid", tracks))
    assert [i.id for i in song.instruments] == ["t01-c00-p052", "t02-c00-p052"]


def test_controllers_reach_every_instrument_of_their_channel(tmp_path):
    bend = (0, mido.Message("pitchwheel", channel=0, pitch=4096))
    tracks = [conductor(), part(0, 0, scale(0, 2), extra=[bend]), part(0, 0, scale(0, 2, 40))]
    song = read_song(save(tmp_path / "a.mid", tracks))
    bends = [e.instrument for e in song.events if e.kind == EventKind.PITCH_BEND]
    assert sorted(bends) == [0, 1]


def test_tempo_changes_from_any_track(tmp_path):
    tempos = conductor([(0, 500_000), (4 * TICKS, 250_000)])  # 120 then 240 BPM
    song = read_song(save(tmp_path / "a.mid", [tempos, part(0, 0, scale(0, 8))]))
    assert song.duration_s == pytest.approx(4 * 0.5 + 4 * 0.25)
    onsets = [e.time_s for e in song.events if e.kind == EventKind.NOTE_ON]
    assert onsets[4:6] == pytest.approx([2.0, 2.25])


def test_notes_hash_ignores_orchestration_and_tempo(tmp_path):
    a = read_song(save(tmp_path / "a.mid", [conductor(), part(0, 0, scale(0, 8))]))
    b = read_song(save(tmp_path / "b.mid", [conductor([(0, 400_000)]), part(3, 41, scale(0, 8))]))
    c = read_song(save(tmp_path / "c.mid", [conductor(), part(0, 0, scale(0, 8, base=62))]))
    assert a.notes_hash == b.notes_hash != c.notes_hash
    assert a.sha256 != b.sha256


def test_note_that_never_ends_is_released_at_the_end(tmp_path):
    track = mido.MidiTrack([mido.Message("note_on", note=60, velocity=90),
                            mido.Message("note_on", note=64, velocity=90, time=4 * TICKS),
                            mido.Message("note_off", note=64, time=TICKS)])
    song = read_song(save(tmp_path / "a.mid", [conductor(), track]))
    offs = [e for e in song.events if e.kind == EventKind.NOTE_OFF]
    assert [(e.a, e.time_s) for e in offs] == [(64, 2.5), (60, 2.5)]


# Broken inputs: each gets a MidiError whose message is the reason.

def test_truncated_file(tmp_path):
    path = band_song(tmp_path / "a.mid")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(MidiError, match="corrupt MIDI"):
        read_song(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.mid"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(MidiError, match="corrupt MIDI"):
        read_song(path)


def test_zero_tracks(tmp_path):
    with pytest.raises(MidiError, match="no tracks"):
        read_song(raw_midi(tmp_path / "a.mid", []))


def test_no_notes(tmp_path):
    with pytest.raises(MidiError, match="no notes"):
        read_song(save(tmp_path / "a.mid", [conductor()]))


def test_absurd_tempo(tmp_path):
    tempo = b"\x00\xff\x51\x03\x00\x00\x01"  # 1 microsecond per beat
    note = b"\x00\x90\x3c\x40\x60\x80\x3c\x40\x00\xff\x2f\x00"
    with pytest.raises(MidiError, match="absurd tempo"):
        read_song(raw_midi(tmp_path / "a.mid", [tempo + note]))


def test_enormous_delta_time(tmp_path):
    note = b"\x00\x90\x3c\x40" + varlen(0x0FFFFFFF) + b"\x80\x3c\x40" + varlen(0x0FFFFFFF) + b"\x90\x3e\x40"
    with pytest.raises(MidiError, match="over the cap of .* ticks"):
        read_song(raw_midi(tmp_path / "a.mid", [note + b"\x00\xff\x2f\x00"]))


def test_duration_cap(tmp_path):
    path = save(tmp_path / "a.mid", [conductor(), part(0, 0, [(0, 100 * TICKS, 60)])])  # 50 s
    with pytest.raises(MidiError, match="duration of 50 s is over the cap of 10 s"):
        read_song(path, ParseLimits(max_duration_s=10))


def test_note_and_instrument_and_size_caps(tmp_path):
    path = band_song(tmp_path / "a.mid")
    with pytest.raises(MidiError, match="cap of 5 notes"):
        read_song(path, ParseLimits(max_notes=5))
    with pytest.raises(MidiError, match="cap of 2 instruments"):
        read_song(path, ParseLimits(max_instruments=2))
    with pytest.raises(MidiError, match="over the cap of 10 bytes"):
        read_song(path, ParseLimits(max_file_bytes=10))


def test_smpte_and_type2_refused(tmp_path):
    note = b"\x00\x90\x3c\x40\x60\x80\x3c\x40\x00\xff\x2f\x00"
    with pytest.raises(MidiError, match="SMPTE"):
        read_song(raw_midi(tmp_path / "a.mid", [note], division=0xE728))
    with pytest.raises(MidiError, match="type 2"):
        read_song(raw_midi(tmp_path / "b.mid", [note], midi_type=2))


def test_missing_file(tmp_path):
    with pytest.raises(MidiError, match="cannot read file"):
        read_song(tmp_path / "nope.mid")


def test_programs_set_in_a_setup_track_apply_to_tracks_that_set_none(tmp_path):
    setup = conductor()
    setup.append(mido.Message("program_change", channel=1, program=33))
    setup.append(mido.Message("program_change", channel=2, program=48))
    tracks = [setup, part(1, None, scale(0, 4, 36)), part(2, None, scale(0, 4, 60)), part(3, 73, scale(0, 4))]
    song = read_song(save(tmp_path / "a.mid", tracks))
    assert [(i.channel, i.program) for i in song.instruments] == [(1, 33), (2, 48), (3, 73)]


def test_overlapping_notes_of_one_key_release_with_the_last_note_off(tmp_path):
    # Repeated notes written note-on before note-off at the same tick, and an overlap.
    track = mido.MidiTrack([
        mido.Message("note_on", note=60, velocity=90),
        mido.Message("note_on", note=60, velocity=90, time=TICKS),  # re-struck at beat 1...
        mido.Message("note_off", note=60),                          # ...then the first one ends
        mido.Message("note_on", note=64, velocity=90),
        mido.Message("note_on", note=64, velocity=90, time=TICKS // 2),  # overlaps the first 64
        mido.Message("note_off", note=64, time=TICKS // 2),
        mido.Message("note_off", note=60, time=TICKS),
        mido.Message("note_off", note=64),
    ])
    song = read_song(save(tmp_path / "a.mid", [conductor(), track]))
    offs = [(e.a, e.time_s) for e in song.events if e.kind == EventKind.NOTE_OFF]
    assert offs == [(60, 1.5), (64, 1.5)]  # one release per key, at its last note-off
    assert song.notes_per_instrument == [4]


def test_channelless_messages_are_skipped(tmp_path):
    clock = b"\x00\xf8"  # MIDI clock: a real-time message with no channel
    note = b"\x00\x90\x3c\x40\x60\x80\x3c\x40\x00\xff\x2f\x00"
    song = read_song(raw_midi(tmp_path / "a.mid", [clock + note]))
    assert song.n_notes == 1


def test_event_cap_counts_controllers_copied_to_every_instrument(tmp_path):
    bends = [(i, mido.Message("pitchwheel", channel=0, pitch=i)) for i in range(200)]
    tracks = [conductor()] + [part(0, p, scale(0, 1), extra=bends if p == 0 else ()) for p in range(4)]
    path = save(tmp_path / "a.mid", tracks)
    assert read_song(path).events
    with pytest.raises(MidiError, match="over the cap of 500"):
        read_song(path, ParseLimits(max_events=500))
