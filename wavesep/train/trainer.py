"""The training loop: one optimiser step per batch, validation, checkpoints, resumption, DDP.

A run directory holds::

    config.yaml      the resolved config (``--resume`` reads it back)
    last.pt          the latest checkpoint: everything ``--resume`` needs
    best.pt          the weights with the best validation SI-SDR so far
    log.jsonl        one line per log step, validation and skipped step
    tensorboard/     losses, validation scores, audio examples

Checkpoints are written only between steps, by the main process, atomically. An interrupted run
(Ctrl-C, a killed process, a machine gone) resumes from ``last.pt`` and continues exactly as if it
had never stopped: weights, optimiser, schedule, loss scale, step, data position and random state
are restored. A step whose loss or gradient is not finite is skipped and logged; ``max_bad_steps``
of them in a row stop the run with :class:`TrainingStopped`, leaving the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import shutil
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from wavesep.instruments import get_stem_set
from wavesep.losses import LossMix
from wavesep.models import ModelSpec, SeparationModel, build_model
from wavesep.models.base import native_bf16
from wavesep.train import distributed
from wavesep.train.average import WeightAverage
from wavesep.train.checkpoint import checkpoint_payload, read_checkpoint, save_atomic
from wavesep.train.config import Config, load_config
from wavesep.train.data import (BatchStream, describe_data, make_train_dataset, make_valid_set, presence_labels,
                                resolve_source)
from wavesep.train.validation import run_setting, validate

CONFIG_FILE, LAST, BEST, LOG = "config.yaml", "last.pt", "best.pt", "log.jsonl"


BUDGET_BAR = "{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}{postfix}]"


class TrainingStopped(RuntimeError):
    """The run cannot go on (non-finite losses); the message says which checkpoint is left."""


@dataclass
class RunResult:
    run_dir: Path
    step: int
    best_score: float  # best mean validation SI-SDR (dB)
    best_step: int | None
    last_loss: float
    main: bool = True  # the process that reports (rank 0)


def model_spec(config: Config) -> ModelSpec:
    m, d = config.model, config.data
    return ModelSpec(sources=tuple(get_stem_set(d.stem_set).names), sample_rate=d.sample_rate,
                     audio_channels=d.channels, setting=m.setting, informed_by=m.informed_by,
                     condition_dim=m.condition_dim)


def _schedule(config: Config, budget_used: Callable[[], float]):
    """The learning-rate factor per step: linear warm-up, then constant or a cosine to 0 at the end
    of the run, the last step or the end of ``training.budget_s`` (``budget_used()`` seconds spent),
    whichever comes first."""
    o, t = config.optim, config.training

    def factor(step: int) -> float:
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "cosine":
            progress = (step - o.warmup_steps) / max(1, t.steps - o.warmup_steps)
            if t.budget_s:
                progress = max(progress, budget_used() / t.budget_s)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return factor


def cpu_name() -> str:
    """The CPU's model name ('AMD EPYC', 'Intel(R) Xeon(R) ...'), for the checkpoint and the benchmarks."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _hardware(process: distributed.Process) -> str:
    """What trained, for the checkpoint: '2 x NVIDIA H100 80GB HBM3', '1 x Intel(R) Xeon(R) ... (2 threads)'."""
    if process.device.type == "cuda":
        name = torch.cuda.get_device_name(process.device)
    else:
        name = f"{cpu_name()} ({torch.get_num_threads()} threads)"
    return f"{process.world_size} x {name}"


class Trainer:
    """Train ``config`` in ``run_dir``; ``resume`` continues the run saved there.

    Use :func:`train` rather than this class directly: it also starts and stops the process group.
    """

    def __init__(self, config: Config, run_dir: str | Path, process: distributed.Process, resume: bool = False,
                 progress: bool = True):
        self.config, self.run_dir, self.process, self.progress = config, Path(run_dir), process, progress
        t = config.training
        if not resume and (self.run_dir / LAST).exists():  # every process raises, none waits for the others
            raise ValueError(f"{self.run_dir}: already holds a run; continue it with --resume {self.run_dir} "
                             f"or choose another --run-dir")
        if process.main:
            self._prepare_run_dir(resume)
        process.barrier()
        torch.manual_seed(t.seed)
        self.model: SeparationModel = build_model(config.model.name, model_spec(config), config.model.args)
        self.model.to(process.device)
        o = config.optim
        optimizer = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        self.optimizer = optimizer(self.model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        # Through a weak reference: a cycle would keep the trainer, and its DDP state, alive past
        # the process group's end, until the interpreter's last collection.
        trainer = weakref.ref(self)
        spent = lambda: getattr(trainer(), "budget_used_s", 0.0)  # noqa: E731 (set once the run is restored)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(config, spent))
        cuda = process.device.type == "cuda"
        # bfloat16 where the device has it natively (not emulated); on a GPU without it float16
        # with loss scaling; on a CPU without it float32.
        bf16 = native_bf16(process.device)
        self.amp_dtype = torch.bfloat16 if bf16 else torch.float16
        self.amp = t.amp if cuda else t.cpu_amp and bf16  # native_bf16 is False for other devices
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)
        self.loss = LossMix(t.losses)
        self.average = WeightAverage(self.model, t.ema) if t.ema else None
        self.generator = torch.Generator().manual_seed(t.seed * 7919 + process.rank)  # informed-training queries

        if process.main:
            resolve_source(config, self.run_dir)  # may write generated songs: the main process first
        process.barrier()
        source = resolve_source(config, self.run_dir)
        dataset = make_train_dataset(config, source)
        self.training_data = describe_data(config, source, dataset)
        self.batches = BatchStream(dataset, config)
        self.valid = make_valid_set(config, source) if process.main else None

        self.step, self.best_score, self.best_step, self.elapsed_s = 0, float("-inf"), None, 0.0
        self.budget_used_s = 0.0  # see TrainingSection.budget_s
        self.steps_wall_s = 0.0  # wall-clock seconds of the same steps: with CPU seconds, the CPU share they had
        cpu = process.device.type != "cuda"
        self.budget_clock = time.process_time if cpu else time.perf_counter
        self.budget_unit = "CPU seconds" if cpu else "seconds"
        if resume:
            self._load(self.run_dir / LAST)
        self.net = self.model
        if process.distributed:
            device_ids = [process.device.index] if cuda else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        self.writer = None
        if process.main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step + 1 if resume else None)

    # -- run directory and checkpoints ---------------------------------------------------------
    def _prepare_run_dir(self, resume: bool):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:  # what a run that died before its first checkpoint left
            (self.run_dir / LOG).unlink(missing_ok=True)
            shutil.rmtree(self.run_dir / "tensorboard", ignore_errors=True)
        (self.run_dir / CONFIG_FILE).write_text(self.config.to_yaml())

    def _provenance(self) -> dict:
        """How the weights were trained: budget used, hardware, processes, arithmetic, data."""
        return {"budget_used_s": self.budget_used_s, "budget_unit": self.budget_unit,
                "hardware": _hardware(self.process), "world_size": self.process.world_size,
                "precision": str(self.amp_dtype).removeprefix("torch.") if self.amp else "float32",
                "training_data": self.training_data}

    def _training_state(self) -> dict:
        state = {
            "step": self.step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(), "data": self.process.gather(self.batches.state_dict()),
            "rng": self.process.gather(torch.get_rng_state()),
            "generator": self.process.gather(self.generator.get_state()),
            "best_score": self.best_score, "best_step": self.best_step, "elapsed_s": self.elapsed_s,
            "steps_wall_s": self.steps_wall_s, **self._provenance(),
            "examples": self.step * self.config.training.batch_size * self.process.world_size,
        }
        if self.average is not None:
            state["average"] = self.average.state_dict()
        if self.process.device.type == "cuda":
            state["cuda_rng"] = self.process.gather(torch.cuda.get_rng_state(self.process.device))
        return state

    def _save(self, name: str, training: dict):
        save_atomic(checkpoint_payload(self.model, self.config.to_dict(), training), self.run_dir / name)

    def _load(self, path: Path):
        payload = read_checkpoint(path, map_location=self.process.device)
        try:
            state = payload["training"]
            self.model.load_state_dict(payload["state_dict"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
            if self.average is not None:
                self.average.load_state_dict(state["average"])
        except (KeyError, RuntimeError, ValueError) as error:
            reason = str(error).strip().splitlines()[0]
            raise ValueError(f"{path}: cannot resume from it with this config ({reason})") from None
        self.step, self.elapsed_s = state["step"], state["elapsed_s"]
        self.budget_used_s = state.get("budget_used_s", 0.0)
        self.steps_wall_s = state.get("steps_wall_s", 0.0)
        self.best_score, self.best_step = state["best_score"], state["best_step"]
        rank = self.process.rank
        if state["world_size"] == self.process.world_size:
            self.batches.load_state_dict(state["data"][rank])
            self.generator.set_state(state["generator"][rank].cpu())
        else:  # another world size: each rank's stream is new; the order differs from an unbroken run
            self._log({"step": self.step, "warning": f"resumed with {self.process.world_size} processes "
                       f"instead of {state['world_size']}: data order differs from an uninterrupted run"})
            data = dict(state["data"][0])
            if "batches" in data:
                data["batches"] = 0
            self.batches.load_state_dict(data)
        # After the data stream, whose new DataLoader iterator draws from the global generator.
        own = rank if state["world_size"] == self.process.world_size else 0
        torch.set_rng_state(state["rng"][own].cpu())
        if "cuda_rng" in state and self.process.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"][own].cpu(), self.process.device)
        if self.process.main:
            self._trim_log()

    def _trim_log(self):
        """Drop log records of steps after the checkpoint: the resumed run writes them again."""
        path = self.run_dir / LOG
        if path.exists():
            lines = path.read_text().splitlines()
            kept = [line for line in lines if json.loads(line).get("step", 0) <= self.step]
            path.write_text("".join(line + "\n" for line in kept))

    def _log(self, record: dict):
        if self.process.main:
            with open(self.run_dir / LOG, "a") as handle:
                handle.write(json.dumps(record) + "\n")

    # -- one step --------------------------------------------------------------------------------
    def _train_step(self, mixture: torch.Tensor, stems: torch.Tensor) -> tuple[float, dict, bool]:
        """Forward, backward, update; returns (loss, its terms, whether the update was applied)."""
        device, t = self.process.device, self.config.training
        mixture, stems = mixture.to(device, non_blocking=True), stems.to(device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=self.amp_dtype, enabled=self.amp):
            estimates, references, logits = run_setting(self.net, self.model.spec, mixture, stems, self.generator)
        loss, parts = self.loss(estimates.float(), references)
        if logits is not None:
            presence = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), presence_labels(stems))
            parts["presence"] = float(presence.detach())
            loss = loss + t.presence_weight * presence
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        clip = self.config.optim.grad_clip or float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        value = float(loss.detach())
        # Gradients are averaged across processes, so a bad loss anywhere makes them non-finite
        # everywhere: every process skips the same steps. (A float16 overflow is the scaler's job.)
        finite = math.isfinite(value) and (self.scaler.is_enabled() or bool(torch.isfinite(grad_norm)))
        finite = self.process.all_true(finite)  # every process must take the same branch (collectives follow)
        if finite:
            self.scaler.step(self.optimizer)
            if self.average is not None:
                self.average.update(self.model)
        self.scaler.update()
        self.scheduler.step()
        return value, parts, finite

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> RunResult:
        t, steps = self.config.training, self.config.training.steps
        audio_per_step = t.batch_size * self.process.world_size * self.config.data.segment_s
        bad_in_a_row, loss, last_saved = 0, float("nan"), self.step
        # With a budget the bar counts its seconds, so its rate and time left mean something; the
        # step count (a bound that a budget run does not expect to reach) goes in the postfix.
        budgeted = t.budget_s > 0
        counts = (dict(total=t.budget_s, initial=min(self.budget_used_s, t.budget_s), bar_format=BUDGET_BAR,
                       unit=self.budget_unit.replace("seconds", "s")) if budgeted
                  else dict(total=steps, initial=self.step, unit="step"))
        bar = tqdm(**counts, dynamic_ncols=True, disable=not (self.progress and self.process.main))
        started, start_step = time.perf_counter(), self.step
        self.model.train()
        if self.step == 0:
            self._validate()  # the untrained baseline, for the curves
        try:
            spent = self._budget_spent()
            # The first batch waits for the data workers to start (tens of seconds for a dozen on a
            # GPU machine), which is no training: it is fetched outside the budget's clock.
            first = next(self.batches) if self.step < steps and not spent else None
            while self.step < steps and not spent:
                clock, wall = self.budget_clock(), time.perf_counter()
                mixture, stems = first if first is not None else next(self.batches)
                first = None
                loss, parts, applied = self._train_step(mixture, stems)
                used = self.budget_clock() - clock
                self.budget_used_s += used
                self.steps_wall_s += time.perf_counter() - wall
                self.step += 1
                bar.update(min(used, bar.total - bar.n) if budgeted else 1)
                speed = (self.step - start_step) * audio_per_step / (time.perf_counter() - started)
                if applied:
                    bad_in_a_row = 0
                    bar.set_postfix_str((f"step={self.step}, " if budgeted else "") +
                                        f"loss={loss:.4g}, audio={speed:.1f} s/s")
                    if self.step % t.log_every == 0:
                        self._log_train(loss, parts, speed)
                else:
                    bad_in_a_row += 1
                    self._log({"step": self.step, "skipped": "non-finite loss or gradient", "loss": repr(loss)})
                    bar.write(f"step {self.step}: non-finite loss ({loss}); step skipped "
                              f"({bad_in_a_row} in a row, the limit is {t.max_bad_steps})")
                    if bad_in_a_row >= t.max_bad_steps:
                        left = (f"The last good checkpoint is step {last_saved} in {self.run_dir / LAST}"
                                if (self.run_dir / LAST).exists() else "No checkpoint was written yet")
                        raise TrainingStopped(
                            f"{bad_in_a_row} non-finite losses in a row (steps {self.step - bad_in_a_row + 1}-"
                            f"{self.step}): stopped. {left}; lower optim.lr or set optim.grad_clip")
                # During a run of bad steps, periodic validation and checkpoints wait for a good one.
                spent = self._budget_spent()
                final = self.step == steps or spent
                if final or (applied and self.step % t.valid_every == 0):
                    self._validate()
                if final or (applied and self.step % t.checkpoint_every == 0):
                    self.elapsed_s += time.perf_counter() - started
                    started, start_step = time.perf_counter(), self.step
                    training = self._training_state()  # every process joins the gathers
                    if self.process.main:
                        self._save(LAST, training)
                    last_saved = self.step
        except KeyboardInterrupt:
            raise KeyboardInterrupt(f"interrupted at step {self.step}; the last checkpoint is step {last_saved}: "
                                    f"continue with wavesep train --resume {self.run_dir}") from None
        finally:
            bar.close()
            self.batches.close()
            if self.writer is not None:
                self.writer.close()
        in_sync = self.process.all_equal(sum(float(p.detach().double().sum()) for p in self.model.parameters()))
        self._log({"step": self.step, "done": True, "world_size": self.process.world_size,
                   "budget_used_s": self.budget_used_s, "budget_unit": self.budget_unit,
                   "steps_wall_s": self.steps_wall_s, "threads": torch.get_num_threads(),
                   "ranks_in_sync": in_sync, "best_score": self.best_score, "best_step": self.best_step})
        return RunResult(self.run_dir, self.step, self.best_score, self.best_step, loss, self.process.main)

    def _budget_spent(self) -> bool:
        budget = self.config.training.budget_s
        # Every process stops at the same step (collectives follow): when any of them has spent it.
        return bool(budget) and not self.process.all_true(self.budget_used_s < budget)

    def _log_train(self, loss: float, parts: dict, speed: float):
        lr = self.optimizer.param_groups[0]["lr"]
        self._log({"step": self.step, "loss": loss, **parts, "lr": lr, "audio_s_per_s": speed})
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, self.step)
            for name, value in parts.items():
                self.writer.add_scalar(f"train/{name}", value, self.step)
            self.writer.add_scalar("train/lr", lr, self.step)
            self.writer.add_scalar("train/audio_seconds_per_second", speed, self.step)

    def _validate(self):
        if self.process.main:
            # With a weight average, the average is what is scored and saved as best.pt.
            with self.average.applied(self.model) if self.average is not None else contextlib.nullcontext():
                scores, estimates = validate(self.model, self.valid, self.process.device)
                if scores.mean_si_sdr > self.best_score:
                    self.best_score, self.best_step = scores.mean_si_sdr, self.step
                    self._save(BEST, {"step": self.step, "valid": scores.as_dict(), "elapsed_s": self.elapsed_s,
                                      **self._provenance()})
            self._log({"step": self.step, "valid": scores.as_dict()})
            self._write_validation(scores, estimates)
        self.process.barrier()

    def _write_validation(self, scores, estimates: torch.Tensor):
        w, sources, rate = self.writer, self.model.sources, self.model.sample_rate
        for name in sources:
            if scores.counted[name]:
                w.add_scalar(f"valid/si_sdr/{name}", scores.si_sdr[name], self.step)
                w.add_scalar(f"valid/si_sdri/{name}", scores.si_sdri[name], self.step)
        w.add_scalar("valid/mean_si_sdr", scores.mean_si_sdr, self.step)
        if scores.presence_accuracy is not None:
            w.add_scalar("valid/presence_accuracy", scores.presence_accuracy, self.step)
        for i in range(min(self.config.training.audio_examples, len(estimates))):
            mixture, _ = self.valid[i]
            w.add_audio(f"example{i}/mixture", mixture.mean(dim=0).clamp(-1, 1), self.step, sample_rate=rate)
            for s, name in enumerate(sources):
                w.add_audio(f"example{i}/{name}", estimates[i, s].mean(dim=0).clamp(-1, 1), self.step, sample_rate=rate)


def train(config: Config | None = None, run_dir: str | Path = "runs/run", resume: bool = False,
          progress: bool = True) -> RunResult:
    """Train (or with ``resume``, continue) a run; under torchrun, as one process of many.

    With ``resume``, the config is read back from ``run_dir`` (``config`` may override it).
    """
    run_dir = Path(run_dir)
    if resume:
        if not (run_dir / LAST).exists():
            raise ValueError(f"{run_dir}: no checkpoint to resume ({LAST} not found)")
        config = config or load_config(run_dir / CONFIG_FILE)
    if config is None:
        raise ValueError("train() needs a config, or resume=True with a run directory")
    process = distributed.start(config.training.device)
    result = Trainer(config, run_dir, process, resume=resume, progress=progress).run()
    distributed.stop(process)
    return result


def resume_config(run_dir: str | Path, overrides: list[str]) -> Config:
    """A run's saved config with ``--set`` overrides applied."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise ValueError(f"{run_dir}: not a run directory ({CONFIG_FILE} not found)")
    return load_config(path, overrides)

