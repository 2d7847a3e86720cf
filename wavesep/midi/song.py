"""Read a MIDI file into a :class:`Song`: its instruments and a time-ordered event list in seconds.

An instrument is (track, channel, program), with every note of MIDI channel 10 in a track taken as
drums (program 128). The rules, which rendering and the corpus index share:

- Program changes are scoped to their (track, channel), as pretty_midi and Slakh do: two tracks that
  share a channel keep their own programs, and a program change mid-track starts a new instrument.
  A note-off goes to the instrument that got its note-on, even across a program change.
- Controllers, pitch bends and channel pressure act on the MIDI channel, as they do on a real
  synthesizer: they are sent to every instrument that plays on that channel, from the start of the
  song, so an instrument that begins mid-song inherits the channel's state (volume, pedal, bend
  range).
- Tempo changes from any track apply to all tracks (type 0 and 1 files; type 2 is refused).

Reading is guarded: :class:`ParseLimits` caps file size, ticks, duration, notes, instruments and
wall time, and a file over a cap raises :class:`MidiError` naming the cap, so one bad file in a
corpus never exhausts memory or time.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path

import mido

from wavesep.instruments import DRUM_CHANNEL, DRUMS, family_name, program_name


class MidiError(ValueError):
    """A MIDI file that cannot be used; the message is the reason, one line."""


@dataclass(frozen=True)
class ParseLimits:
    """Caps that keep any single file from exhausting memory or time."""

    max_file_bytes: int = 16 * 2**20  # the largest Lakh MIDI files are a few MB
    max_ticks: int = 2**28  # an enormous delta time is corruption, not music
    max_duration_s: float = 1200.0  # 20 minutes of music
    max_notes: int = 200_000
    max_instruments: int = 64  # one synthesizer channel each when rendering
    max_tempo_bpm: float = 1000.0  # faster than this is a broken tempo event
    max_seconds: float = 30.0  # wall time to parse one file


class EventKind(IntEnum):
    """What an :class:`Event` does to its instrument's synthesizer channel."""

    NOTE_OFF = 0
    NOTE_ON = 1
    CONTROL = 2  # a = controller number, b = value
    PITCH_BEND = 3  # a = bend, -8192..8191
    PROGRAM = 4  # a = program (drum kit on drum instruments)
    CHANNEL_PRESSURE = 5  # a = value
    KEY_PRESSURE = 6  # a = key, b = value


@dataclass(frozen=True)
class Instrument:
    """One instrument of a song: the (track, channel, program) that plays it."""

    track: int
    channel: int
    program: int  # 0-127, or 128 for drums

    @property
    def id(self) -> str:
        """Stable identifier, also the stem's file name: 't01-c09-p128'."""
        return f"t{self.track:02d}-c{self.channel:02d}-p{self.program:03d}"

    @property
    def is_drum(self) -> bool:
        return self.program == DRUMS

    @property
    def name(self) -> str:
        return program_name(self.program)

    @property
    def family(self) -> str:
        return family_name(self.program)


@dataclass(frozen=True, order=True)
class Event:
    """A timed synthesizer action on one instrument; sorting gives rendering order."""

    time_s: float
    order: int  # file order, so simultaneous events keep the order the MIDI gives them
    kind: EventKind
    instrument: int  # index into Song.instruments
    a: int = 0
    b: int = 0


@dataclass
class Song:
    """A parsed MIDI file."""

    path: Path
    sha256: str  # of the file's bytes
    notes_hash: str  # of its notes in beats and pitches only: equal for re-orchestrated duplicates
    duration_s: float  # time of the last event
    instruments: list[Instrument]
    notes_per_instrument: list[int]
    events: list[Event] = field(repr=False)

    @property
    def n_notes(self) -> int:
        return sum(self.notes_per_instrument)


@contextmanager
def _time_limit(seconds: float, path: Path):
    """Raise MidiError after ``seconds`` of wall time (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return

    def _expired(signum, frame):
        raise MidiError(f"over the parse time cap of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_song(path: str | Path, limits: ParseLimits = ParseLimits()) -> Song:
    """Parse a MIDI file, enforcing ``limits``.

    Raises:
        MidiError: the file is unreadable, corrupt, unsupported, has no notes, or is over a cap.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise MidiError(f"file of {size} bytes is over the cap of {limits.max_file_bytes} bytes")
        data = path.read_bytes()
    except OSError as error:
        raise MidiError(f"cannot read file: {error.strerror or error}") from None
    with _time_limit(limits.max_seconds, path):
        try:
            midi = mido.MidiFile(file=io.BytesIO(data), clip=False)
        except MidiError:
            raise
        except Exception as error:  # mido raises many types on corrupt input
            raise MidiError(f"corrupt MIDI: {_describe(error)}") from None
        return _song_from_midi(path, data, midi, limits)


def _describe(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _TempoMap:
    """Ticks to seconds through every tempo change of the file."""

    def __init__(self, changes: list[tuple[int, int]], ticks_per_beat: int):
        # changes: (tick, microseconds per beat), sorted; the MIDI default is 120 BPM.
        self.ticks_per_beat = ticks_per_beat
        self.ticks = [0]
        self.seconds = [0.0]
        self.tempos = [500_000]
        for tick, tempo in changes:
            start = self.seconds[-1] + (tick - self.ticks[-1]) * self.tempos[-1] / (1e6 * ticks_per_beat)
            if tick == self.ticks[-1]:
                self.tempos[-1] = tempo
            else:
                self.ticks.append(tick)
                self.seconds.append(start)
                self.tempos.append(tempo)

    def to_seconds(self, tick: int) -> float:
        i = bisect.bisect_right(self.ticks, tick) - 1
        return self.seconds[i] + (tick - self.ticks[i]) * self.tempos[i] / (1e6 * self.ticks_per_beat)


def _absolute_messages(midi: mido.MidiFile, limits: ParseLimits):
    """Per track, (tick, order, message) with absolute ticks; checks the tick cap."""
    order = 0
    tracks = []
    for track in midi.tracks:
        tick = 0
        messages = []
        for message in track:
            tick += message.time
            if tick > limits.max_ticks:
                raise MidiError(f"tick {tick} is over the cap of {limits.max_ticks} ticks")
            messages.append((tick, order, message))
            order += 1
        tracks.append(messages)
    return tracks


def _tempo_map(tracks, ticks_per_beat: int, limits: ParseLimits) -> _TempoMap:
    changes = []
    for messages in tracks:
        for tick, _, message in messages:
            if message.type == "set_tempo":
                if message.tempo <= 0 or 60e6 / message.tempo > limits.max_tempo_bpm:
                    raise MidiError(
                        f"absurd tempo of {message.tempo} us per beat at tick {tick} "
                        f"(cap {limits.max_tempo_bpm:g} BPM)"
                    )
                changes.append((tick, message.tempo))
    changes.sort(key=lambda change: change[0])
    return _TempoMap(changes, ticks_per_beat)


_CHANNEL_WIDE = {"control_change", "pitchwheel", "aftertouch"}


def _song_from_midi(path: Path, data: bytes, midi: mido.MidiFile, limits: ParseLimits) -> Song:
    if midi.type == 2:
        raise MidiError("unsupported: MIDI type 2 (independent sequences)")
    if midi.ticks_per_beat <= 0:
        raise MidiError("unsupported: SMPTE time division")
    if not midi.tracks:
        raise MidiError("no tracks")
    tracks = _absolute_messages(midi, limits)
    tempo = _tempo_map(tracks, midi.ticks_per_beat, limits)

    instruments: dict[Instrument, int] = {}
    notes: list[int] = []
    # Instrument events; channel-wide ones are resolved once all instruments are known.
    pending: list[tuple[int, int, EventKind, int, int, int]] = []  # tick, order, kind, inst, a, b
    channel_wide: list[tuple[int, int, int, EventKind, int, int]] = []  # tick, order, channel, ...
    drum_kits: list[tuple[int, int, int, int]] = []  # tick, order, track, program
    note_keys: list[tuple[int, int, bool]] = []  # for the duplicate fingerprint
    n_notes = 0

    def instrument_index(key: Instrument) -> int:
        if key not in instruments:
            if len(instruments) >= limits.max_instruments:
                raise MidiError(f"more than the cap of {limits.max_instruments} instruments")
            instruments[key] = len(instruments)
            notes.append(0)
        return instruments[key]

    last_tick = 0
    for track_index, messages in enumerate(tracks):
        program = {}  # channel -> current program, scoped to this track
        sounding: dict[tuple[int, int], list[int]] = {}  # (channel, key) -> instrument indices
        for tick, order, message in messages:
            if message.is_meta or message.type == "sysex":
                continue
            last_tick = max(last_tick, tick)
            channel = message.channel
            kind = message.type
            if kind == "note_on" and message.velocity > 0:
                n_notes += 1
                if n_notes > limits.max_notes:
                    raise MidiError(f"more than the cap of {limits.max_notes} notes")
                is_drum = channel == DRUM_CHANNEL
                key = Instrument(track_index, channel, DRUMS if is_drum else program.get(channel, 0))
                index = instrument_index(key)
                notes[index] += 1
                sounding.setdefault((channel, message.note), []).append(index)
                pending.append((tick, order, EventKind.NOTE_ON, index, message.note, message.velocity))
                note_keys.append((round(tick * 24 / midi.ticks_per_beat), message.note, is_drum))
            elif kind in ("note_off", "note_on"):  # note_on with velocity 0 is a note-off
                stack = sounding.get((channel, message.note))
                if stack:
                    pending.append((tick, order, EventKind.NOTE_OFF, stack.pop(0), message.note, 0))
            elif kind == "program_change":
                if channel == DRUM_CHANNEL:
                    drum_kits.append((tick, order, track_index, message.program))
                else:
                    program[channel] = message.program
            elif kind == "polytouch":
                for index in sounding.get((channel, message.note), []):
                    pending.append((tick, order, EventKind.KEY_PRESSURE, index, message.note, message.value))
            elif kind in _CHANNEL_WIDE:
                channel_wide.append((tick, order, channel) + _channel_wide_event(message))
        # A note that never ends is released at the end of the song.
        for (channel, key), stack in sounding.items():
            for index in stack:
                pending.append((-1, 2**62, EventKind.NOTE_OFF, index, key, 0))

    if not instruments:
        raise MidiError("no notes")
    by_channel: dict[int, list[int]] = {}
    for instrument, index in instruments.items():
        by_channel.setdefault(instrument.channel, []).append(index)
    for tick, order, channel, kind, a, b in channel_wide:
        for index in by_channel.get(channel, []):
            pending.append((tick, order, kind, index, a, b))
    for tick, order, track_index, kit in drum_kits:
        index = instruments.get(Instrument(track_index, DRUM_CHANNEL, DRUMS))
        if index is not None:
            pending.append((tick, order, EventKind.PROGRAM, index, kit, 0))

    duration_s = tempo.to_seconds(last_tick)
    if duration_s > limits.max_duration_s:
        raise MidiError(f"duration of {duration_s:.0f} s is over the cap of {limits.max_duration_s:g} s")
    events = sorted(
        Event(duration_s if tick < 0 else tempo.to_seconds(tick), order, kind, index, a, b)
        for tick, order, kind, index, a, b in pending
    )
    note_keys.sort()
    return Song(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        notes_hash=hashlib.sha256(repr(note_keys).encode()).hexdigest(),
        duration_s=duration_s,
        instruments=list(instruments),
        notes_per_instrument=notes,
        events=events,
    )


def _channel_wide_event(message: mido.Message) -> tuple[EventKind, int, int]:
    if message.type == "control_change":
        return EventKind.CONTROL, message.control, message.value
    if message.type == "pitchwheel":
        return EventKind.PITCH_BEND, message.pitch, 0
    return EventKind.CHANNEL_PRESSURE, message.value, 0
