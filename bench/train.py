"""Model benchmark: size, receptive field, training and inference speed of every separator.

wavesep's own models (:data:`wavesep.models.WAVESEP_MODELS`; ``--models`` also takes the peer adapters)
at their default config, built for the six sources of
the ``band`` stem set, stereo, 44.1 kHz, fixed setting. Measured, on random audio:

- *parameters*, in millions, and the *receptive field* (``model.receptive_field``), in samples and ms;
- *training throughput*: seconds of mixture audio per wall-second through forward, MAE loss
  (:func:`wavesep.losses.mae`), backward and an Adam step, on ``--train-batch`` x
  ``--train-segment`` s batches; one warm-up step (one example), then the median of ``--steps``
  timed steps. A model whose warm-up step says a full batch would take longer than
  ``--step-budget-s`` is timed on a smaller batch (the note column says so): the original WaveNet
  at 44.1 kHz would need minutes and tens of GB of memory per 4 x 1 s step on a CPU. Throughput is
  per audio second, so the rows stay comparable;
- *inference*: the real-time factor (wall seconds per audio second) on one ``--seconds`` s mixture
  under ``torch.inference_mode()``; one warm-up on a 1 s input, then the median of ``--repeats`` runs;
- both speeds relative to the ``wavenet`` row (the original study's design), from the same run.

With the defaults it takes about four minutes on a 2-core CPU, most of it for the WaveNet.

    python bench/train.py [--models conv wavenet ...] [--threads 2] [--device cpu|cuda] [--amp]
                          [--train-batch 4] [--train-segment 1.0] [--steps 3] [--seconds 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from wavesep.instruments import get_stem_set
from wavesep.losses import mae
from wavesep.models import MODELS, WAVESEP_MODELS, ModelSpec, SeparationModel, build_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import machine  # noqa: E402  (bench/ is no package: its sibling script's helper)

SAMPLE_RATE = 44100
CHANNELS = 2
REFERENCE = "wavenet"  # the original study's design: the speed ratios are against it
WARMUP_SECONDS = 1.0  # inference warm-up input length


def autocast(args) -> contextlib.AbstractContextManager:
    """bfloat16 autocast with ``--amp`` (cuda only), else nothing."""
    if args.amp:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def timed(fn, device: str) -> float:
    """Wall seconds of ``fn()``, the device synchronised on both sides."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def random_batch(batch: int, samples: int, n_sources: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A mixture (batch, channels, samples) and targets (batch, n_sources, channels, samples)."""
    mixture = torch.randn(batch, CHANNELS, samples, device=device)
    targets = torch.randn(batch, n_sources, CHANNELS, samples, device=device)
    return mixture, targets


def train_step(model: SeparationModel, optimizer: torch.optim.Optimizer, mixture: torch.Tensor,
               targets: torch.Tensor, args):
    optimizer.zero_grad(set_to_none=True)
    with autocast(args):
        loss = mae(model(mixture).stems.float(), targets)
    loss.backward()
    optimizer.step()


def train_throughput(model: SeparationModel, args) -> dict:
    """Training audio seconds per wall second, and the batch it was measured on."""
    segment_samples = round(args.train_segment * SAMPLE_RATE)
    n_sources = model.spec.n_sources
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    # Warm-up on one example; it also tells how long a full batch would take.
    batch = random_batch(1, segment_samples, n_sources, args.device)
    warmup_s = timed(lambda: train_step(model, optimizer, *batch, args), args.device)
    batch_size = max(1, min(args.train_batch, math.floor(args.step_budget_s / warmup_s)))
    batch = random_batch(batch_size, segment_samples, n_sources, args.device)
    step_s = [timed(lambda: train_step(model, optimizer, *batch, args), args.device) for _ in range(args.steps)]
    median_step_s = statistics.median(step_s)
    return {"audio_per_wall": batch_size * args.train_segment / median_step_s, "step_s": median_step_s,
            "batch": batch_size, "warmup_s": warmup_s}


def inference_rtf(model: SeparationModel, args) -> float:
    """Median wall seconds per audio second on one ``args.seconds`` s mixture."""
    model.eval()
    with torch.inference_mode(), autocast(args):
        warmup = torch.randn(1, CHANNELS, round(WARMUP_SECONDS * SAMPLE_RATE), device=args.device)
        timed(lambda: model(warmup), args.device)
        mixture = torch.randn(1, CHANNELS, round(args.seconds * SAMPLE_RATE), device=args.device)
        runs_s = [timed(lambda: model(mixture), args.device) for _ in range(args.repeats)]
    return statistics.median(runs_s) / args.seconds


def bench_model(name: str, sources: tuple[str, ...], args) -> dict:
    """One table row: size, receptive field, training throughput and inference speed of ``name``."""
    torch.manual_seed(0)
    spec = ModelSpec(sources=sources, sample_rate=SAMPLE_RATE, audio_channels=CHANNELS, setting="fixed")
    model = build_model(name, spec).to(args.device)
    row = {"model": name, "parameters": model.n_parameters(), "receptive_field_samples": model.receptive_field}
    print(f"{name}: training ...", file=sys.stderr, flush=True)
    row["train"] = train_throughput(model, args)
    print(f"{name}: inference ...", file=sys.stderr, flush=True)
    row["rtf"] = inference_rtf(model, args)
    del model
    gc.collect()
    if args.device == "cuda":
        torch.cuda.empty_cache()
    return row


def ratio(value: float, reference: float | None) -> str:
    return "-" if reference is None else f"{value / reference:.2f}x"


def table(rows: list[dict], args) -> list[str]:
    """The Markdown table; speed ratios are "times as fast as wavenet" (higher is faster)."""
    reference = next((row for row in rows if row["model"] == REFERENCE), None)
    ref_train = reference["train"]["audio_per_wall"] if reference else None
    ref_speed = 1 / reference["rtf"] if reference else None
    lines = [
        "| model | parameters (M) | receptive field (samples) | receptive field (ms) | train (audio s / wall s) "
        f"| train speed vs {REFERENCE} | inference RTF (wall s / audio s) | inference speed vs {REFERENCE} | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        train = row["train"]
        notes = ["reference"] if row["model"] == REFERENCE else []
        if train["batch"] != args.train_batch:
            notes.append(f"trained on {train['batch']} x {args.train_segment:g} s batches, not "
                         f"{args.train_batch} (a full batch: about {train['warmup_s'] * args.train_batch:.0f} s "
                         f"per step, over --step-budget-s {args.step_budget_s:g})")
        field_samples = row["receptive_field_samples"]
        lines.append(
            f"| {row['model']} | {row['parameters'] / 1e6:.2f} | {field_samples} | {field_samples / SAMPLE_RATE * 1000:.1f} "
            f"| {train['audio_per_wall']:.3g} | {ratio(train['audio_per_wall'], ref_train)} "
            f"| {row['rtf']:.3g} | {ratio(1 / row['rtf'], ref_speed)} | {'; '.join(notes)} |"
        )
    return lines


def header(args, n_sources: int) -> list[str]:
    device = "cpu" if args.device == "cpu" else f"cuda ({torch.cuda.get_device_name()})"
    precision = "bfloat16 autocast" if args.amp else "float32"
    return [
        f"Separators at their default configs: band stem set ({n_sources} sources), stereo {SAMPLE_RATE / 1000:g} kHz, "
        f"fixed setting; training {args.train_batch} x {args.train_segment:g} s batches (median of {args.steps} "
        f"steps), inference on {args.seconds:g} s (median of {args.repeats})",
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"device {device}, {precision}",
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=WAVESEP_MODELS)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--amp", action="store_true", help="cuda only: bfloat16 autocast")
    parser.add_argument("--train-batch", type=int, default=4, help="examples per training step (default 4)")
    parser.add_argument("--train-segment", type=float, default=1.0, help="seconds per example (default 1.0)")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (default 3)")
    parser.add_argument("--step-budget-s", type=float, default=15.0,
                        help="a model whose full training batch would take longer per step is timed on "
                             "a smaller one (default 15)")
    parser.add_argument("--seconds", type=float, default=10.0, help="inference input length (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed inference runs (default 3)")
    args = parser.parse_args(argv)
    if args.amp and args.device != "cuda":
        parser.error("--amp needs --device cuda")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device available")
    if min(args.threads, args.train_batch, args.steps, args.repeats) < 1:
        parser.error("--threads, --train-batch, --steps and --repeats must be at least 1")
    if min(args.train_segment, args.seconds, args.step_budget_s) <= 0:
        parser.error("--train-segment, --seconds and --step-budget-s must be positive")
    return args


def main(argv: list[str] | None = None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    sources = tuple(get_stem_set("band").names)
    start = time.perf_counter()
    rows = [bench_model(name, sources, args) for name in args.models]
    print("\n".join(["", *header(args, len(sources)), "", *table(rows, args)]))
    print(f"\n(whole benchmark: {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
