"""Rendering: one pass, exact sums, Slakh-like gains, and MIDI semantics heard in the audio."""

import json

import mido
import numpy as np
import pytest
import soundfile

from midi_factory import TICKS, band_song, conductor, part, save, scale
from wavesep.midi.song import read_song
from wavesep.synth.batch import render_dataset
from wavesep.synth.loudness import integrated_loudness, peak_db
from wavesep.synth.render import PCM_SCALE, Renderer, RenderSettings

SR = 44100


@pytest.fixture(scope="module")
def renderer():
    renderer = Renderer(settings=RenderSettings(sample_rate=SR))
    yield renderer
    renderer.close()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("render")
    (root / "midi").mkdir()
    band_song(root / "midi" / "band.mid", beats=8)
    summary = render_dataset(root / "midi", root / "ds", workers=1, progress=False)
    assert summary.count("rendered") == 1
    (song_dir,) = [p for p in (root / "ds").glob("*/*") if p.is_dir()]
    return song_dir


def test_files_mix_equals_sum_of_stems_exactly(dataset):
    metadata = json.loads((dataset / "metadata.json").read_text())
    mix, rate = soundfile.read(dataset / "mix.flac", dtype="float64")
    assert rate == SR and soundfile.info(dataset / "mix.flac").subtype == "PCM_24"
    stems = [soundfile.read(dataset / info["file"], dtype="float64")[0] for info in metadata["stems"].values()]
    assert all(stem.shape == mix.shape == (metadata["num_frames"], 2) for stem in stems)
    np.testing.assert_array_equal(mix, np.sum(stems, axis=0))


def test_metadata_is_complete(dataset):
    metadata = json.loads((dataset / "metadata.json").read_text())
    assert metadata["split"] == dataset.parent.name and metadata["song_id"] == dataset.name
    assert metadata["source"]["path"].endswith("band.mid") and len(metadata["source"]["sha256"]) == 64
    assert metadata["soundfont"].endswith(".sf2") and metadata["sample_rate"] == SR
    assert metadata["duration_s"] == pytest.approx(metadata["num_frames"] / SR)
    assert set(metadata["stems"]) == {"t01-c09-p128", "t02-c01-p033", "t03-c00-p000", "t04-c02-p048", "t05-c03-p073"}
    drums = metadata["stems"]["t01-c09-p128"]
    assert drums["is_drum"] and drums["program"] == 128 and drums["class"] == "Drums"
    for info in metadata["stems"].values():
        assert {"file", "track", "channel", "program", "name", "class", "is_drum", "gain_db",
                "loudness_lufs", "peak_dbfs", "seconds_active", "notes"} <= set(info)
        assert 0 < info["seconds_active"] <= metadata["duration_s"] + 0.1
    assert metadata["render"]["synthesizer"].startswith("fluidsynth 2.")


def test_loudness_like_slakh(dataset):
    """Stems at one loudness, then one common gain so that nothing peaks above -1 dBFS."""
    metadata = json.loads((dataset / "metadata.json").read_text())
    mix = soundfile.read(dataset / "mix.flac")[0].T
    assert peak_db(mix) <= -1.0 + 1e-3
    levels = []
    for info in metadata["stems"].values():
        stem = soundfile.read(dataset / info["file"])[0].T
        assert peak_db(stem) <= -1.0 + 1e-3
        levels.append(integrated_loudness(stem, SR))
        assert levels[-1] == pytest.approx(info["loudness_lufs"], abs=0.01)
    assert max(levels) - min(levels) < 0.01  # the common gain keeps them equal
    assert levels[0] == pytest.approx(-13.0 + metadata["mix"]["gain_db"], abs=0.01)


def test_in_memory_render_is_on_the_24_bit_grid(renderer, tmp_path):
    rendered = renderer.render(read_song(band_song(tmp_path / "a.mid")))
    assert rendered.stems.dtype == np.float32
    np.testing.assert_array_equal(rendered.mix, rendered.stems.sum(0))
    grid = rendered.stems.astype(np.float64) * PCM_SCALE
    np.testing.assert_array_equal(grid, np.round(grid))


def test_silent_instrument_is_dropped(renderer, tmp_path):
    mute = (0, mido.Message("control_change", channel=1, control=7, value=0))
    tracks = [conductor(), part(0, 0, scale(0, 4)), part(1, 40, scale(0, 4), extra=[mute])]
    rendered = renderer.render(read_song(save(tmp_path / "a.mid", tracks)))
    assert [i.program for i in rendered.instruments] == [0]
    assert rendered.dropped == [{"id": "t02-c01-p040", "program": 40, "reason": "silent"}]


def test_release_tail_is_capped(tmp_path):
    # An organ note that is never released would sound forever.
    track = mido.MidiTrack([mido.Message("program_change", program=19),
                            mido.Message("note_on", note=60, velocity=100)])
    track.append(mido.Message("control_change", control=64, value=127, time=2 * TICKS))
    song = read_song(save(tmp_path / "a.mid", [conductor(), track]))
    renderer = Renderer(settings=RenderSettings(tail_s=0.5))
    rendered = renderer.render(song)
    assert song.duration_s == pytest.approx(1.0)
    assert rendered.duration_s <= 1.0 + 0.5 + 1 / SR
    assert np.abs(rendered.stems[0, :, -10:]).max() < 1e-3  # faded out, no click


def _dominant_hz(audio: np.ndarray) -> float:
    mono = audio.mean(0)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(mono.size)))
    return float(np.argmax(spectrum) * SR / mono.size)


def test_pitch_bend_is_heard(renderer, tmp_path):
    plain = [conductor(), part(0, 73, [(0, 4 * TICKS, 69)])]  # flute A4, 440 Hz
    bend = (0, mido.Message("pitchwheel", channel=0, pitch=8191))  # +2 semitones by default
    bent = [conductor(), part(0, 73, [(0, 4 * TICKS, 69)], extra=[bend])]
    hz = [_dominant_hz(renderer.render(read_song(save(tmp_path / f"{i}.mid", t))).stems[0, :, SR // 2: SR + SR // 2])
          for i, t in enumerate([plain, bent])]
    assert hz[0] == pytest.approx(440, rel=0.01)
    assert hz[1] == pytest.approx(440 * 2 ** (2 / 12), rel=0.01)


def test_sustain_pedal_is_heard(renderer, tmp_path):
    notes = [(0, TICKS // 4, 60)]
    pedal = [(0, mido.Message("control_change", channel=0, control=64, value=127)),
             (4 * TICKS, mido.Message("control_change", channel=0, control=64, value=0))]
    dry = renderer.render(read_song(save(tmp_path / "a.mid", [conductor(), part(0, 0, notes + [(4 * TICKS, 1, 30)])])))
    held = renderer.render(read_song(save(tmp_path / "b.mid", [conductor(), part(0, 0, notes + [(4 * TICKS, 1, 30)], extra=pedal)])))

    def energy_after_release(rendered):  # between the note-off (0.125 s) and 1.5 s, relative to the first 0.1 s
        stem = rendered.stems[0]
        return np.square(stem[:, int(0.6 * SR): int(1.5 * SR)]).mean() / np.square(stem[:, : int(0.1 * SR)]).mean()

    assert energy_after_release(held) > 10 * energy_after_release(dry)


def test_note_timing_follows_tempo_changes(renderer, tmp_path):
    tempos = conductor([(0, 500_000), (4 * TICKS, 250_000)])
    hits = part(9, None, [(0, TICKS // 4, 38), (6 * TICKS, TICKS // 4, 38)])  # second hit at 2 + 0.5 s
    rendered = renderer.render(read_song(save(tmp_path / "a.mid", [tempos, hits])))
    envelope = np.abs(rendered.stems[0]).max(0)
    onset = int(np.argmax(envelope[int(1.0 * SR):] > 0.01 * envelope.max())) + int(1.0 * SR)
    assert abs(onset - 2.5 * SR) <= 2 * 64  # FluidSynth starts notes on 64-sample blocks


def test_program_change_mid_track_renders_two_stems(renderer, tmp_path):
    change = (4 * TICKS, mido.Message("program_change", channel=0, program=56))
    rendered = renderer.render(read_song(save(tmp_path / "a.mid", [conductor(), part(0, 0, scale(0, 8), extra=[change])])))
    assert [i.program for i in rendered.instruments] == [0, 56]
    piano, trumpet = rendered.stems
    half = 2 * SR
    assert np.abs(piano[:, : half - SR // 4]).max() > 0.05 and np.abs(trumpet[:, : half - 256]).max() == 0
    assert np.abs(trumpet[:, half + 2048:]).max() > 0.05


def test_other_sample_rate(tmp_path):
    renderer = Renderer(settings=RenderSettings(sample_rate=22050))
    rendered = renderer.render(read_song(band_song(tmp_path / "a.mid", beats=4)))
    at_44k = Renderer().render(read_song(tmp_path / "a.mid"))
    assert rendered.sample_rate == 22050 and rendered.mix.shape[-1] == rendered.n_frames
    assert 2.0 <= rendered.duration_s <= 2.0 + 3.0 + 0.01
    # The same music at half the rate: half the frames, to within the release tail's end.
    assert abs(rendered.n_frames * 2 - at_44k.n_frames) <= 2 * 1024 + 2


def test_a_song_renders_the_same_whatever_was_rendered_before(tmp_path):
    # The first song ends with a held pedal on an organ: its voices outlive the tail cap.
    track = mido.MidiTrack([mido.Message("program_change", program=19),
                            mido.Message("control_change", control=64, value=127),
                            mido.Message("note_on", note=60, velocity=100),
                            mido.Message("note_off", note=60, time=TICKS)])
    others = [part(c, 40 + c, scale(0, 2)) for c in range(1, 5)]  # as many instruments as the next song
    held = read_song(save(tmp_path / "held.mid", [conductor(), track] + others))
    song = read_song(band_song(tmp_path / "b.mid", beats=4))
    shared = Renderer(settings=RenderSettings(tail_s=0.5))
    shared.render(held)
    after = shared.render(song)
    fresh = Renderer(settings=RenderSettings(tail_s=0.5)).render(song)
    np.testing.assert_array_equal(after.stems, fresh.stems)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="tail cap"):
        RenderSettings(tail_s=-1)
    with pytest.raises(ValueError, match="8000-96000"):
        RenderSettings(sample_rate=4000)
    with pytest.raises(ValueError, match="drum kits must be preset numbers 0-127"):
        RenderSettings(drum_kits=(0, 128))


def _drums(rendered):
    (index,) = [i for i, instrument in enumerate(rendered.instruments) if instrument.is_drum]
    return rendered.stems[index].ravel(), rendered.stem_info[index]


def _correlation(a, b):
    n = min(len(a), len(b))
    return np.corrcoef(a[:n], b[:n])[0, 1]


def test_drum_kits_drawn_per_song_replace_the_midis_kit(tmp_path):
    from wavesep.synth.render import GM_DRUM_KITS, drum_kit_draw

    settings = RenderSettings(tail_s=0.5)
    song = read_song(band_song(tmp_path / "a.mid", beats=4))
    standard, standard_info = _drums(Renderer(settings=settings).render(song))
    assert "drum_kit" not in standard_info
    eight_o_eight = Renderer(settings=RenderSettings(tail_s=0.5, drum_kits=(25,))).render(song)
    drums, info = _drums(eight_o_eight)
    assert info["drum_kit"] == 25 and not info["preset_missing"]
    assert _correlation(drums, standard) < 0.9  # another kit is heard
    # The other stems are untouched (up to the common gain).
    plain = Renderer(settings=settings).render(song)
    for ours, theirs, instrument in zip(eight_o_eight.stems, plain.stems, plain.instruments):
        if not instrument.is_drum:
            assert _correlation(ours.ravel(), theirs.ravel()) > 0.9999
    # A kit the MIDI selects gives way to the drawn one: Standard asked, TR-808 heard.
    track = part(9, 25, [(i * TICKS, TICKS // 2, 36) for i in range(4)])
    asks_808 = read_song(save(tmp_path / "808.mid", [conductor(), track]))
    asks_standard = read_song(save(tmp_path / "std.mid", [conductor(), part(9, 0, [(i * TICKS, TICKS // 2, 36)
                                                                                    for i in range(4)])]))
    heard = _drums(Renderer(settings=RenderSettings(tail_s=0.5, drum_kits=(0,))).render(asks_808))[0]
    assert _correlation(heard, _drums(Renderer(settings=settings).render(asks_standard))[0]) > 0.9999
    assert _correlation(heard, _drums(Renderer(settings=settings).render(asks_808))[0]) < 0.9
    # The draw depends on the song and the instrument only, and reaches every kit over songs.
    assert drum_kit_draw(song, song.instruments[0], GM_DRUM_KITS) == drum_kit_draw(
        read_song(tmp_path / "a.mid"), song.instruments[0], GM_DRUM_KITS)
    drawn = set()
    for beats in range(2, 40):
        other = read_song(band_song(tmp_path / f"b{beats}.mid", beats=beats))
        drawn.add(drum_kit_draw(other, other.instruments[0], GM_DRUM_KITS))
    assert drawn == set(GM_DRUM_KITS)


SECOND_SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"  # installed by scripts/setup.sh


def test_several_soundfonts_one_drawn_per_instrument(tmp_path):
    from wavesep.synth.render import soundfont_draw

    song = read_song(band_song(tmp_path / "a.mid", beats=4))
    fonts = [Renderer().soundfonts[0], SECOND_SOUNDFONT]
    both = Renderer(fonts, RenderSettings(tail_s=0.5)).render(song)
    alone = {font: Renderer(font, RenderSettings(tail_s=0.5)).render(song) for font in map(str, fonts)}
    drawn = [str(fonts[soundfont_draw(song, instrument, 2)]) for instrument in both.instruments]
    assert [info["soundfont"] for info in both.stem_info] == drawn
    assert set(drawn) == set(alone)  # this song's five instruments draw from both
    assert not any(info["preset_missing"] for info in both.stem_info)
    # Each stem is the one its SoundFont renders alone, up to its gain: channels do not mix.
    for index, font in enumerate(drawn):
        ours, theirs = both.stems[index].ravel(), alone[font].stems[index].ravel()
        n = min(len(ours), len(theirs))
        assert np.corrcoef(ours[:n], theirs[:n])[0, 1] > 0.9999
    np.testing.assert_array_equal(both.stems, Renderer(fonts, RenderSettings(tail_s=0.5)).render(song).stems)


def test_a_soundfont_without_the_preset_gives_way_to_the_next():
    from wavesep.midi.song import Instrument
    from wavesep.synth.render import _select_program

    class Synth:  # the first SoundFont lacks program 33, the second has everything
        soundfonts = ["a.sf2", "b.sf2"]

        def set_program(self, channel, program, drum=False, font=None):
            self.font = font
            return not (font == 0 and program == 33)

    bass = Instrument(track=2, channel=1, program=33)
    synth = Synth()
    assert _select_program(synth, 0, bass, drawn=0) == (1, True) and synth.font == 1
    assert _select_program(synth, 0, bass, drawn=1) == (1, True)
    synth.soundfonts = ["a.sf2"]
    assert _select_program(synth, 0, bass, drawn=0) == (0, False) and synth.font == 0  # the bank's first preset


def test_an_sf3_soundfont_renders(tmp_path):
    """.sf3 (Ogg Vorbis samples) needs a FluidSynth built with libsndfile; MuseScore's is one."""
    song = read_song(band_song(tmp_path / "a.mid", beats=4))
    rendered = Renderer("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3", RenderSettings(tail_s=0.5)).render(song)
    assert len(rendered.instruments) == 5 and not any(info["preset_missing"] for info in rendered.stem_info)
    assert all(np.abs(stem).max() > 0.01 for stem in rendered.stems)
