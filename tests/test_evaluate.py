"""`wavesep evaluate`, `wavesep samples` and `wavesep demo`: bounds, silent stems, outputs."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from wavesep.cli import main
from wavesep.evaluate import SYSTEMS, ideal_ratio_mask, score_song

STEMS = ["drums", "bass", "piano", "strings"]


def random_stems(seed: int = 0, length: int = 3 * 22050) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.1, (len(STEMS), 2, length)) * rng.uniform(0.2, 1, (len(STEMS), 1, 1))).astype(np.float32)


def test_oracle_mask_shares_the_mixture_and_gives_back_a_lone_source():
    references = random_stems()
    mixture = references.sum(0)
    estimates = ideal_ratio_mask(mixture, references)
    assert estimates.shape == references.shape
    np.testing.assert_allclose(estimates.sum(0), mixture, atol=1e-4)  # the masks sum to one
    alone = references.copy()
    alone[1:] = 0
    np.testing.assert_allclose(ideal_ratio_mask(alone[0], alone)[0], alone[0], atol=1e-5)


def test_oracle_mask_charges_the_unnamed_part_of_the_mixture_to_no_stem():
    """A stem set without 'other' (seed4): the instruments it leaves out are in the mixture, not in
    any reference, and the oracle must not hand them to the named stems."""
    t = np.arange(3 * 22050) / 22050
    tones = np.stack([np.broadcast_to(np.sin(2 * np.pi * f * t), (2, t.size)) for f in (220, 880, 3520)])
    mixture = tones.sum(0)
    estimates = ideal_ratio_mask(mixture, tones[:2])  # the 3520 Hz tone is in no stem
    for estimate, tone in zip(estimates, tones):
        assert np.sum((estimate - tone) ** 2) < 1e-3 * np.sum(tone**2)


def test_scores_of_the_mixture_and_of_a_silent_reference():
    references = random_stems()
    references[2] = 0  # piano absent from this song
    mixture = references.sum(0)
    scores = score_song(references, np.broadcast_to(mixture, references.shape), mixture, 22050, STEMS, bss=True)
    assert all(math.isnan(v) for v in scores["piano"].values())
    for stem in ("drums", "bass", "strings"):
        assert scores[stem]["SI-SDRi"] == 0.0
        assert -30 < scores[stem]["SI-SDR"] < 10 and -30 < scores[stem]["SDR"] < 10
    perfect = score_song(references, references, mixture, 22050, STEMS, bss=True)
    assert perfect["drums"]["SI-SDR"] == 100.0 and perfect["drums"]["SDR"] > 60


def test_evaluate_writes_json_and_markdown_with_both_bounds(corpus, tmp_path, capsys):
    out = tmp_path / "results.json"
    assert main(["evaluate", "-m", "tiny-untrained", "--data", str(corpus["dataset"] / "train"), "--songs", "2",
                 "--out", str(out), "--shifts", "2", "--precision", "float32"]) == 0
    results = json.loads(out.read_text())  # strict JSON: no NaN, absent stems are null
    assert len(results["songs"]) == 2 and results["stems"] == STEMS and results["stem_set"] == "seed4"
    assert (results["shifts"], results["precision"]) == (2, "float32")  # how the stems were made
    assert set(results["summary"]) == set(SYSTEMS)
    mixture = results["summary"]["mixture"]
    oracle = results["summary"]["oracle IRM"]
    for stem in mixture:
        assert mixture[stem]["SI-SDRi"]["mean"] == 0.0
        assert oracle[stem]["SI-SDR"]["mean"] > mixture[stem]["SI-SDR"]["mean"]
        assert set(mixture[stem]) == {"SI-SDR", "SI-SDRi", "SDR", "SIR", "SAR", "ISR"}
    text = (tmp_path / "results.md").read_text()
    assert "| oracle IRM | drums |" in text and "silent reference" in text
    printed = capsys.readouterr().out
    assert "| model | mean of stems |" in printed and "silent reference" in printed


def test_evaluate_refuses_a_stem_set_that_is_not_the_models(corpus, tmp_path, capsys):
    assert main(["evaluate", "-m", "tiny-untrained", "--data", str(corpus["dataset"] / "train"),
                 "--stems", "band", "--out", str(tmp_path / "r.json")]) == 1
    assert "stem set 'band'" in capsys.readouterr().err
    assert main(["evaluate", "-m", "tiny-untrained", "--data", str(tmp_path / "nothing"),
                 "--out", str(tmp_path / "r.json")]) == 1


def test_samples_page_has_a_player_per_clip(corpus, tmp_path):
    site = tmp_path / "site"
    assert main(["samples", "-m", "tiny-untrained", "--data", str(corpus["dataset"] / "train"), "--songs", "2",
                 "--out", str(site), "--excerpt", "2"]) == 0
    page = (site / "index.html").read_text()
    sources = [line for line in page.split('src="')[1:] if line.split('"')[0].endswith(".flac")]
    for source in sources:
        assert (site / source.split('"')[0]).is_file()
    # per song: the mixture, each present reference and every estimate
    assert page.count("<audio") == len(sources) >= 2 * (1 + len(STEMS))


def test_demo_runs_the_whole_path(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--songs", "1", "-m", "tiny-untrained", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    for step in ("1/5", "2/5", "3/5", "4/5", "5/5"):
        assert step in printed
    assert (out / "results.json").is_file() and (out / "samples" / "index.html").is_file()
    assert any((out / "separated").glob("*/drums.wav"))


def test_a_blind_model_is_scored_with_silence_for_what_it_drops(corpus):
    from wavesep.evaluate import evaluate
    from wavesep.models import ModelSpec, build_model
    from wavesep.pretrained import tiny_model
    from wavesep.separate import Separator

    model = build_model("latent-wavenet", ModelSpec(sources=tuple(STEMS), setting="blind"), {
        "stride": 16, "window": 32, "basis": 32, "channels": 16, "skip_channels": 16, "stacks": 1, "blocks": 2})
    with torch.no_grad():
        model.presence.linear.bias.fill_(-20.0)  # detects nothing
    results = evaluate(Separator(model.eval()), corpus["dataset"] / "train", max_songs=1, bss=False)
    assert all(cell["SI-SDR"]["mean"] == -100.0 for stem, cell in results["summary"]["model"].items())
    assert tiny_model().spec.setting == "fixed"


def test_an_informed_model_is_scored_in_the_separators_precision_and_batch(monkeypatch):
    """Told what plays in each song, it is separated as asked: the same precision, batch, gains and shifts."""
    import wavesep.evaluate as evaluate
    from wavesep.models import ModelSpec, build_model
    from wavesep.separate import Separator

    spec = ModelSpec(("drums", "bass", "other"), sample_rate=8000, setting="informed", condition_dim=4)
    model = build_model("latent-wavenet", spec, {"stride": 8, "window": 16, "basis": 16, "channels": 8,
                                                 "skip_channels": 8, "stacks": 1, "blocks": 2})
    made = []
    told = Separator.told
    monkeypatch.setattr(Separator, "told", lambda self, instruments: made.append(told(self, instruments)) or made[-1])
    asked = Separator(model, batch=3, precision="float32", segment_s=0.05, shifts=2)
    references = np.zeros((3, 2, 800), np.float32)
    references[1] = np.random.default_rng(0).normal(0, 0.1, (2, 800))  # only the bass plays
    estimates = evaluate.model_estimates(asked, references.sum(0), 8000, references, ["drums", "bass", "other"])
    assert estimates.shape == (3, 2, 800) and not estimates[0].any() and estimates[1].any()
    (used,) = made
    np.testing.assert_array_equal(estimates[1], used.separate(references.sum(0), 8000)["bass"])
    assert used.shifts == 2
    assert (used.precision, used.batch, used.segment_s, used.stems) == ("float32", 3, 0.05, ["bass", "other"])
