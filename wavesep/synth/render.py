"""Render a song's instruments to sample-aligned stems whose sum is the mixture.

Every instrument gets its own synthesizer channel and its own output (a FluidSynth audio group),
so all stems come out of one pass, on one clock. The mixture is *defined* as the sum of the stems:
rendering it separately would differ by FluidSynth's block-quantised note starts.

Gains follow Slakh: each stem is normalised to ``stem_lufs`` (ITU-R BS.1770), then one common gain
brings the mixture, and every stem, to a peak at or below ``peak_dbfs``. Finally each stem is
rounded to the 24-bit grid and the mixture is summed from the rounded stems, so that the mixture
equals the sum of the stems *exactly*, in memory and in 24-bit files alike.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from wavesep.midi.song import Event, EventKind, Instrument, Song
from wavesep.synth import fluidsynth
from wavesep.synth.loudness import active_seconds, guard_denormals, integrated_loudness

PCM_SCALE = 2**23
"""Full scale of 24-bit audio: stems are multiples of 1 / PCM_SCALE."""

SOUNDFONT_CANDIDATES = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # Debian/Ubuntu fluid-soundfont-gm
    "/usr/share/soundfonts/FluidR3_GM.sf2",  # Arch, Fedora
    "/usr/share/sounds/sf2/default-GM.sf2",
)


def default_soundfont() -> Path:
    """``$WAVESEP_SOUNDFONT`` if set, else FluidR3_GM where the distribution installs it."""
    if env := os.environ.get("WAVESEP_SOUNDFONT"):
        return Path(env)
    for candidate in SOUNDFONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise FileNotFoundError(
        "no SoundFont found: install one with `sudo apt-get install fluid-soundfont-gm`, "
        "or pass --soundfont / set WAVESEP_SOUNDFONT"
    )


@dataclass(frozen=True)
class RenderSettings:
    """How songs become stems."""

    sample_rate: int = 44100
    tail_s: float = 3.0  # release tails after the last event are kept up to this long
    stem_lufs: float = -13.0  # Slakh's per-stem loudness target
    peak_dbfs: float = -1.0  # the mixture and every stem peak at or below this
    silence_dbfs: float = -90.0  # a stem whose raw peak is below this is dropped as silent
    max_stem_seconds: float = 7200.0  # instruments x seconds; bounds memory (~2.5 GB at 44.1 kHz)
    polyphony: int = 1024  # voices before FluidSynth steals one; all instruments share them
    # Drum kits (bank 128 presets) to draw from: each drum instrument of a song plays one of them,
    # drawn per song and instrument, whatever kit its MIDI asks for. Empty: the MIDI's kits.
    drum_kits: tuple[int, ...] = ()

    def __post_init__(self):
        if any(not isinstance(kit, int) or not 0 <= kit <= 127 for kit in self.drum_kits):
            raise ValueError(f"drum kits must be preset numbers 0-127, got {list(self.drum_kits)}")
        if not 8000 <= self.sample_rate <= 96000:
            raise ValueError(f"sample rate must be 8000-96000 Hz (FluidSynth's range), got {self.sample_rate}")
        if self.tail_s < 0:
            raise ValueError(f"the release tail cap must be 0 s or more, got {self.tail_s:g}")


@dataclass
class RenderedSong:
    """Stems of one song, the mixture, and what was done to them.

    Shape:
        stems: (n_stems, 2, frames) float32, each value a multiple of 1 / PCM_SCALE.
        mix: (2, frames) float32, exactly ``stems.sum(0)``.
    """

    song: Song
    sample_rate: int
    instruments: list[Instrument]  # one per stem, silent ones dropped
    stems: np.ndarray
    mix: np.ndarray
    stem_info: list[dict]  # per stem: gain, loudness, activity
    dropped: list[dict] = field(default_factory=list)
    mix_gain_db: float = 0.0

    @property
    def n_frames(self) -> int:
        return self.mix.shape[-1]

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.sample_rate


class Renderer:
    """Renders songs with one SoundFont, or with several: then each instrument of a song plays
    from one of them, drawn from the song's content and the instrument (so a song renders the
    same in any order, on any worker), the way Slakh draws a patch per instrument. A SoundFont
    without the instrument's preset gives way to the next one that has it.

    Keep one Renderer per process and reuse it for many songs. Every song gets a fresh
    synthesizer, sized to its instruments: a reused one would carry voices, controller state and
    a part-used 64-sample block from the song before, so the same song would render differently
    after different songs. One synthesizer stays alive for the Renderer's life so that
    FluidSynth's sample cache keeps the SoundFonts loaded, which makes a fresh synthesizer cost
    milliseconds rather than a SoundFont load.
    """

    def __init__(self, soundfont: str | Path | Sequence[str | Path] | None = None,
                 settings: RenderSettings = RenderSettings()):
        self.soundfonts = fluidsynth.soundfont_paths(default_soundfont() if soundfont is None else soundfont)
        self.settings = settings
        self._keeper = self.synth(1)  # loads the SoundFonts now, so a bad one fails before any work

    def synth(self, n_channels: int) -> fluidsynth.Synth:
        """A new synthesizer with at least ``n_channels`` outputs."""
        if n_channels > fluidsynth.MAX_CHANNELS:
            raise ValueError(f"{n_channels} instruments, more than FluidSynth's {fluidsynth.MAX_CHANNELS} outputs")
        return fluidsynth.Synth(self.soundfonts, self.settings.sample_rate, n_channels=max(1, n_channels),
                                polyphony=self.settings.polyphony)

    def render(self, song: Song) -> RenderedSong:
        with self.synth(len(song.instruments)) as synth:
            return render_song(song, synth, self.settings)

    def close(self):
        self._keeper.close()


GM_DRUM_KITS = (0, 8, 16, 24, 25, 32, 40, 48)
"""The General MIDI 2 drum kits: Standard, Room, Power, Electronic, TR-808, Jazz, Brush, Orchestra."""


def parse_drum_kits(kits: str | int | Sequence[int]) -> tuple[int, ...]:
    """Drum kits as ``wavesep render --drum-kits`` and ``data.drum_kits`` take them: ``"gm"`` (the
    eight General MIDI kits), comma-separated preset numbers (``"0,25"``), one number, a sequence of
    them, or ``""`` for none (the kit the MIDI asks for). A ValueError says what is wrong."""
    if isinstance(kits, str):
        if kits.strip().lower() == "gm":
            return GM_DRUM_KITS
        try:
            kits = [int(item) for item in kits.split(",")] if kits.strip() else []
        except ValueError:
            raise ValueError(f"drum kits are comma-separated preset numbers or gm, got {kits!r}") from None
    if isinstance(kits, int):
        kits = [kits]
    return RenderSettings(drum_kits=tuple(kits)).drum_kits  # its check, one rule for every caller


def soundfont_draw(song: Song, instrument: Instrument, n_soundfonts: int) -> int:
    """Which of ``n_soundfonts`` SoundFonts an instrument of a song is drawn to play from."""
    return _draw(f"{song.sha256}:{instrument.id}", n_soundfonts)


def drum_kit_draw(song: Song, instrument: Instrument, kits: Sequence[int]) -> int:
    """Which of ``kits`` a drum instrument of a song is drawn to play (independent of its SoundFont)."""
    return kits[_draw(f"{song.sha256}:{instrument.id}:kit", len(kits))]


def _draw(key: str, n: int) -> int:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def render_song(song: Song, synth: fluidsynth.Synth, settings: RenderSettings = RenderSettings()) -> RenderedSong:
    """Render every instrument of ``song`` to its own stem, then normalise as the module says.

    ``synth`` must be fresh (see :class:`Renderer`), with a channel per instrument.

    Raises:
        ValueError: the song has more instruments than the synthesizer has channels, is over
            ``settings.max_stem_seconds``, or renders silent.
    """
    raw, fonts, missing, kits = _synthesize(song, synth, settings)  # (instruments, 2, frames), a SoundFont each
    guard_denormals(raw)  # cheaper than a guarded copy per loudness measurement
    sample_rate = settings.sample_rate
    kept, info, dropped, peaks = [], [], [], []
    for index, instrument in enumerate(song.instruments):
        peak = max(float(raw[index].max()), -float(raw[index].min()))
        audible = peak > 10 ** (settings.silence_dbfs / 20)
        loudness = integrated_loudness(raw[index], sample_rate, guarded=True) if audible else -math.inf
        if not math.isfinite(loudness):
            dropped.append({"id": instrument.id, "program": instrument.program, "reason": "silent"})
            continue
        kept.append(index)
        peaks.append(peak)
        info.append({
            "notes": song.notes_per_instrument[index],
            "soundfont": str(synth.soundfonts[fonts[index]]),
            "preset_missing": index in missing,
            **({"drum_kit": kits[index]} if index in kits else {}),
            "gain_db": settings.stem_lufs - loudness,
        })
    if not kept:
        raise ValueError("every instrument rendered silent")
    for position, index in enumerate(kept):  # compact in place: no second copy of the stems
        if position != index:
            raw[position] = raw[index]
    stems = raw[: len(kept)]  # (stems, 2, frames)
    gains = np.array([10 ** (item["gain_db"] / 20) for item in info])
    stems, mix, common = _normalise(stems, gains, np.array(peaks), settings.peak_dbfs)
    common_db = 20 * math.log10(common)
    for item, stem, peak in zip(info, stems, gains * common * np.array(peaks)):
        item["gain_db"] += common_db
        item["loudness_lufs"] = settings.stem_lufs + common_db  # loudness is linear in gain
        item["peak_dbfs"] = 20 * math.log10(peak)
        item["seconds_active"] = active_seconds(stem, sample_rate)
    return RenderedSong(
        song=song, sample_rate=sample_rate, instruments=[song.instruments[i] for i in kept],
        stems=stems, mix=mix, stem_info=info, dropped=dropped, mix_gain_db=common_db,
    )


def _normalise(stems: np.ndarray, gains: np.ndarray, peaks: np.ndarray, peak_dbfs: float):
    """Apply per-stem gains and the common gain, in place, and round stems to the 24-bit grid.

    Returns:
        The stems, their mixture (exactly their sum) and the common gain (linear).
    """
    # The common gain keeps the mixture and every stem at or under peak_dbfs.
    mix = np.einsum("s,sct->ct", gains.astype(np.float32), stems)
    peak = max(float(mix.max()), -float(mix.min()), float((gains * peaks).max()))
    common = min(1.0, 10 ** (peak_dbfs / 20) / peak)
    # Rounded in place (stems can be large); integers below 2**24 are exact in float32, and so
    # is their sum in float64, so the mixture is the exact sum of the rounded stems.
    stems *= (gains * common * PCM_SCALE).astype(np.float32)[:, None, None]
    np.rint(stems, out=stems)
    mix = (stems.sum(axis=0, dtype=np.float64) / PCM_SCALE).astype(np.float32)
    stems /= np.float32(PCM_SCALE)  # a power of two: exact
    return stems, mix, common


def _synthesize(song: Song, synth: fluidsynth.Synth,
                settings: RenderSettings) -> tuple[np.ndarray, list[int], set[int], dict[int, int]]:
    """Raw float stems straight from the synthesizer, tails included, before any gain; the
    SoundFont each instrument played from (an index into ``synth.soundfonts``), the
    instruments none of them had a preset for, and the kit drawn for each drum instrument
    (by channel; empty without ``settings.drum_kits``)."""
    n = len(song.instruments)
    if n > synth.n_channels:
        raise ValueError(f"{n} instruments, more than the synthesizer's {synth.n_channels} channels")
    stem_seconds = n * (song.duration_s + settings.tail_s)
    if stem_seconds > settings.max_stem_seconds:
        raise ValueError(
            f"{stem_seconds:.0f} stem-seconds ({n} instruments) is over the render cap of "
            f"{settings.max_stem_seconds:g} stem-seconds"
        )
    sample_rate = synth.sample_rate
    fonts, missing = [], set()
    kits = {channel: drum_kit_draw(song, instrument, settings.drum_kits)
            for channel, instrument in enumerate(song.instruments) if instrument.is_drum and settings.drum_kits}
    for channel, instrument in enumerate(song.instruments):
        drawn = soundfont_draw(song, instrument, len(synth.soundfonts))
        font, found = _select_program(synth, channel, instrument, drawn, kits.get(channel, 0))
        fonts.append(font)
        if not found:
            missing.add(channel)
    total = int(math.ceil((song.duration_s + settings.tail_s) * sample_rate)) + 1
    out = np.zeros((n, 2, total), np.float32)  # (instruments, stereo, frames)
    position = 0
    for event in song.events:
        frame = min(int(round(event.time_s * sample_rate)), total)
        synth.render_into(out, position, frame - position)
        position = max(position, frame)
        if event.kind == EventKind.PROGRAM and event.instrument in kits:
            continue  # the drawn kit plays, not the one the MIDI asks for
        _send(synth, event)
    # Release tails: render until every voice is silent, at most tail_s.
    block = 1024
    while position < total and synth.active_voices > 0:
        n_frames = min(block, total - position)
        synth.render_into(out, position, n_frames)
        position += n_frames
    if synth.active_voices > 0:  # cut at the cap: fade out the last 50 ms instead of clicking
        fade = min(position, int(0.05 * sample_rate))
        out[:, :, position - fade : position] *= np.linspace(1, 0, fade, dtype=np.float32)
    return out[:, :, :position], fonts, missing, kits


def _select_program(synth: fluidsynth.Synth, channel: int, instrument: Instrument, drawn: int,
                    kit: int = 0) -> tuple[int, bool]:
    """Set the instrument's program (a drum instrument's: ``kit``, 0 being Standard) on its channel
    from the drawn SoundFont, or from the next one that has the preset; returns that SoundFont's
    index and True. When none has it, the drawn one's and False: the channel then plays its first
    preset of the bank, and the stem's metadata says so."""
    program = kit if instrument.is_drum else instrument.program
    n = len(synth.soundfonts)
    for font in [(drawn + k) % n for k in range(n)]:
        if synth.set_program(channel, program, drum=instrument.is_drum, font=font):
            return font, True
    synth.set_program(channel, program, drum=instrument.is_drum, font=drawn)
    return drawn, False


def _send(synth: fluidsynth.Synth, event: Event):
    channel = event.instrument
    kind = event.kind
    if kind == EventKind.NOTE_ON:
        synth.noteon(channel, event.a, event.b)
    elif kind == EventKind.NOTE_OFF:
        synth.noteoff(channel, event.a)
    elif kind == EventKind.CONTROL:
        synth.control_change(channel, event.a, event.b)
    elif kind == EventKind.PITCH_BEND:
        synth.pitch_bend(channel, event.a)
    elif kind == EventKind.PROGRAM:  # drum kit change
        synth.set_program(channel, event.a, drum=True)
    elif kind == EventKind.CHANNEL_PRESSURE:
        synth.channel_pressure(channel, event.a)
    elif kind == EventKind.KEY_PRESSURE:
        synth.key_pressure(channel, event.a, event.b)
