"""A small ctypes binding to libfluidsynth (2.x), for offline multi-output rendering.

pyfluidsynth only returns 16-bit interleaved audio from one output; wavesep needs float audio from
one *audio group* per MIDI channel (``synth.audio-groups``), so that every instrument of a song is
rendered in the same pass, sample-aligned, into its own buffer. This module binds just what that
takes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path
from typing import Sequence

import numpy as np

MAX_CHANNELS = 128  # FluidSynth's cap on synth.audio-groups: one output per channel
CHANNEL_TYPE_MELODIC = 0
CHANNEL_TYPE_DRUM = 1
_LOG_LEVELS_TO_SILENCE = (2, 3, 4)  # FLUID_WARN, FLUID_INFO, FLUID_DBG


class FluidSynthError(RuntimeError):
    """libfluidsynth is missing or refused an operation."""


_void_p = ctypes.c_void_p
_int = ctypes.c_int
_SIGNATURES = {
    "new_fluid_settings": (_void_p, []),
    "delete_fluid_settings": (None, [_void_p]),
    "fluid_settings_setnum": (_int, [_void_p, ctypes.c_char_p, ctypes.c_double]),
    "fluid_settings_setint": (_int, [_void_p, ctypes.c_char_p, _int]),
    "new_fluid_synth": (_void_p, [_void_p]),
    "delete_fluid_synth": (None, [_void_p]),
    "fluid_synth_sfload": (_int, [_void_p, ctypes.c_char_p, _int]),
    "fluid_synth_set_channel_type": (_int, [_void_p, _int, _int]),
    "fluid_synth_program_select": (_int, [_void_p, _int, _int, _int, _int]),
    "fluid_synth_noteon": (_int, [_void_p, _int, _int, _int]),
    "fluid_synth_noteoff": (_int, [_void_p, _int, _int]),
    "fluid_synth_cc": (_int, [_void_p, _int, _int, _int]),
    "fluid_synth_pitch_bend": (_int, [_void_p, _int, _int]),
    "fluid_synth_channel_pressure": (_int, [_void_p, _int, _int]),
    "fluid_synth_key_pressure": (_int, [_void_p, _int, _int, _int]),
    "fluid_synth_get_active_voice_count": (_int, [_void_p]),
    "fluid_synth_nwrite_float": (
        _int, [_void_p, _int, ctypes.POINTER(_void_p), ctypes.POINTER(_void_p), _void_p, _void_p]
    ),
    "fluid_version": (None, [ctypes.POINTER(_int)] * 3),
    "fluid_set_log_function": (_void_p, [_int, _void_p, _void_p]),
}


@functools.cache
def library() -> ctypes.CDLL:
    """The loaded libfluidsynth, with argument types declared."""
    name = ctypes.util.find_library("fluidsynth")
    if name is None:
        raise FluidSynthError(
            "libfluidsynth not found: install it with `sudo apt-get install libfluidsynth3`"
        )
    lib = ctypes.CDLL(name)
    for function, (restype, argtypes) in _SIGNATURES.items():
        getattr(lib, function).restype = restype
        getattr(lib, function).argtypes = argtypes
    for level in _LOG_LEVELS_TO_SILENCE:  # missing presets etc. would flood stderr per song
        lib.fluid_set_log_function(level, None, None)
    return lib


def version() -> str:
    """libfluidsynth's version, e.g. '2.3.1'."""
    parts = [_int(), _int(), _int()]
    library().fluid_version(*(ctypes.byref(part) for part in parts))
    return ".".join(str(part.value) for part in parts)


def soundfont_paths(soundfonts: str | Path | Sequence[str | Path]) -> list[Path]:
    """One SoundFont path or several, as a list of paths (an empty list is an error)."""
    paths = [Path(soundfonts)] if isinstance(soundfonts, (str, Path)) else [Path(path) for path in soundfonts]
    if not paths:
        raise ValueError("no SoundFont given")
    return paths


class Synth:
    """A FluidSynth synthesizer with one stereo output per MIDI channel, and one or more SoundFonts.

    Args:
        soundfonts: an .sf2 or .sf3 file, or several; each loaded once, and each channel plays
            from the one :meth:`set_program` names.
        sample_rate: output rate in Hz (FluidSynth accepts 8000-96000).
        n_channels: MIDI channels, each rendered to its own output (at most 128).
        polyphony: voices before FluidSynth steals the oldest; generous because every instrument
            of a song shares the synthesizer.

    FluidSynth's reverb and chorus are off: their output is shared by all channels, so it would
    belong to no stem. Effects per stem are for the data pipeline to add.
    """

    def __init__(
        self,
        soundfonts: str | Path | Sequence[str | Path],
        sample_rate: int = 44100,
        n_channels: int = 64,
        polyphony: int = 1024,
    ):
        if not 1 <= n_channels <= MAX_CHANNELS:
            raise ValueError(f"n_channels must be in 1-{MAX_CHANNELS}, got {n_channels}")
        self.lib = library()
        self.sample_rate = int(sample_rate)
        self.n_channels = n_channels
        self._settings = self.lib.new_fluid_settings()
        midi_channels = 16 * -(-n_channels // 16)
        for key, value in {
            "synth.midi-channels": midi_channels,
            "synth.audio-groups": n_channels,
            "synth.audio-channels": n_channels,
            "synth.polyphony": polyphony,
            "synth.reverb.active": 0,
            "synth.chorus.active": 0,
            "synth.cpu-cores": 1,  # parallelism comes from worker processes
        }.items():
            self._check(self.lib.fluid_settings_setint(self._settings, key.encode(), value), key)
        self._check(
            self.lib.fluid_settings_setnum(self._settings, b"synth.sample-rate", float(sample_rate)),
            f"synth.sample-rate={sample_rate}",
        )
        self._check(self.lib.fluid_settings_setnum(self._settings, b"synth.gain", 0.2), "synth.gain")
        self._synth = self.lib.new_fluid_synth(self._settings)
        if not self._synth:
            self.close()
            raise FluidSynthError("FluidSynth could not create a synthesizer")
        self.soundfonts = soundfont_paths(soundfonts)
        self._sfont_ids = []
        for soundfont in self.soundfonts:
            self._sfont_ids.append(self.lib.fluid_synth_sfload(self._synth, str(soundfont).encode(), 1))
            if self._sfont_ids[-1] < 0:
                self.close()
                raise FluidSynthError(f"{soundfont}: FluidSynth cannot load this SoundFont")
        self._fonts: dict[int, int] = {}  # channel -> index of its SoundFont in self.soundfonts
        self._scratch = np.zeros(0, np.float32)  # output for channels nobody reads

    def _check(self, status: int, what: str):
        if status != 0:  # FLUID_OK
            raise FluidSynthError(f"FluidSynth refused {what}")

    def close(self):
        if getattr(self, "_synth", None):
            self.lib.delete_fluid_synth(self._synth)
            self._synth = None
        if getattr(self, "_settings", None):
            self.lib.delete_fluid_settings(self._settings)
            self._settings = None

    def __enter__(self) -> Synth:
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    # Channel set-up and MIDI events. Channel numbers are synthesizer channels, 0..n_channels-1.
    # There is no reset: a synthesizer is used for one song (see render.Renderer for why).

    def set_program(self, channel: int, program: int, drum: bool = False, font: int | None = None):
        """Select a program (GM 0-127, or a drum kit number when ``drum``) on a channel, from the
        ``font``-th SoundFont (None: the one the channel has, the first at the start).

        Returns:
            False if that SoundFont has no such preset (the channel then falls back to bank 0 /
            program 0 of its drum or melodic bank, as FluidSynth does).
        """
        kind = CHANNEL_TYPE_DRUM if drum else CHANNEL_TYPE_MELODIC
        self.lib.fluid_synth_set_channel_type(self._synth, channel, kind)
        if font is not None:
            self._fonts[channel] = font
        sfont_id, bank = self._sfont_ids[self._fonts.get(channel, 0)], 128 if drum else 0
        if self.lib.fluid_synth_program_select(self._synth, channel, sfont_id, bank, program) == 0:
            return True
        self.lib.fluid_synth_program_select(self._synth, channel, sfont_id, bank, 0)
        return False

    def noteon(self, channel: int, key: int, velocity: int):
        self.lib.fluid_synth_noteon(self._synth, channel, key, velocity)

    def noteoff(self, channel: int, key: int):
        self.lib.fluid_synth_noteoff(self._synth, channel, key)

    def control_change(self, channel: int, control: int, value: int):
        self.lib.fluid_synth_cc(self._synth, channel, control, value)

    def pitch_bend(self, channel: int, bend: int):
        """Bend in -8192..8191 (mido's convention); FluidSynth wants 0..16383."""
        self.lib.fluid_synth_pitch_bend(self._synth, channel, bend + 8192)

    def channel_pressure(self, channel: int, value: int):
        self.lib.fluid_synth_channel_pressure(self._synth, channel, value)

    def key_pressure(self, channel: int, key: int, value: int):
        self.lib.fluid_synth_key_pressure(self._synth, channel, key, value)

    @property
    def active_voices(self) -> int:
        return self.lib.fluid_synth_get_active_voice_count(self._synth)

    def render_into(self, out: np.ndarray, start: int, n_frames: int):
        """Render ``n_frames`` into ``out[:, :, start:start + n_frames]``.

        Shape:
            out: (outputs, 2, frames), float32, C-contiguous; output ``i`` gets MIDI channel ``i``.
            Channels beyond ``out.shape[0]`` are rendered into scratch memory and dropped.
        """
        if n_frames <= 0:
            return
        n_outputs = out.shape[0]
        if out.dtype != np.float32 or not out.flags.c_contiguous or out.shape[1] != 2:
            raise ValueError("out must be a C-contiguous float32 array of shape (outputs, 2, frames)")
        if start < 0 or start + n_frames > out.shape[2] or n_outputs > self.n_channels:
            raise ValueError("render_into: range or outputs outside the buffer")
        if self._scratch.size < n_frames:
            self._scratch = np.zeros(max(n_frames, 4096), np.float32)
        # Addresses of every channel's left and right buffer at frame `start`, as uint64 so
        # that they pass as the void** arrays FluidSynth wants without a Python loop.
        rows = np.arange(self.n_channels)
        used = rows < n_outputs
        row_bytes = 4 * out.shape[2]
        left = np.where(used, out.ctypes.data + 4 * start + 2 * rows * row_bytes, self._scratch.ctypes.data)
        right = np.where(used, left + row_bytes, left)
        left, right = left.astype(np.uint64), right.astype(np.uint64)
        pointers = ctypes.POINTER(_void_p)
        status = self.lib.fluid_synth_nwrite_float(
            self._synth, n_frames, left.ctypes.data_as(pointers), right.ctypes.data_as(pointers), None, None
        )
        self._check(status, "to render")
