"""bench/quality.py end to end on one short song and the tiny built-in model: the report's rows,
the bounds, the budget mismatch guard, and scores reused for unchanged weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import quality  # noqa: E402  (bench/ is no package)


def test_the_quality_benchmark_scores_a_model_with_its_bounds_and_reuses_its_scores(tmp_path, capsys, monkeypatch):
    out = tmp_path / "quality.json"
    args = ["--runs", str(tmp_path / "no-runs"), "--work", str(tmp_path / "work"), "--out", str(out),
            "--stem-sets", "seed4", "--model", "tiny=tiny-untrained", "--songs", "1", "--seed", "4242",
            "--unseen-soundfont", "", "--rtf-seconds", "2", "--threads", "1"]
    assert quality.main(args) == 0
    report = json.loads(out.read_text())
    row = report["stem_sets"]["seed4"]["tiny"]
    (label, summary), = row["sets"].items()
    assert label == "1 generated songs (seed 4242), seen SoundFont FluidR3_GM"
    assert row["parameters"] > 0 and row["rtf"] > 0 and row["sha256"] == ""  # built in: no file to hash
    assert summary["mixture"]["mean"]["SI-SDRi"]["mean"] == 0.0
    assert summary["oracle IRM"]["mean"]["SI-SDRi"]["mean"] > summary["model"]["mean"]["SI-SDRi"]["mean"]
    table = out.with_suffix(".md").read_text()
    assert "| tiny (latent-wavenet) |" in table and "| oracle IRM |" in table
    capsys.readouterr()
    assert quality.main(args) == 0  # unchanged weights: the scores are reused, the RTF measured anew
    assert "scores of the previous report" in capsys.readouterr().out
    band_only = [a if a != "seed4" else "band" for a in args[: args.index("--model")]] + args[args.index("--songs"):]
    assert quality.main(band_only) == 0  # nothing for band, and the seed4 rows stay in the report
    assert json.loads(out.read_text())["stem_sets"]["seed4"]["tiny"]["sets"] == row["sets"]
    assert "| tiny (latent-wavenet) |" in out.with_suffix(".md").read_text()
    out.write_text(json.dumps({**json.loads(out.read_text()), "scoring": 2}))
    capsys.readouterr()
    assert quality.main(args) == 0  # version 3 changed only what `other` holds: seed4's scores still hold
    assert "scores of the previous report" in capsys.readouterr().out
    out.write_text(json.dumps({**json.loads(out.read_text()), "scoring": 1}))
    assert quality.main(args) == 0  # scores of an older way of scoring are not reused
    assert "scores of the previous report" not in capsys.readouterr().out
    assert quality.reusable({"scoring": 2, "stem_sets": {"band": {}, "seed4": {}}}) == {"seed4": {}}
    assert quality.main([*args, "--precision", "float32"]) == 0
    assert json.loads(out.read_text())["stem_sets"]["seed4"]["tiny"]["precision"] == "float32"
    monkeypatch.setattr("wavesep.separate.native_bf16", lambda device: True)
    capsys.readouterr()
    assert quality.main(args) == 0  # auto: bfloat16 for a latent-wavenet here, so scored again, not reused
    assert "scores of the previous report" not in capsys.readouterr().out
    assert json.loads(out.read_text())["stem_sets"]["seed4"]["tiny"]["precision"] == "bfloat16"
    assert "| tiny (latent-wavenet) |" in out.with_suffix(".md").read_text()
    assert ", bfloat16 | " in out.with_suffix(".md").read_text()  # the RTF cell says how it separated
    report = json.loads(out.read_text())
    assert report["stem_sets"]["seed4"]["tiny"]["fit_gains"] is False  # trained on nothing: no gains to fit
    report["stem_sets"]["seed4"]["tiny"]["fit_gains"] = True
    out.write_text(json.dumps(report))
    capsys.readouterr()
    assert quality.main(args) == 0  # scored with fitted gains then, without now: scored again
    assert "scores of the previous report" not in capsys.readouterr().out


def test_a_run_trained_past_the_budget_asked_for_is_refused(tmp_path):
    run = tmp_path / "runs" / "band-wavesep"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"")
    (run / "log.jsonl").write_text(json.dumps({"step": 9, "done": True, "budget_used_s": 900.0}) + "\n{\"step\": 1")
    with pytest.raises(SystemExit, match="trained with 900 CPU s, more than --budget 720"):
        quality.train_missing(tmp_path / "runs", tmp_path / "data", ["band"], ["wavesep"], {"band": 720.0})


def test_runs_trained_at_once_all_go_through_when_one_fails(tmp_path, monkeypatch):
    started = []

    def fake_run(command, **_):
        run = command[command.index("--run-dir") + 1]
        started.append(run)
        return quality.subprocess.CompletedProcess(command, 1 if run.endswith("band-conv-tasnet") else 0)

    monkeypatch.setattr(quality.subprocess, "run", fake_run)
    with pytest.raises(SystemExit, match=r"^training failed: band-conv-tasnet \(see the errors above\)$"):
        quality.train_missing(tmp_path / "runs", tmp_path / "data", ["band"], ["wavesep", "conv-tasnet", "open-unmix"],
                              {"band": 720.0}, jobs=2)
    assert sorted(Path(run).name for run in started) == ["band-conv-tasnet", "band-open-unmix", "band-wavesep"]


def test_runs_that_shared_their_cpu_while_training_are_named(tmp_path, monkeypatch, capsys):
    """A run's CPU share is its CPU seconds over its steps' wall-clock seconds times its threads: the
    runs that had less than 90 % of it are named when training ends, and their table cell says so."""
    shares = {"band-wavesep": 0.75, "band-open-unmix": 0.98}

    def fake_run(command, **_):  # "trains": writes the best checkpoint and the done record
        run = Path(command[command.index("--run-dir") + 1])
        run.mkdir(parents=True)
        (run / "best.pt").write_bytes(b"")
        done = {"step": 300, "done": True, "budget_used_s": 720.0, "budget_unit": "CPU seconds",
                "steps_wall_s": 720.0 / shares[run.name], "threads": 1}
        (run / "log.jsonl").write_text(json.dumps(done) + "\n")
        return quality.subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(quality.subprocess, "run", fake_run)
    quality.train_missing(tmp_path / "runs", tmp_path / "data", ["band"], ["wavesep", "open-unmix"], {"band": 720.0})
    warning = capsys.readouterr().out.splitlines()[-1]
    assert warning.startswith("warning: these runs had less than 90% of their CPU while training")
    assert warning.endswith(": band-wavesep (75%)")
    assert quality.cpu_share({"budget_used_s": 720.0, "budget_unit": "CPU seconds", "steps_wall_s": 400.0,
                              "threads": 2}) == pytest.approx(0.9)
    assert quality.cpu_share({"budget_used_s": 720.0, "budget_unit": "seconds", "steps_wall_s": 720.0, "threads": 1}) is None
    assert quality.cpu_share({"budget_used_s": 720.0, "budget_unit": "CPU seconds"}) is None  # before the record


def test_several_seeds_are_trained_under_their_own_names_and_summarised(tmp_path, monkeypatch, capsys):
    import torch

    from wavesep.instruments import get_stem_set
    from wavesep.models import ModelSpec, build_model
    from wavesep.train.checkpoint import checkpoint_payload, save_atomic

    commands, runs = [], tmp_path / "runs"
    with monkeypatch.context() as patch:  # the module is the real subprocess: only for this call
        patch.setattr(quality.subprocess, "run",
                      lambda command, **_: commands.append(command) or quality.subprocess.CompletedProcess(command, 0))
        quality.train_missing(runs, tmp_path / "data", ["seed4"], ["wavesep"], {"seed4": 480.0}, seeds=2)
    assert [c[c.index("--run-dir") + 1] for c in commands] == [str(runs / "seed4-wavesep"),
                                                                 str(runs / "seed4-wavesep-seed1")]
    assert "training.seed=0" in commands[0] and "training.seed=1" in commands[1]

    spec = ModelSpec(get_stem_set("seed4").names, sample_rate=44100)
    for seed in (0, 1):  # two "runs" of one recipe: small untrained models, different initialisations
        torch.manual_seed(seed)
        model = build_model("latent-wavenet", spec, {"stride": 64, "window": 128, "basis": 16, "channels": 8,
                                                     "skip_channels": 8, "stacks": 1, "blocks": 2})
        run = runs / quality.run_name("seed4", "wavesep", seed)
        run.mkdir(parents=True)
        data = {"source": "ds", "songs": 232, "hours": 3.04, "soundfonts": ["FluidR3_GM.sf2", "MuseScore_General.sf3"],
                "drum_kits": [0, 16, 25]}
        training = {"step": 10, "training_data": data} if seed else None
        save_atomic(checkpoint_payload(model, {}, training), run / "best.pt")
        if seed:  # the run went on past its best checkpoint
            (run / "log.jsonl").write_text(json.dumps({"step": 25, "done": True, "budget_used_s": 480.5,
                                                        "budget_unit": "CPU seconds", "steps_wall_s": 600.6,
                                                        "threads": 1}) + "\n")
    out = tmp_path / "quality.json"
    assert quality.main(["--runs", str(runs), "--work", str(tmp_path / "work"), "--out", str(out), "--seeds", "2",
                         "--systems", "wavesep", "--stem-sets", "seed4", "--songs", "1", "--unseen-soundfont", "",
                         "--rtf-seconds", "1", "--threads", "1"]) == 0
    rows = json.loads(out.read_text())["stem_sets"]["seed4"]
    assert list(rows) == ["wavesep", "wavesep seed 1"]
    scores = [row["sets"][label]["model"]["mean"]["SI-SDRi"]["mean"] for row in rows.values() for label in row["sets"]]
    assert scores[0] != scores[1]
    line = next(line for line in out.with_suffix(".md").read_text().splitlines() if line.startswith("| seed4 |"))
    assert line.endswith(f"| {sum(scores) / 2:+.2f} [{min(scores):+.2f}, {max(scores):+.2f}] (2 runs) |")
    seed1 = next(line for line in out.with_suffix(".md").read_text().splitlines() if "| wavesep seed 1 (" in line)
    # the whole run's budget, where its best checkpoint was, the CPU share it had, and its training data
    assert seed1.endswith("| 25 steps, 8.0 CPU min (best at step 10), **80% of its CPU: trained on a busy machine**; "
                          "232 songs, 3.0 h, FluidR3_GM + MuseScore_General, 3 drum kits |")
    args = ["--runs", str(runs), "--work", str(tmp_path / "work"), "--out", str(out), "--systems", "conv-tasnet",
            "--stem-sets", "seed4", "--songs", "1", "--unseen-soundfont", "", "--rtf-seconds", "1", "--threads", "1"]
    assert quality.main(args) == 0  # no conv-tasnet run: wavesep's rows stay as they were
    assert json.loads(out.read_text())["stem_sets"]["seed4"] == rows


def test_the_summary_says_when_the_runs_were_trained_on_different_cpus():
    def row(score: float, hardware: str, unit: str = "CPU seconds") -> dict:
        summary = {"model": {"mean": {"SI-SDRi": {"mean": score}}}}
        return {"training": {"hardware": hardware, "budget_unit": unit}, "sets": {"test": summary}}

    one_cpu = {"band": {"wavesep": row(4.0, "1 x AMD EPYC (1 threads)"),
                        "conv-tasnet": row(3.0, "1 x AMD EPYC (1 threads)"),
                        "default": row(6.0, "1 x NVIDIA H100 80GB HBM3", unit="seconds")}}  # a GPU's budget: wall time
    assert "kinds of CPU" not in quality.summary(one_cpu)
    two_cpus = {"band": {**one_cpu["band"], "open-unmix": row(2.0, "1 x Intel(R) Xeon(R) Processor (1 threads)")}}
    table = quality.summary(two_cpus)
    assert "| band | test | +4.00 | +3.00 | +6.00 | +2.00 |" in table
    assert ("trained on 2 kinds of CPU (1 x AMD EPYC (1 threads); 1 x Intel(R) Xeon(R) Processor (1 threads))"
            in table)
