"""Chunked overlap-add: a separator run over a track of any length with bounded memory.

The track is cut into segments of ``segment`` samples that start every ``hop`` samples (``hop =
segment - overlap``). Each segment's output is weighted by a trapezoid window (linear ramps of
``overlap`` samples at both ends) and the weighted outputs are summed and divided by the summed
weights. The division makes the blend exact whatever the layout: an identity model gives back
its input, the ramps hide the seams (no click where one segment's context ends, no level dip
where two overlap), and a final segment shifted to end with the track needs no padding.

:class:`OverlapAdd` does this on a stream: blocks of input go in, finished output comes out as
soon as no later segment can touch it, so memory depends on the segment, never the track.
With ``batch``, it gathers that many segments and runs them in one call (a GPU is idle on one
segment at a time), holding ``batch`` hops more of the track. :func:`overlap_add` runs it over a
whole tensor.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# (channels, segment time) -> (outputs, channels, segment time), or with OverlapAdd's batch:
# (segments, channels, segment time) -> (segments, outputs, channels, segment time)
SegmentModel = Callable[[torch.Tensor], torch.Tensor]


def crossfade_window(length: int, overlap: int) -> torch.Tensor:
    """Trapezoid weights ``(length,)``: ramps of ``overlap`` samples up and down, never zero.

    The ramps run from ``1/(overlap+1)`` to ``overlap/(overlap+1)``, so a sample covered by one
    segment only (a track's first and last samples) still has a positive weight to divide by.
    """
    window = torch.ones(length, dtype=torch.float64)
    ramp = min(overlap, length // 2)
    if ramp:
        up = torch.arange(1, ramp + 1, dtype=torch.float64) / (ramp + 1)
        window[:ramp] = up
        window[length - ramp:] = up.flip(0)
    return window


def segment_starts(length: int, segment: int, hop: int) -> list[int]:
    """Where the segments covering ``length`` samples start: every ``hop``, and one last segment
    ending with the track when the regular ones stop short of it."""
    if length <= segment:
        return [0]
    starts = list(range(0, length - segment + 1, hop))
    if starts[-1] + segment < length:
        starts.append(length - segment)
    return starts


class OverlapAdd:
    """Streamed overlap-add of ``model`` over a track (see the module docstring).

    Args:
        model: separates one segment, ``(channels, time) -> (outputs, channels, time)``; it is
            called with ``segment`` samples, or fewer for a track shorter than one segment.
        segment: segment length in samples.
        overlap: samples shared by consecutive segments, ``0 <= overlap < segment``.
        batch: if given, ``model`` takes up to this many segments at once, stacked on a first
            dimension, and returns their outputs stacked the same way; the output then comes
            out a batch of segments at a time. None: one segment per call, without that dimension.

    ``push(block)`` takes ``(channels, n)`` input and returns the output it finished, ``(outputs,
    channels, m)``; ``finish()`` returns the rest. The outputs concatenated are as long as the
    inputs.
    """

    def __init__(self, model: SegmentModel, segment: int, overlap: int, batch: int | None = None):
        if segment < 1 or not 0 <= overlap < segment:
            raise ValueError(f"need segment >= 1 and 0 <= overlap < segment, got {segment} and {overlap}")
        if batch is not None and batch < 1:
            raise ValueError(f"need batch >= 1, got {batch}")
        self.model = model
        self.batch = batch
        self._waiting: list[int] = []  # track positions of regular segments not yet run
        self.segment = segment
        self.hop = segment - overlap
        self.window = crossfade_window(segment, overlap)
        self._input: torch.Tensor | None = None  # (channels, time) from track sample _origin
        self._origin = 0  # track position of _input[..., 0] and of the accumulators
        self._next_start = 0  # track position of the next regular segment
        self._total = None  # (outputs, channels, time) float64 sum of weighted outputs
        self._weight = None  # (time,) float64 sum of weights
        self._emitted = 0  # track samples already returned

    @property
    def held(self) -> int:
        """Samples held (input and blended output): bounded by the segment, not the track."""
        return sum(t.shape[-1] for t in (self._input, self._weight) if t is not None)

    def push(self, block: torch.Tensor) -> torch.Tensor | None:
        if block.dim() != 2:
            raise ValueError(f"a block is (channels, time), got {tuple(block.shape)}")
        self._input = block if self._input is None else torch.cat([self._input, block], dim=-1)
        end = self._origin + self._input.shape[-1]
        done = []
        while self._next_start + self.segment <= end:
            self._waiting.append(self._next_start)
            self._next_start += self.hop
            if len(self._waiting) < (self.batch or 1):
                continue
            self._run_waiting()
            # Samples before the next regular segment are final: the shifted last segment, if
            # one is needed at all, starts at (track length - segment) >= end - segment. Released
            # batch by batch, so a long block never makes the accumulators long.
            done.append(self._release(min(self._next_start, end - self.segment)))
        done = [part for part in done if part is not None]
        return torch.cat(done, dim=-1) if done else None

    def finish(self) -> torch.Tensor | None:
        if self._input is None:
            return None
        self._run_waiting()
        end = self._origin + self._input.shape[-1]
        covered = self._next_start - self.hop + self.segment if self._next_start else 0
        if covered < end:  # the regular segments stopped short of the track's end
            start = max(0, end - self.segment)
            self._run([start], end - start)
        return self._release(end)

    def _run_waiting(self):
        if self._waiting:
            self._run(self._waiting, self.segment)
            self._waiting = []

    def _run(self, starts: list[int], length: int):
        """Run the model on the segments of ``length`` samples at track positions ``starts`` and
        add their weighted outputs to the accumulators."""
        offsets = [start - self._origin for start in starts]
        segments = [self._input[..., offset:offset + length] for offset in offsets]
        if self.batch is None:
            outs = [self.model(segment) for segment in segments]  # (outputs, channels, length) each
        else:
            outs = list(self.model(torch.stack(segments)))
        window = self.window if length == self.segment else crossfade_window(length, self.segment - self.hop)
        if self._total is None:
            self._total = torch.zeros(*outs[0].shape[:2], 0, dtype=torch.float64)
            self._weight = torch.zeros(0, dtype=torch.float64)
        grow = offsets[-1] + length - self._weight.shape[0]
        if grow > 0:
            self._total = torch.cat([self._total, self._total.new_zeros(*outs[0].shape[:2], grow)], dim=-1)
            self._weight = torch.cat([self._weight, self._weight.new_zeros(grow)])
        for offset, out in zip(offsets, outs):
            self._total[..., offset:offset + length] += out.double() * window
            self._weight[offset:offset + length] += window

    def _release(self, until: int) -> torch.Tensor | None:
        """Return the finished output before track sample ``until`` and drop what it needed."""
        count = until - self._emitted
        if count <= 0 or self._total is None:
            return None
        out = (self._total[..., :count] / self._weight[:count]).float()
        self._total = self._total[..., count:]
        self._weight = self._weight[count:]
        self._input = self._input[..., count:]
        self._origin += count
        self._emitted = until
        return out


def overlap_add(model: SegmentModel, mixture: torch.Tensor, segment: int, overlap: int,
                batch: int | None = None) -> torch.Tensor:
    """Run ``model`` over ``mixture (channels, time)`` in overlapping segments (``batch``: as
    :class:`OverlapAdd`'s): ``(outputs, channels, time)``."""
    if mixture.shape[-1] == 0:
        raise ValueError("cannot separate an empty mixture (0 samples)")
    blender = OverlapAdd(model, segment, overlap, batch)
    parts = [blender.push(mixture), blender.finish()]
    return torch.cat([part for part in parts if part is not None], dim=-1)
