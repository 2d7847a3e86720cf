"""Separate audio into stems: the :class:`Separator` API, from tensors, arrays or files.

The path of one track, all in blocks so that memory does not grow with the track::

    blocks read  ->  resampled to the model's rate (soxr)  ->  overlap-add of the model's segments
                 ->  resampled back  ->  (mixture consistency)  ->  stems, as long as the input

- The track stays on the CPU; only segments go to the model's device.
- *Mixture consistency* (``consistency=True``, ``--consistent``): when the model has an ``other``
  stem, whatever the stems do not explain (input minus their sum) is added to ``other``, at the
  input's rate, so the stems sum back to the input within float error. Off by default: what the
  stems miss is mostly the other stems' errors, and adding it cost the shipped model's ``other``
  stem 5 dB of SI-SDR (+4.4 dB without, -0.6 with, on bench/quality.py's songs). (Not for a blind
  model's output: the stems it judges absent are dropped, content and all.)
- Informed models are told what to extract (``instruments``); blind models detect what plays and
  only the stems judged present are kept, with the presence probabilities.
- *Shifts* (``shifts=N``, ``--shifts N``, Demucs's shift trick made reproducible): each segment is
  separated N times, delayed by N offsets spread evenly over :data:`MAX_SHIFT_S` (zeros before
  it), and the N estimates, put back into line, are averaged. A model with a stride or an STFT
  frame grid sees the audio fall differently on it each time. N times the work; the offsets are
  fixed, so the same input gives the same stems.

:meth:`Separator.separate` takes a tensor or array ``(channels, time)`` or ``(time,)`` and returns
``{stem: same type and layout}``. :meth:`Separator.separate_file` writes stem files; see
:mod:`wavesep.cli` for the command.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
import soxr
import torch

from wavesep.audio import AudioInfo, open_audio, open_writer, read_blocks, subtype
from wavesep.instruments import OTHER, parse_programs, stem_set_named
from wavesep.models import SeparationModel
from wavesep.models.base import native_bf16
from wavesep.overlap import OverlapAdd

CLIP_POLICIES = ("rescale", "clamp", "none")
DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
BLOCK_S = 10.0  # seconds read from a file at a time
CUDA_BATCH = 8  # segments per model call on a GPU
DETECTIONS = "detections"  # the {stem} of a blind model's detection report in the template
MAX_SHIFT_S = 0.5  # the span of the shifts' offsets (Demucs's shift trick draws them from 0.5 s)


@dataclass
class Request:
    """What a model is asked for: the stems it runs, those kept, and the condition."""

    run: list[str]  # stems the model computes, in model order
    keep: list[str]  # stems returned
    condition: torch.Tensor | None  # multi-hot (1, n_sources), or None
    queries: list[int] = field(default_factory=list)  # query models: one run per source index


def stems_for_instruments(model: SeparationModel, names: Iterable[str]) -> list[str]:
    """The model's stems that hold the named instruments (stem names, GM instrument or family
    names, or program numbers), in model order; ValueError naming what no stem holds."""
    sources = list(model.sources)
    stem_set = stem_set_named(sources)
    wanted = set()
    for name in names:
        name = name.strip()
        if name in sources:
            wanted.add(name)
            continue
        try:
            programs = parse_programs(name)
        except ValueError:
            programs = frozenset()
        indices = {stem_set.stem_index(p) for p in programs} - {None} if stem_set else set()
        if not indices:
            raise ValueError(f"no stem of this model holds {name!r} (its stems: {', '.join(sources)})")
        wanted |= {sources[i] for i in indices}
    return [s for s in sources if s in wanted]


def make_request(model: SeparationModel, stems: list[str] | None, instruments: list[str] | None) -> Request:
    sources = list(model.sources)
    unknown = [s for s in stems or [] if s not in sources]
    if unknown:
        raise ValueError(f"unknown stem(s) {', '.join(unknown)}: this model's stems are {', '.join(sources)}")
    setting = model.spec.setting
    if instruments and setting != "informed":
        raise ValueError(f"--instruments is for informed models; this model is {setting}")
    if setting != "informed":
        return Request(run=sources, keep=[s for s in sources if not stems or s in stems], condition=None)
    # informed: what plays is named (default: everything)
    present = stems_for_instruments(model, instruments) if instruments else sources
    keep = [s for s in present if not stems or s in stems]
    if OTHER in sources and OTHER not in present:
        present = present + [OTHER]  # what the named instruments leave goes to other
        keep = keep + ([OTHER] if not stems or OTHER in stems else [])
    if not keep:
        raise ValueError(f"--stems {','.join(stems)} and --instruments {','.join(instruments)} leave no stem to write")
    if model.spec.query:
        return Request(run=keep, keep=keep, condition=None, queries=[sources.index(s) for s in keep])
    condition = torch.tensor([[float(s in present) for s in sources]])
    return Request(run=sources, keep=keep, condition=condition)


def fit_gains(stems: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """Stems ``(sources, channels, time)`` each scaled, channel by channel, by the gain that makes
    their sum closest to ``mixture (channels, time)`` (least squares).

    A model trained on a scale-invariant loss (SI-SDR) gets each stem's waveform right but not its
    level or even its sign (SI-SDR scores ``-s`` as well as ``s``); computed per channel, the
    left and right channels of a stem may even come out with opposite signs. The mixture fixes
    both, since the stems must sum to it in every channel.
    """
    out = stems.clone()
    for channel in range(stems.shape[1]):
        flat = stems[:, channel].double().cpu()  # (sources, time)
        target = mixture[channel].double().cpu()
        gram = flat @ flat.T  # (sources, sources)
        # A whisper of ridge keeps silent or identical outputs from making the system singular.
        gram += torch.eye(len(gram), dtype=gram.dtype) * (1e-9 * gram.diagonal().mean() + 1e-30)
        gains = torch.linalg.lstsq(gram, (flat @ target)[:, None]).solution[:, 0]
        out[:, channel] *= gains.to(stems)[:, None]
    return out


PRECISIONS = ("auto", "float32", "bfloat16")


def separation_precision(precision: str, model: SeparationModel, device: torch.device) -> str:
    """``float32`` or ``bfloat16``: what ``precision`` (one of :data:`PRECISIONS`) means for
    ``model`` on ``device``. ``auto`` takes bfloat16 only on a CPU that has it natively and for an
    architecture whose bfloat16 output was checked (on such a CPU a latent-wavenet separates 1.2x to
    1.35x faster, its stems about 50 dB from float32's); GPUs keep float32 until timed. Asking for
    bfloat16 where it would be emulated is an error: it would be slower than float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        native = device.type == "cpu" and native_bf16(device)
        return "bfloat16" if native and model.bfloat16_separation else "float32"
    if precision == "bfloat16" and not native_bf16(device):
        raise ValueError(f"precision bfloat16: {device.type} here computes it by emulation, slower than float32 "
                         "(a CPU needs AVX512-BF16 or AMX)")
    return precision


class Track:
    """One track through the block pipeline (see the module docstring)."""

    def __init__(self, separator: Separator, sample_rate: int, channels: int):
        model = separator.model
        self.separator = separator
        self.sample_rate = sample_rate
        self.channels = channels
        self.n_outputs = len(separator.request.run)
        self.presence = torch.zeros(model.spec.n_sources) if model.spec.setting == "blind" else None
        rate = model.sample_rate
        self.resample_in = None if rate == sample_rate else soxr.ResampleStream(
            sample_rate, rate, channels, dtype="float32", quality="HQ")
        self.resample_out = None if rate == sample_rate else soxr.ResampleStream(
            rate, sample_rate, self.n_outputs * channels, dtype="float32", quality="HQ")
        self.offsets = shift_offsets(separator.shifts, rate)
        segment = max(1, round(separator.segment_s * rate))
        self.blender = OverlapAdd(self._run_segments, segment, min(segment - 1, round(separator.overlap * segment)),
                                  batch=separator.batch)
        self.pending_in: list[np.ndarray] = []  # input not yet matched by output, (channels, time)
        self.pending_out: list[np.ndarray] = []  # output beyond the input read so far
        self.n_in = 0  # input samples read
        self.n_out = 0  # output samples returned

    @torch.inference_mode()
    def _run_segments(self, mixture: torch.Tensor) -> torch.Tensor:
        """(segments, channels, time) on the CPU -> (segments, n_outputs, channels, time) on the CPU."""
        device = self.separator.device
        mixture = mixture.to(device)
        total = None
        for offset in self.offsets:  # see the module docstring: shifts
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.separator.precision == "bfloat16"):
                stems = self._stems(torch.nn.functional.pad(mixture, (offset, 0)))[..., offset:].float()
            total = stems if total is None else total.add_(stems)
        return total.div_(len(self.offsets)).cpu()

    def _stems(self, x: torch.Tensor) -> torch.Tensor:
        separator, request = self.separator, self.separator.request
        if request.queries:  # one run per query and segment
            queries = torch.tensor(request.queries, device=separator.device).repeat(len(x))
            stems = separator.model(x.repeat_interleave(len(request.queries), dim=0), queries).stems[:, 0]
            stems = stems.view(len(x), len(request.queries), *stems.shape[1:])
        else:
            condition = None if request.condition is None else request.condition.to(separator.device).expand(len(x), -1)
            result = separator.model(x, condition)
            stems = result.stems
            if self.separator.fit_gains:
                stems = torch.stack([fit_gains(s, m) for s, m in zip(stems, x)])
            if result.presence_logits is not None:  # a stem is present if it plays in any segment
                probabilities = torch.sigmoid(result.presence_logits.float()).amax(dim=0).cpu()
                self.presence = torch.maximum(self.presence, probabilities)
        return stems

    def run(self, blocks: Iterable[np.ndarray],
            progress: Callable[[float], None] | None = None) -> Iterator[np.ndarray]:
        """The whole track: input blocks in, output blocks ``(n_outputs, channels, time)`` out, as
        long as the input in all; ``progress`` gets the seconds of each block read."""
        for block, last in _with_last(blocks):
            out = self.push(block, last)
            if progress is not None:
                progress(block.shape[-1] / self.sample_rate)
            if out is not None:
                yield out

    def push(self, block: np.ndarray, last: bool = False) -> np.ndarray | None:
        """(channels, time) input -> (n_outputs, channels, time) output that is ready, if any."""
        self.n_in += block.shape[-1]
        self.pending_in.append(block)
        x = block if self.resample_in is None else self.resample_in.resample_chunk(block.T, last=last).T
        parts = [self.blender.push(torch.from_numpy(np.ascontiguousarray(x)))]
        if last:
            parts.append(self.blender.finish())
        parts = [p.numpy() for p in parts if p is not None]
        if self.resample_out is not None:
            flat = np.concatenate(parts, axis=-1) if parts else np.zeros((self.n_outputs, self.channels, 0), np.float32)
            flat = flat.reshape(self.n_outputs * self.channels, flat.shape[-1])
            out = self.resample_out.resample_chunk(np.ascontiguousarray(flat.T), last=last).T
            parts = [out.reshape(self.n_outputs, self.channels, -1)]
        self.pending_out += parts
        return self._ready(last)

    def _ready(self, last: bool) -> np.ndarray | None:
        """The output up to the input read so far, consistent with the input; at the end, exactly
        as long as the input (the resamplers' rounding is padded or cut, by a sample or two)."""
        out = np.concatenate(self.pending_out, axis=-1) if self.pending_out else None
        available = 0 if out is None else out.shape[-1]
        count = (self.n_in - self.n_out) if last else min(available, self.n_in - self.n_out)
        if count <= 0:
            return None
        if available < count:  # the resamplers came up a sample or two short: hold the last value
            out = out if out is not None else np.zeros((self.n_outputs, self.channels, 1), np.float32)
            out = np.concatenate([out, np.repeat(out[..., -1:], count - available, axis=-1)], axis=-1)
        ready, rest = out[..., :count], out[..., count:]
        self.pending_out = [rest] if rest.shape[-1] else []
        inputs = np.concatenate(self.pending_in, axis=-1)
        mixture, rest_in = inputs[..., :count], inputs[..., count:]
        self.pending_in = [rest_in] if rest_in.shape[-1] else []
        self.n_out += count
        return self.separator.consistent(ready, mixture)


class Separator:
    """Separate tracks with one model (see the module docstring).

    Args:
        model: a registered name, a ``.safetensors`` or checkpoint path, or a model object;
            None takes ``default``.
        device: where the model runs (``cpu``, ``cuda``, ...); tracks stay on the CPU.
        segment_s: seconds per segment (default: 10 s, at least 4 receptive fields).
        overlap: fraction of a segment shared with the next one (0 <= overlap < 1).
        batch: segments per model call (default: 1 on the CPU, which gains nothing from more,
            and :data:`CUDA_BATCH` on a GPU, which one 10 s segment leaves mostly idle).
        stems: keep only these stems (default: all the model's stems).
        instruments: informed models: what is playing (stem, GM instrument or family names).
        threshold: blind models: presence probability above which a stem is kept.
        consistency: with an ``other`` stem, put what the stems miss into it, so that the stems sum
            to the input (off by default: see the module docstring).
        fit_gains: scale each segment's stems to fit the mixture (:func:`fit_gains`), for models
            trained on a scale-invariant loss; only when the stems include ``other``. Default:
            what the weights or checkpoint say (:func:`wavesep.pretrained.separator_options`: their
            own ``separator.fit_gains``, else on when every term of their training loss is
            scale-invariant).
        shifts: separate each segment this many times at offsets spread over :data:`MAX_SHIFT_S`
            and average (module docstring; default 1: once, as it comes).
        precision: ``float32``, ``bfloat16`` (autocast: the dilated stacks, and a latent-wavenet's
            decoder product, in bfloat16; its encoder and STFT paths in float32), or ``auto``
            (default): bfloat16 on a CPU that computes it natively (AVX512-BF16 or AMX) for an
            architecture checked in it (``bfloat16_separation``: latent-wavenet, the precision it
            trains in there), else float32. See :func:`separation_precision`.
    """

    def __init__(self, model: str | Path | SeparationModel | None = None, device: str = "cpu",
                 segment_s: float | None = None, overlap: float = 0.25, stems: list[str] | None = None,
                 instruments: list[str] | None = None, threshold: float = 0.5, consistency: bool = False,
                 fit_gains: bool | None = None, batch: int | None = None, precision: str = "auto",
                 shifts: int = 1):
        from wavesep.pretrained import load_any

        if isinstance(model, SeparationModel):
            self.model = model.eval()
        else:
            self.model = load_any("default" if model is None else model)
        try:
            self.device = torch.device(device)
            if self.device.type == "cuda" and not torch.cuda.is_available():
                raise RuntimeError("no CUDA device is available here")
            self.model.to(self.device)
        except RuntimeError as error:
            raise ValueError(f"device {device!r}: {str(error).splitlines()[0]}") from None
        if segment_s is None:
            segment_s = max(10.0, 4 * self.model.receptive_field / self.model.sample_rate)
        if not 0 < segment_s < 24 * 3600 or not 0 <= overlap < 1 or not 0 < threshold < 1:
            raise ValueError(f"need segment_s > 0, 0 <= overlap < 1 and 0 < threshold < 1, got "
                             f"{segment_s}, {overlap}, {threshold}")
        if batch is not None and batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        if isinstance(shifts, bool) or not isinstance(shifts, int) or shifts < 1:
            raise ValueError(f"shifts must be an integer >= 1, got {shifts!r}")
        self.shifts = shifts
        self.batch = batch or (CUDA_BATCH if self.device.type == "cuda" else 1)
        self.precision = separation_precision(precision, self.model, self.device)
        self.segment_s = segment_s
        self.overlap = overlap
        self.threshold = threshold
        self.request = make_request(self.model, stems, instruments)
        self.other = self.request.run.index(OTHER) if consistency and OTHER in self.request.run else None
        # Only when the outputs are meant to add up to the mixture: every source, one of them other.
        complete = self.request.run == list(self.model.sources) and OTHER in self.request.run
        if fit_gains is None:
            fit_gains = bool(getattr(self.model, "separator_options", {}).get("fit_gains", False))
        self.fit_gains = fit_gains and complete

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def stems(self) -> list[str]:
        """The stems a separation returns (a blind model's may drop those it finds absent)."""
        return list(self.request.keep)

    def told(self, instruments: list[str]) -> Separator:
        """An informed model's separator with the same settings, told that ``instruments`` play."""
        return Separator(self.model, device=str(self.device), segment_s=self.segment_s, overlap=self.overlap,
                         instruments=instruments, threshold=self.threshold, consistency=self.other is not None,
                         fit_gains=self.fit_gains, batch=self.batch, precision=self.precision, shifts=self.shifts)

    def consistent(self, stems: np.ndarray, mixture: np.ndarray) -> np.ndarray:
        """(n_run, channels, time) with what they miss of ``mixture (channels, time)`` added to ``other``."""
        if self.other is not None:
            stems[self.other] += mixture - stems.sum(axis=0)
        return stems

    def track(self, sample_rate: int, channels: int) -> Track:
        return Track(self, sample_rate, channels)

    def detected(self, track: Track) -> dict[str, float] | None:
        """Blind models: every source's presence probability over the track; else None."""
        if track.presence is None:
            return None
        return {name: round(float(p), 4) for name, p in zip(self.model.sources, track.presence)}

    def kept(self, track: Track) -> list[str]:
        """The stems a finished track keeps: those asked for, less those a blind model finds absent."""
        probabilities = self.detected(track)
        return [s for s in self.request.keep if probabilities is None or probabilities[s] >= self.threshold]

    # -- in memory --------------------------------------------------------------------------
    def separate(self, audio, sample_rate: int | None = None) -> dict:
        """Stems of ``audio``: a float tensor or array ``(channels, time)`` or ``(time,)`` at
        ``sample_rate`` (default: the model's), or a file path. Returns ``{stem: same kind and
        shape}``, tensors on the CPU (a file gives float32 arrays ``(channels, time)``);
        ``self.last_detections`` holds a blind model's probabilities."""
        if isinstance(audio, (str, os.PathLike)):
            info = open_audio(audio)
            blocks: Iterable[np.ndarray] = read_blocks(info, round(BLOCK_S * info.sample_rate))
            stems = self._separate_blocks(blocks, info.sample_rate, info.channels)
            return {name: np.concatenate(parts, axis=-1) for name, parts in stems.items()}
        as_tensor = isinstance(audio, torch.Tensor)
        array = audio.detach().cpu().float().numpy() if as_tensor else np.asarray(audio, dtype=np.float32)
        if not as_tensor and not np.issubdtype(np.asarray(audio).dtype, np.floating):
            raise ValueError(f"audio must be float samples in [-1, 1], got {np.asarray(audio).dtype}")
        squeeze = array.ndim == 1
        array = array[None] if squeeze else array
        if array.ndim != 2 or array.shape[0] not in (1, 2):
            raise ValueError(f"audio must be (channels, time) with 1 or 2 channels, or (time,); got {audio.shape}")
        if array.shape[-1] == 0:
            raise ValueError("audio has no samples")
        if not np.isfinite(array).all():
            raise ValueError("audio has non-finite samples (NaN or inf)")
        rate = sample_rate or self.sample_rate
        block = round(BLOCK_S * rate)  # in blocks, as from a file: the same bounded working set
        blocks = [array[:, i:i + block] for i in range(0, array.shape[-1], block)]
        stems = self._separate_blocks(blocks, rate, array.shape[0])
        out = {}
        for name, parts in stems.items():
            stem = np.concatenate(parts, axis=-1)
            stem = stem[0] if squeeze else stem
            out[name] = torch.from_numpy(stem).to(audio.dtype) if as_tensor else stem
        return out

    def _separate_blocks(self, blocks: Iterable[np.ndarray], sample_rate: int, channels: int) -> dict[str, list]:
        track = self.track(sample_rate, channels)
        stems: dict[str, list] = {name: [] for name in self.request.run}
        for out in track.run(blocks):
            for name, part in zip(self.request.run, out):
                stems[name].append(part)
        self.last_detections = self.detected(track)
        return {name: stems[name] for name in self.kept(track)}

    # -- files --------------------------------------------------------------------------------
    def separate_file(self, path: str | Path, out: str | Path, template: str = DEFAULT_TEMPLATE,
                      format: str = "wav", bits: str = "float", clip: str = "rescale", force: bool = False,
                      progress: Callable[[float], None] | None = None) -> FileResult:
        """Separate one file into stem files under ``out`` (see :class:`FileJob`)."""
        return FileJob(self, Path(path), Path(out), template, format, bits, clip, force).run(progress)


def shift_offsets(shifts: int, sample_rate: int) -> list[int]:
    """The delays, in samples, of the ``shifts`` runs of each segment: spread evenly over
    :data:`MAX_SHIFT_S`, the first 0 (one shift: the segment as it comes)."""
    span = MAX_SHIFT_S * sample_rate
    return [round(i * span / shifts) for i in range(shifts)]


def _with_last(items: Iterable) -> Iterator[tuple]:
    """(item, is_last) pairs; a lookahead of one."""
    iterator = iter(items)
    try:
        current = next(iterator)
    except StopIteration:
        return
    for following in iterator:
        yield current, False
        current = following
    yield current, True


@dataclass
class FileResult:
    path: Path
    status: str  # "separated" | "skipped"
    outputs: list[Path]
    duration_s: float = 0.0
    detections: dict[str, float] | None = None


def stem_path(out: Path, template: str, track: str, stem: str, ext: str) -> Path:
    """Where a stem goes: ``out / template`` with {track}, {stem}, {ext} filled in."""
    if "{stem}" not in template:
        raise ValueError(f"bad --filename template {template!r}: it needs {{stem}}, or every stem gets one name")
    try:
        relative = template.format(track=track, stem=stem, ext=ext)
    except (KeyError, IndexError, ValueError, AttributeError) as error:
        raise ValueError(f"bad --filename template {template!r}: use {{track}}, {{stem}} and {{ext}} ({error})") from None
    path = Path(relative)
    if path.is_absolute() or ".." in path.parts or not path.name:
        raise ValueError(f"bad --filename template {template!r}: it must stay inside the output folder")
    return out / path


class FileJob:
    """One file separated into stem files, atomically.

    Stems are first written as float32 files hidden beside their destinations (``.NAME.partial``);
    the peak over all stems decides the clipping (``rescale``: one gain for every stem, so that the
    loudest peak is just under full scale and the stems still sum to the scaled input; ``clamp``:
    samples cut at full scale; ``none``: untouched, except that integer formats cannot hold samples
    beyond full scale); then each stem is written in its final format and renamed into place. On
    any error every hidden file is removed, so nothing complete-looking is left.
    """

    def __init__(self, separator: Separator, path: Path, out: Path, template: str, format: str, bits: str,
                 clip: str, force: bool):
        subtype(format, bits)  # fails early on an impossible pair
        if clip not in CLIP_POLICIES:
            raise ValueError(f"unknown clipping policy {clip!r}: use one of {', '.join(CLIP_POLICIES)}")
        self.separator, self.path, self.out = separator, path, out
        self.format, self.bits, self.clip, self.force = format, bits, clip, force
        track = path.stem
        self.targets = {s: stem_path(out, template, track, s, format) for s in separator.request.run}
        self.report = (stem_path(out, template, track, DETECTIONS, "json")
                       if separator.model.spec.setting == "blind" else None)
        self.temporaries: list[Path] = []

    def done(self) -> bool:
        """Already separated: every stem this run would keep is there (for blind models, the
        detection report of a run that asked for the same stems: it lists what was kept)."""
        if self.report is not None:
            try:
                report = json.loads(self.report.read_text())
            except (OSError, ValueError):
                return False
            return (report.get("requested") == self.separator.request.keep
                    and report.get("threshold") == self.separator.threshold
                    and all(self.targets[s].is_file() for s in report.get("kept", [])))
        return all(self.targets[s].is_file() for s in self.separator.request.keep)

    def _hidden(self, path: Path, suffix: str) -> Path:
        hidden = path.with_name(f".{path.name}.{suffix}-{os.getpid()}")
        self.temporaries.append(hidden)
        return hidden

    def run(self, progress: Callable[[float], None] | None = None) -> FileResult:
        if not self.force and self.done():
            return FileResult(self.path, "skipped", [])
        info = open_audio(self.path)
        made = [p for p in {t.parent for t in self.targets.values()} if not p.exists()]
        try:
            return self._separate(info, progress)
        except BaseException:
            for folder in sorted(made, key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):  # only if this run left it empty
                    folder.rmdir()
            raise
        finally:
            for temporary in self.temporaries:
                temporary.unlink(missing_ok=True)

    def _separate(self, info: AudioInfo, progress) -> FileResult:
        separator = self.separator
        run = separator.request.run
        wanted = separator.request.keep  # the stems written (a blind model may drop some at the end)
        for target in self.targets.values():
            target.parent.mkdir(parents=True, exist_ok=True)
        floats = {s: self._hidden(self.targets[s], "partial") for s in wanted}
        writers = {s: soundfile.SoundFile(str(p), "w", info.sample_rate, info.channels, "FLOAT", format="W64")
                   for s, p in floats.items()}
        peak = 0.0
        frames = 0
        try:
            track = separator.track(info.sample_rate, info.channels)
            for out in track.run(read_blocks(info, round(BLOCK_S * info.sample_rate)), progress):
                out = out[[run.index(stem) for stem in wanted]]
                for stem, part in zip(wanted, out):
                    writers[stem].write(part.T)
                peak = max(peak, float(np.abs(out).max(initial=0.0)))
                frames += out.shape[-1]
        finally:
            for writer in writers.values():
                writer.close()
        detections = separator.detected(track)
        kept = separator.kept(track)
        gain = 1.0
        if self.clip == "rescale" and peak > FULL_SCALE:
            gain = FULL_SCALE / peak
        outputs = []
        finals = {s: self._hidden(self.targets[s], "final") for s in kept}
        for stem in kept:
            self._convert(floats[stem], finals[stem], info, frames, gain)
        for stem in kept:  # every stem is complete before any is put in place
            os.replace(finals[stem], self.targets[stem])
            outputs.append(self.targets[stem])
        if self.report is not None:
            hidden = self._hidden(self.report, "partial")
            hidden.write_text(json.dumps({
                "file": str(self.path), "threshold": separator.threshold, "probabilities": detections,
                "requested": wanted, "kept": kept}, indent=1) + "\n")
            os.replace(hidden, self.report)
            outputs.append(self.report)
            for stem in set(wanted) - set(kept):  # judged absent now: an older run's file would mislead
                self.targets[stem].unlink(missing_ok=True)
        return FileResult(self.path, "separated", outputs, info.frames / info.sample_rate, detections)

    def _convert(self, source: Path, target: Path, info: AudioInfo, frames: int, gain: float):
        integer = self.bits != "float"
        with soundfile.SoundFile(str(source)) as reader, \
                open_writer(target, info.sample_rate, info.channels, frames, self.format, self.bits) as writer:
            for block in reader.blocks(blocksize=round(BLOCK_S * info.sample_rate), dtype="float32", always_2d=True):
                if gain != 1.0:
                    block = block * np.float32(gain)
                if self.clip == "clamp" or integer:
                    # Integer samples cannot go past full scale: libsndfile would wrap them around.
                    block = np.clip(block, -1.0, INT_MAX if integer else 1.0)
                writer.write(block)


FULL_SCALE = 0.999  # rescale target: the loudest stem peak after rescaling
INT_MAX = 1.0 - 2.0 ** -15  # just under +1.0, which 16-bit cannot hold
