"""Read a MIDI file into a :class:`Song`: its instruments and a time-ordered event list in seconds.

An instrument is (track, channel, program), with every note of MIDI channel 10 in a track taken as
drums (program 128). The rules, which rendering and the corpus index share:

- Program changes are scoped to their (track, channel), as pretty_midi and Slakh do: two tracks that
  share a channel keep their own programs, and a program change mid-track starts a new instrument.
  A track that sets no program on a channel takes the channel's latest program from any track (a
  set-up track). A note-off goes to the instrument that got its note-on, even across a program
  change; of overlapping notes of one key, the last note-off releases them (as a synthesizer
  releases every voice of a key at once, an earlier one would cut the later note).
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
    max_events: int = 1_000_000  # after controllers are copied to every instrument of their channel
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


class _ProgramTimeline:
    """Program changes per channel from every track, for tracks that set none of their own.

    Many files (Lakh MIDI has plenty) set every channel's program in a set-up track and play
    in others; without this fallback all of them would be piano.
    """

    def __init__(self, tracks):
        changes: dict[int, list[tuple[int, int]]] = {}  # channel -> (tick, program)
        for messages in tracks:
            for tick, _, message in messages:
                if message.type == "program_change":
                    changes.setdefault(message.channel, []).append((tick, message.program))
        self.ticks, self.programs = {}, {}
        for channel, items in changes.items():
            items.sort(key=lambda change: change[0])
            self.ticks[channel] = [tick for tick, _ in items]
            self.programs[channel] = [program for _, program in items]

    def at(self, channel: int, tick: int) -> int:
        """The channel's program at ``tick`` (changes at the same tick count), 0 before any."""
        i = bisect.bisect_right(self.ticks.get(channel, []), tick) - 1
        return self.programs[channel][i] if i >= 0 else 0


class _Collector:
    """Turns the messages of a file into instruments and pending (tick-timed) events."""

    def __init__(self, ticks_per_beat: int, limits: ParseLimits, timeline: _ProgramTimeline):
        self.ticks_per_beat, self.limits, self.timeline = ticks_per_beat, limits, timeline
        self.instruments: dict[Instrument, int] = {}
        self.notes: list[int] = []
        self.pending: list[tuple[int, int, EventKind, int, int, int]] = []  # tick, order, kind, inst, a, b
        self.channel_wide: list[tuple[int, int, int, EventKind, int, int]] = []  # tick, order, channel, ...
        self.drum_kits: list[tuple[int, int, int, int]] = []  # tick, order, track, program
        self.note_keys: list[tuple[int, int, bool]] = []  # for the duplicate fingerprint
        self.last_tick = 0

    def instrument_index(self, key: Instrument) -> int:
        if key not in self.instruments:
            if len(self.instruments) >= self.limits.max_instruments:
                raise MidiError(f"more than the cap of {self.limits.max_instruments} instruments")
            self.instruments[key] = len(self.instruments)
            self.notes.append(0)
        return self.instruments[key]

    def track(self, track_index: int, messages):
        program: dict[int, int] = {}  # channel -> program set by this track
        sounding: dict[tuple[int, int], list[int]] = {}  # (channel, key) -> instrument indices
        for tick, order, message in messages:
            channel = getattr(message, "channel", None)
            if channel is None:  # meta, sysex, clock, song position...: nothing to render
                continue
            self.last_tick = max(self.last_tick, tick)
            kind = message.type
            if kind == "note_on" and message.velocity > 0:
                current = program.get(channel)
                current = self.timeline.at(channel, tick) if current is None else current
                self.note_on(track_index, tick, order, message, current, sounding)
            elif kind in ("note_off", "note_on"):  # note_on with velocity 0 is a note-off
                stack = sounding.get((channel, message.note))
                if stack:
                    index = stack.pop(0)
                    # The synthesizer releases every voice of a key at once: a note-off that
                    # ends one of two overlapping same-key notes must not cut the other.
                    if index not in stack:
                        self.pending.append((tick, order, EventKind.NOTE_OFF, index, message.note, 0))
            elif kind == "program_change":
                if channel == DRUM_CHANNEL:
                    self.drum_kits.append((tick, order, track_index, message.program))
                else:
                    program[channel] = message.program
            elif kind == "polytouch":
                for index in sounding.get((channel, message.note), []):
                    self.pending.append((tick, order, EventKind.KEY_PRESSURE, index, message.note, message.value))
            elif kind in _CHANNEL_WIDE:
                self.channel_wide.append((tick, order, channel) + _channel_wide_event(message))
        # A note that never ends is released at the end of the song.
        for (channel, key), stack in sounding.items():
            for index in set(stack):
                self.pending.append((-1, 2**62, EventKind.NOTE_OFF, index, key, 0))

    def note_on(self, track_index: int, tick: int, order: int, message, program: int, sounding):
        if len(self.note_keys) >= self.limits.max_notes:
            raise MidiError(f"more than the cap of {self.limits.max_notes} notes")
        is_drum = message.channel == DRUM_CHANNEL
        index = self.instrument_index(Instrument(track_index, message.channel, DRUMS if is_drum else program))
        self.notes[index] += 1
        sounding.setdefault((message.channel, message.note), []).append(index)
        self.pending.append((tick, order, EventKind.NOTE_ON, index, message.note, message.velocity))
        self.note_keys.append((round(tick * 24 / self.ticks_per_beat), message.note, is_drum))

    def resolve(self):
        """Send channel-wide events to every instrument of their channel, and drum kits to drums."""
        by_channel: dict[int, list[int]] = {}
        for instrument, index in self.instruments.items():
            by_channel.setdefault(instrument.channel, []).append(index)
        n_events = len(self.pending) + sum(len(by_channel.get(item[2], ())) for item in self.channel_wide)
        if n_events > self.limits.max_events:
            raise MidiError(f"{n_events} events to render, over the cap of {self.limits.max_events}")
        for tick, order, channel, kind, a, b in self.channel_wide:
            for index in by_channel.get(channel, []):
                self.pending.append((tick, order, kind, index, a, b))
        for tick, order, track_index, kit in self.drum_kits:
            index = self.instruments.get(Instrument(track_index, DRUM_CHANNEL, DRUMS))
            if index is not None:
                self.pending.append((tick, order, EventKind.PROGRAM, index, kit, 0))


def _song_from_midi(path: Path, data: bytes, midi: mido.MidiFile, limits: ParseLimits) -> Song:
    if midi.type == 2:
        raise MidiError("unsupported: MIDI type 2 (independent sequences)")
    if midi.ticks_per_beat <= 0:
        raise MidiError("unsupported: SMPTE time division")
    if not midi.tracks:
        raise MidiError("no tracks")
    tracks = _absolute_messages(midi, limits)
    tempo = _tempo_map(tracks, midi.ticks_per_beat, limits)
    collector = _Collector(midi.ticks_per_beat, limits, _ProgramTimeline(tracks))
    for track_index, messages in enumerate(tracks):
        collector.track(track_index, messages)
    if not collector.instruments:
        raise MidiError("no notes")
    collector.resolve()
    duration_s = tempo.to_seconds(collector.last_tick)
    if duration_s > limits.max_duration_s:
        raise MidiError(f"duration of {duration_s:.0f} s is over the cap of {limits.max_duration_s:g} s")
    events = sorted(
        Event(duration_s if tick < 0 else tempo.to_seconds(tick), order, kind, index, a, b)
        for tick, order, kind, index, a, b in collector.pending
    )
    return Song(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        notes_hash=hashlib.sha256(repr(sorted(collector.note_keys)).encode()).hexdigest(),
        duration_s=duration_s,
        instruments=list(collector.instruments),
        notes_per_instrument=collector.notes,
        events=events,
    )


def _channel_wide_event(message: mido.Message) -> tuple[EventKind, int, int]:
    if message.type == "control_change":
        return EventKind.CONTROL, message.control, message.value
    if message.type == "pitchwheel":
        return EventKind.PITCH_BEND, message.pitch, 0
    return EventKind.CHANNEL_PRESSURE, message.value, 0
