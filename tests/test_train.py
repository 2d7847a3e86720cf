"""The trainer: learning, exact resumption, the NaN guard, checkpoints, strict configs, the CLI,
every setting, both data modes, and two processes on gloo."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from wavesep.cli import main
from wavesep.losses import LossMix
from wavesep.train import load_config, load_model, train
from wavesep.train.average import WeightAverage
from wavesep.train.checkpoint import read_checkpoint
from wavesep.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


def tiny(source, *overrides):
    return load_config(TINY, [f"data.source={source}", *overrides])


def log_records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def weights(path: Path) -> dict:
    return read_checkpoint(path)["state_dict"]


def test_tiny_training_lowers_the_loss_and_raises_validation_si_sdr(corpus, tmp_path):
    config = tiny(corpus["dataset"], "training.steps=60", "training.valid_every=60", "training.log_every=1")
    result = train(config, tmp_path / "run", progress=False)
    records = log_records(tmp_path / "run")
    losses = [r["loss"] for r in records if "loss" in r and "skipped" not in r]
    valid = [r["valid"]["mean_si_sdr"] for r in records if "valid" in r]
    assert len(losses) == 60 and len(valid) == 2  # validation at step 0 and at the end
    assert sum(losses[-10:]) / 10 < sum(losses[:5]) / 5
    assert valid[-1] > valid[0] + 1.0
    assert result.best_step == 60 and result.best_score == pytest.approx(valid[-1])
    best = read_checkpoint(tmp_path / "run" / "best.pt")
    assert best["config"]["training"]["steps"] == 60  # the resolved config travels with the weights
    assert best["training"]["valid"]["mean_si_sdr"] == pytest.approx(valid[-1])
    songs = list((corpus["dataset"] / "train").glob("*/metadata.json"))  # and what they were trained on
    hours = sum(json.loads(song.read_text())["duration_s"] for song in songs) / 3600
    assert best["training"]["training_data"] == {"source": str(corpus["dataset"]), "songs": len(songs),
                                        "hours": pytest.approx(hours, abs=1e-3), "soundfonts": ["FluidR3_GM.sf2"]}


def test_the_drum_kits_a_dataset_was_rendered_with_are_recorded(corpus, tmp_path):
    import shutil

    from wavesep.synth.writer import DATASET_SETTINGS
    from wavesep.train.data import describe_data, make_train_dataset

    source = tmp_path / "dataset"
    shutil.copytree(corpus["dataset"], source)
    config = tiny(source)
    assert "drum_kits" not in describe_data(config, source, make_train_dataset(config, source))
    settings = json.loads((source / DATASET_SETTINGS).read_text())
    (source / DATASET_SETTINGS).write_text(json.dumps({**settings, "drum_kits": [0, 25]}))
    assert describe_data(config, source, make_train_dataset(config, source))["drum_kits"] == [0, 25]


class Crash(Exception):
    """A process dying mid-run, without any chance to save."""


def crash_at(monkeypatch, step: int):
    original = Trainer._train_step

    def step_or_crash(self, mixture, stems):
        if self.step + 1 == step:
            raise Crash
        return original(self, mixture, stems)

    monkeypatch.setattr(Trainer, "_train_step", step_or_crash)


@pytest.mark.parametrize("mode", ["dataset", "stream"])
def test_an_interrupted_run_resumed_equals_an_uninterrupted_one(corpus, tmp_path, monkeypatch, mode):
    source = corpus["dataset"] if mode == "dataset" else corpus["index"]
    overrides = [f"data.mode={mode}", "training.steps=8", "training.checkpoint_every=3", "training.valid_every=4",
                 "optim.schedule=cosine", "optim.warmup_steps=2", "data.max_chunks_per_song=4", "data.pool_size=4",
                 "training.ema=0.9"]
    config = tiny(source, *overrides)
    train(config, tmp_path / "straight", progress=False)
    with monkeypatch.context() as patch:
        crash_at(patch, 8)  # the last checkpoint is step 6: steps 7 and 8 are redone
        with pytest.raises(Crash):
            train(config, tmp_path / "broken", progress=False)
    assert read_checkpoint(tmp_path / "broken" / "last.pt")["training"]["step"] == 6
    result = train(None, tmp_path / "broken", resume=True, progress=False)
    assert result.step == 8
    a, b = weights(tmp_path / "straight" / "last.pt"), weights(tmp_path / "broken" / "last.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    state = read_checkpoint(tmp_path / "broken" / "last.pt")["training"]
    straight = read_checkpoint(tmp_path / "straight" / "last.pt")["training"]
    assert state["data"] == straight["data"] and state["best_step"] == straight["best_step"]
    assert torch.equal(state["rng"][0], straight["rng"][0])
    assert state["average"]["updates"] == straight["average"]["updates"] == 8
    sums, straight_sums = state["average"]["sums"], straight["average"]["sums"]
    assert all(torch.equal(sums[k], straight_sums[k]) for k in sums)
    a, b = weights(tmp_path / "straight" / "best.pt"), weights(tmp_path / "broken" / "best.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    records = log_records(tmp_path / "broken")  # steps 7-8 of the crashed run were dropped, then redone
    assert [r["step"] for r in records if "valid" in r] == [0, 4, 8]
    assert [r["step"] for r in records if "loss" in r] == [r["step"] for r in log_records(tmp_path / "straight")
                                                            if "loss" in r]


def test_the_weight_average_is_the_bias_corrected_mean_and_is_only_lent_to_the_model():
    model = torch.nn.Linear(2, 1)
    average = WeightAverage(model, decay=0.5)
    own = model.bias.detach().clone()
    with average.applied(model):  # nothing averaged yet: the model's own weights
        assert torch.equal(model.bias, own)
    for value in (1.0, 2.0, 4.0):
        with torch.no_grad():
            model.bias.fill_(value)
        average.update(model)
    # weights 0.5^2, 0.5^1, 0.5^0 on 1, 2, 4, normalised by their sum
    expected = (0.25 * 1 + 0.5 * 2 + 1 * 4) / 1.75
    assert average.averaged()["bias"].item() == pytest.approx(expected)
    with average.applied(model):
        assert model.bias.item() == pytest.approx(expected)
    assert model.bias.item() == 4.0  # restored after the block
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


def test_with_a_weight_average_best_pt_holds_the_average(corpus, tmp_path):
    config = tiny(corpus["dataset"], "training.steps=6", "training.valid_every=6", "training.checkpoint_every=6",
                  "training.ema=0.8")
    result = train(config, tmp_path / "run", progress=False)
    assert result.best_step == 6
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    averaged = WeightAverage(load_model(tmp_path / "run" / "last.pt"), 0.8)
    averaged.load_state_dict(last["training"]["average"])
    best, latest = weights(tmp_path / "run" / "best.pt"), last["state_dict"]
    assert all(torch.allclose(best[k], v) for k, v in averaged.averaged().items())
    assert not all(torch.equal(best[k], latest[k]) for k in averaged.averaged())  # not the latest weights
    valid = [r["valid"]["mean_si_sdr"] for r in log_records(tmp_path / "run") if "valid" in r]
    assert result.best_score == pytest.approx(max(valid))


@pytest.mark.parametrize("setting,informed_by", [("informed", "multihot"), ("informed", "query"), ("blind", "multihot")])
def test_every_setting_trains(corpus, tmp_path, setting, informed_by):
    config = tiny(corpus["dataset"], f"model.setting={setting}", f"model.informed_by={informed_by}",
                  "training.steps=4", "training.valid_every=4", "training.log_every=1")
    train(config, tmp_path / "run", progress=False)
    records = log_records(tmp_path / "run")
    assert all(r["loss"] == r["loss"] for r in records if "loss" in r)  # finite, logged every step
    valid = [r["valid"] for r in records if "valid" in r][-1]
    assert set(valid["si_sdr"]) == {"drums", "bass", "piano", "strings"}
    if setting == "blind":
        assert "presence" in records[1] and 0.0 <= valid["presence_accuracy"] <= 1.0
    model = load_model(tmp_path / "run" / "best.pt")
    assert model.spec.setting == setting and model.spec.informed_by == informed_by


def nan_losses_at(monkeypatch, steps: set[int]):
    original, calls = LossMix.__call__, {"n": 0}

    def sometimes_nan(self, estimate, reference):
        calls["n"] += 1
        total, parts = original(self, estimate, reference)
        return (total * float("nan"), parts) if calls["n"] in steps else (total, parts)

    monkeypatch.setattr(LossMix, "__call__", sometimes_nan)


def test_a_non_finite_loss_skips_the_step(corpus, tmp_path, monkeypatch):
    nan_losses_at(monkeypatch, {3})
    config = tiny(corpus["dataset"], "training.steps=4", "training.log_every=1", "training.checkpoint_every=2")
    train(config, tmp_path / "run", progress=False)
    records = log_records(tmp_path / "run")
    skipped = [r for r in records if "skipped" in r]
    assert [r["step"] for r in skipped] == [3] and skipped[0]["loss"] == "nan"
    assert all(r["loss"] == r["loss"] for r in records if "loss" in r and "skipped" not in r)
    assert all(torch.isfinite(w).all() for w in weights(tmp_path / "run" / "last.pt").values())


def test_non_finite_losses_in_a_row_stop_the_run_and_keep_the_last_good_checkpoint(corpus, tmp_path, monkeypatch,
                                                                                  capsys):
    nan_losses_at(monkeypatch, set(range(3, 100)))
    run_dir = tmp_path / "run"
    code = main(["train", str(TINY), "--run-dir", str(run_dir), "--no-progress", "--set",
                 f"data.source={corpus['dataset']}", "--set", "training.max_bad_steps=3", "--set",
                 "training.checkpoint_every=2"])
    assert code == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("wavesep: error: 3 non-finite losses in a row (steps 3-5): stopped.")
    assert f"The last good checkpoint is step 2 in {run_dir / 'last.pt'}" in error
    saved = read_checkpoint(run_dir / "last.pt")
    assert saved["training"]["step"] == 2
    assert all(torch.isfinite(w).all() for w in saved["state_dict"].values())


def test_cli_trains_and_refuses_to_overwrite_a_run(corpus, tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = ["train", str(TINY), "--run-dir", str(run_dir), "--no-progress", "--set",
            f"data.source={corpus['dataset']}", "--set", "training.steps=2", "--set", "training.log_every=1"]
    assert main(args) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    assert load_config(run_dir / "config.yaml").training.steps == 2
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "valid/mean_si_sdr", "valid/si_sdr/bass"} <= set(tags["scalars"])
    assert {"example0/mixture", "example0/bass"} <= set(tags["audio"])
    assert main(args) == 1
    assert "already holds a run; continue it with --resume" in capsys.readouterr().err
    # --resume with more steps continues the same run
    assert main(["train", "--resume", str(run_dir), "--set", "training.steps=3", "--no-progress"]) == 0
    assert read_checkpoint(run_dir / "last.pt")["training"]["step"] == 3


@pytest.mark.parametrize("args,message", [
    (["--set", "training.stepz=3"], "unknown key training.stepz (known: steps,"),
    (["--set", "model.args.chanels=3"], "unknown key(s) for model 'latent-wavenet': chanels"),
    (["--set", "training.losses={mae: 1, l3: 2}"], "unknown loss 'l3'"),
    (["--set", "training.batch_size=many"], "training.batch_size must be int, got 'many'"),
    (["--set", "model.setting=psychic"], "model.setting must be one of fixed, informed, blind"),
    (["--set", "data.source=''"], "data.source is empty"),
    (["--set", "data.source=/no/such/dataset"], "/no/such/dataset: data source not found"),
    (["--set", "optim.grad_clip=-1"], "optim.grad_clip must be >= 0, got -1"),
    (["--set", "optim.betas=[a, 0.9]"], "optim.betas must be two numbers in [0, 1)"),
    (["--set", "data.augment_eq_db=-3"], "data.augment_eq_db must be >= 0, got -3"),
    (["--set", "data.augment_lowpass=1.5"], "data.augment_lowpass must be in [0, 1], got 1.5"),
    (["--set", "data.augment_repitch=-1"], "data.augment_repitch must be >= 0, got -1"),
    (["--set", "training.ema=1"], "training.ema must be in [0, 1), got 1"),
    (["--set", "data.soundfont=3"], "data.soundfont must be str or a list, got 3"),
    (["--set", "data.mode=stream", "--set", "data.drum_kits=x"],
     "data.drum_kits: drum kits are comma-separated preset numbers or gm, got 'x'"),
    (["--set", "data.mode=stream", "--set", "data.drum_kits=[0, 128]"], "drum kits must be preset numbers 0-127"),
    (["--set", "data.drum_kits=gm"], "data.drum_kits is for stream mode; a rendered dataset has the kits"),
])
def test_config_errors_are_one_clear_line(tmp_path, capsys, args, message):
    assert main(["train", str(TINY), "--run-dir", str(tmp_path / "run"), "--no-progress", *args]) == 1
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1


def test_exponent_numbers_are_numbers_in_files_and_overrides(tmp_path):
    """YAML 1.1 reads 2e-3 (no dot) as a string; the configs read it as 1.2 and users do."""
    config = tmp_path / "lr.yaml"
    config.write_text("optim:\n  lr: 3e-4\n")
    assert load_config(config).optim.lr == 3e-4
    assert load_config(config, ["optim.lr=2e-3", "optim.weight_decay=1E-2"]).optim.lr == 2e-3


def test_an_unknown_key_in_the_yaml_file_is_named(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("training:\n  steps: 3\n  bach_size: 4\n")
    assert main(["train", str(config)]) == 1
    assert f"{config}: config: unknown key training.bach_size" in capsys.readouterr().err


def test_resume_needs_a_run(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 1
    assert "not a run directory" in capsys.readouterr().err


def test_a_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="model.pt: not a readable checkpoint"):
        load_model(path)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a wavesep checkpoint"):
        load_model(path)


SEVERAL_SOUNDFONTS = "[/usr/share/sounds/sf2/FluidR3_GM.sf2, /usr/share/sounds/sf2/TimGM6mb.sf2]"


@pytest.mark.parametrize(("soundfont", "drum_kits"), [(None, None), (SEVERAL_SOUNDFONTS, "gm")])
def test_streaming_mode_trains_from_midi(corpus, tmp_path, soundfont, drum_kits):
    """With one SoundFont (the default) or several, each instrument drawn to one of them, and with
    the MIDI's drum kits or the eight GM kits drawn per song (recorded with the run)."""
    config = tiny(corpus["index"], "data.mode=stream", "training.steps=3", "data.pool_size=4", "data.workers=1",
                  *([f"data.soundfont={soundfont}"] if soundfont else []),
                  *([f"data.drum_kits={drum_kits}"] if drum_kits else []))
    result = train(config, tmp_path / "run", progress=False)
    assert result.step == 3 and result.best_step is not None
    data = read_checkpoint(tmp_path / "run" / "best.pt")["training"]["training_data"]
    assert data["soundfonts"] == (["FluidR3_GM.sf2", "TimGM6mb.sf2"] if soundfont else ["default"])
    assert data.get("drum_kits") == ([0, 8, 16, 24, 25, 32, 40, 48] if drum_kits else None)


def test_a_finished_trainer_is_freed_at_once(corpus, tmp_path):
    """No reference cycle keeps a trainer (with its DDP state) alive past train(), to be destroyed
    after the process group, at the interpreter's exit."""
    import gc
    import weakref

    from wavesep.train import distributed

    process = distributed.start("cpu")
    trainer = Trainer(tiny(corpus["dataset"], "training.steps=1"), tmp_path / "run", process, progress=False)
    trainer.run()
    gone = weakref.ref(trainer)
    gc.disable()  # reference counting alone must free it
    try:
        del trainer
        assert gone() is None
    finally:
        gc.enable()
        distributed.stop(process)


def test_two_processes_on_gloo(corpus, tmp_path):
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "wavesep", "train", str(TINY), "--run-dir", str(run_dir), "--no-progress",
               "--set", f"data.source={corpus['dataset']}", "--set", "training.steps=4",
               "--set", "training.checkpoint_every=2", "--set", "training.device=cpu"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    final = log_records(run_dir)[-1]
    assert final["done"] and final["world_size"] == 2 and final["ranks_in_sync"]
    state = read_checkpoint(run_dir / "last.pt")["training"]
    assert state["world_size"] == 2 and len(state["data"]) == 2 and state["examples"] == 4 * 4 * 2
    assert "trained 4 steps" in done.stdout


def test_generated_songs_need_no_data_at_all(tmp_path):
    config = load_config(TINY, ["data.mode=stream", "data.source=generated", "data.generated_songs=8",
                                "training.steps=2", "data.pool_size=4", "data.valid_max_chunks=2",
                                "data.max_chunks_per_song=2"])
    result = train(config, tmp_path / "run", progress=False)
    assert result.step == 2 and len(list((tmp_path / "run" / "midi").glob("*.mid"))) == 8
    splits = [json.loads(line).get("split") for line in (tmp_path / "run" / "midi-index.jsonl").read_text().splitlines()]
    assert splits.count("valid") == 1 and splits.count("train") == 7


@pytest.mark.parametrize("preset", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: p.stem)
def test_presets_load_and_build_their_model(preset):
    from wavesep.models import build_model
    from wavesep.train.trainer import model_spec

    config = load_config(preset)
    model = build_model(config.model.name, model_spec(config), config.model.args)
    assert model.n_parameters() > 0


def test_a_time_budget_stops_the_run_and_a_larger_one_resumes_it(corpus, tmp_path, capsys):
    run_dir = tmp_path / "run"
    config = tiny(corpus["dataset"], "training.steps=100000", "training.budget_s=0.3", "training.valid_every=5")
    result = train(config, run_dir, progress=True)
    bar = capsys.readouterr().err.split("\r")[-1]  # the bar counts the budget's seconds, the steps beside
    assert "/0 CPU s [" in bar and f"step={result.step}," in bar and "100000" not in bar
    done = log_records(run_dir)[-1]
    assert done["done"] and done["budget_unit"] == "CPU seconds" and done["budget_used_s"] >= 0.3
    assert 1 <= result.step < 100000  # the budget, not the steps, ended it
    last = read_checkpoint(run_dir / "last.pt")["training"]
    assert last["step"] == result.step and last["budget_used_s"] == pytest.approx(done["budget_used_s"])
    # the same steps' wall-clock time and the threads, which say what share of the CPU they had
    assert done["steps_wall_s"] > 0 and done["threads"] == torch.get_num_threads()
    assert last["steps_wall_s"] == pytest.approx(done["steps_wall_s"])
    assert read_checkpoint(run_dir / "best.pt")["training"]["budget_used_s"] > 0  # the budget behind the weights
    # What one step costs varies with the machine's load (CPU time counts every spinning thread):
    # the larger budget is a multiple of what the first run used, so it always buys more steps.
    larger = 3 * done["budget_used_s"] + 0.5
    more = train(load_config(run_dir / "config.yaml", [f"training.budget_s={larger}"]), run_dir, resume=True,
                 progress=False)
    assert more.step > result.step and log_records(run_dir)[-1]["budget_used_s"] >= larger
    assert log_records(run_dir)[-1]["steps_wall_s"] > done["steps_wall_s"]  # continued, not started again


def test_a_cosine_schedule_ends_with_the_budget(corpus):
    """With steps that will never be reached, the budget is the end of the run, and of the cosine."""
    from wavesep.train.trainer import _schedule

    config = tiny(corpus["dataset"], "training.steps=100000", "training.budget_s=100", "optim.schedule=cosine",
                  "optim.warmup_steps=10")
    spent = [0.0]
    factor = _schedule(config, lambda: spent[0])
    assert [factor(step) for step in (0, 4, 9)] == [0.1, 0.5, 1.0]  # the warm-up counts steps
    rates = []
    for spent[0] in (0.0, 25.0, 50.0, 75.0, 99.0, 100.0, 130.0):
        rates.append(factor(20))
    assert rates[:3] == [pytest.approx(1.0), pytest.approx(0.5 + 0.5 ** 1.5), pytest.approx(0.5)]
    assert rates[3] < rates[2] and rates[4] < 0.001 and rates[5] == rates[6] == 0.0
    steps_only = _schedule(tiny(corpus["dataset"], "training.steps=110", "optim.schedule=cosine",
                                "optim.warmup_steps=10"), lambda: 1e9)  # no budget: the steps decide
    assert steps_only(60) == pytest.approx(0.5) and steps_only(110) == pytest.approx(0.0)


def test_the_budget_does_not_count_the_wait_for_the_first_batch(corpus, tmp_path, monkeypatch):
    """Data workers take seconds to start (tens on a GPU machine with a dozen): not training time."""
    from wavesep.train import data as train_data

    plain_next, calls = train_data.BatchStream.__next__, []

    def slow_first(self):
        if not calls:  # the first batch: burn 2 s of CPU, as starting workers would
            start = time.process_time()
            while time.process_time() - start < 2.0:
                pass
        calls.append(1)
        return plain_next(self)

    monkeypatch.setattr(train_data.BatchStream, "__next__", slow_first)
    config = tiny(corpus["dataset"], "training.steps=100000", "training.budget_s=0.5", "training.valid_every=1000")
    result = train(config, tmp_path / "run", progress=False)
    # counted, the 2 s would show; the steps overshoot the 0.5 s budget by one step, which can take
    # most of a second of CPU time when other processes crowd the cores
    assert result.step >= 1 and log_records(tmp_path / "run")[-1]["budget_used_s"] < 2.0


@pytest.mark.parametrize("native", [True, False])
def test_cpu_training_runs_in_bfloat16_only_when_asked_and_where_the_cpu_has_it(corpus, tmp_path, monkeypatch, native):
    """Emulated bfloat16 is slower than float32; native (AVX512-BF16, AMX) is ~1.6x faster."""
    from wavesep.train import trainer as trainer_module

    plain_run_setting, seen = trainer_module.run_setting, []

    def watched(*args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return plain_run_setting(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "native_bf16", lambda device: native)
    monkeypatch.setattr(trainer_module, "run_setting", watched)
    config = tiny(corpus["dataset"], "training.steps=2", "training.valid_every=2", "training.cpu_amp=true")
    train(config, tmp_path / "on", progress=False)
    if native:
        assert seen == [(True, torch.bfloat16)] * 2
    else:
        assert [enabled for enabled, _ in seen] == [False, False]
    precision = "bfloat16" if native else "float32"
    assert read_checkpoint(tmp_path / "on" / "best.pt")["training"]["precision"] == precision
    seen.clear()
    train(tiny(corpus["dataset"], "training.steps=2"), tmp_path / "off", progress=False)  # cpu_amp: off by default
    assert [enabled for enabled, _ in seen] == [False, False]
    assert read_checkpoint(tmp_path / "off" / "last.pt")["training"]["precision"] == "float32"


def test_native_bf16_is_false_for_a_cpu_without_it(monkeypatch):
    from wavesep.models.base import native_bf16

    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)
    assert not native_bf16(torch.device("cpu"))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert native_bf16(torch.device("cpu"))


def test_peer_presets_share_the_default_models_data_and_training():
    default = load_config(ROOT / "configs" / "default.yaml")
    for preset in sorted((ROOT / "configs" / "peers").glob("*.yaml")):
        peer = load_config(preset)
        # bench/quality.py sets the budget; bfloat16 only where the model's gradients were checked
        same = dataclasses.replace(peer.training, budget_s=default.training.budget_s, cpu_amp=default.training.cpu_amp)
        assert (peer.data, same) == (default.data, default.training), preset.name


def test_the_seed_preset_is_the_original_set_up():
    config = load_config(ROOT / "configs" / "seed-wavenet.yaml")
    assert (config.model.name, config.data.stem_set, config.training.batch_size) == ("wavenet", "seed4", 12)
    assert (config.optim.name, config.optim.lr) == ("adam", 1e-4)


def test_resuming_with_another_model_is_a_clear_error(corpus, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(tiny(corpus["dataset"], "training.steps=1"), run_dir, progress=False)
    assert main(["train", "--resume", str(run_dir), "--set", "model.args.channels=8", "--set",
                 "training.steps=2"]) == 1
    error = capsys.readouterr().err
    assert "last.pt: cannot resume from it with this config" in error and error.count("\n") == 1
