"""Every model in every setting: shapes for mono, stereo and odd lengths, conditioning, presence,
self-description, and save -> load giving identical outputs."""

from __future__ import annotations

import pytest
import torch

from wavesep.models import WAVESEP_MODELS, ModelSpec, build_model, model_config, model_from_description
from wavesep.train.checkpoint import checkpoint_payload, load_model, save_atomic

SOURCES = ("drums", "bass", "piano")
SMALL = {  # each architecture shrunk so a forward pass takes milliseconds
    "conv": {"channels": 4, "kernel_size": 9},
    "wavenet": {"stacks": 2, "blocks": 3, "channels": 8, "skip_channels": 8, "final_channels": [16, 8]},
    "waveunet": {"levels": 3, "growth": 4},
    "latent-wavenet": {"stride": 8, "window": 16, "basis": 16, "channels": 8, "skip_channels": 8, "stacks": 2,
                       "blocks": 2},
}
SETTINGS = [("fixed", "multihot"), ("informed", "multihot"), ("informed", "query"), ("blind", "multihot")]


SPECTRAL = {"spectral_ffts": [64]}  # latent-wavenet's STFT input: hop 16, two frames
SPECTRAL_OUTPUT = {"spectral_output": 64}  # and its STFT output
LEVEL = {"level_input": 3}  # and its level input, against 3 frames either side
CASES = [(name, {}) for name in WAVESEP_MODELS] + [("latent-wavenet", extra) for extra in (SPECTRAL, SPECTRAL_OUTPUT, LEVEL)]


def small_model(name: str, setting: str = "fixed", informed_by: str = "multihot", audio_channels: int = 2,
                **args):
    torch.manual_seed(0)
    spec = ModelSpec(SOURCES, sample_rate=8000, audio_channels=audio_channels, setting=setting,
                     informed_by=informed_by, condition_dim=4)
    return with_spectral_gains(build_model(name, spec, {**SMALL[name], **args}).eval())


def with_spectral_gains(model):
    """latent-wavenet's spectral output starts at zero gains, so it adds nothing: give it some, for
    the tests to see that path."""
    if getattr(model, "spectral_output", None):
        torch.nn.init.normal_(model.spectral_output.gains[1].weight, std=0.1)
    return model


def condition_for(model, batch: int):
    spec = model.spec
    if spec.setting != "informed":
        return None
    if spec.query:
        return torch.arange(batch) % spec.n_sources
    return (torch.arange(batch * spec.n_sources).view(batch, -1) % 2).float()


def test_every_architecture_has_a_small_config():  # the peer adapters: tests/test_peers.py
    assert set(SMALL) == set(WAVESEP_MODELS)


@pytest.mark.parametrize("name,args", CASES)
@pytest.mark.parametrize("setting,informed_by", SETTINGS)
@pytest.mark.parametrize("model_channels", [1, 2])
def test_shapes_for_mono_stereo_and_odd_lengths(name, args, setting, informed_by, model_channels):
    model = small_model(name, setting, informed_by, model_channels, **args)
    n_out = 1 if informed_by == "query" and setting == "informed" else len(SOURCES)
    for channels in (1, 2):
        for length in (1, 37, 1001):
            mixture = torch.randn(2, channels, length)
            out = model(mixture, condition_for(model, 2))
            assert out.stems.shape == (2, n_out, channels, length)
            assert torch.isfinite(out.stems).all()
            if setting == "blind":
                assert out.presence_logits.shape == (2, len(SOURCES))
            else:
                assert out.presence_logits is None


@pytest.mark.parametrize("name,args", CASES)
def test_silence_in_gives_silence_out_not_nan(name, args):
    model = small_model(name, **args)
    out = model(torch.zeros(1, 2, 500))
    assert torch.isfinite(out.stems).all()
    assert out.stems.abs().max() == 0  # the output is rescaled by the input's level


@pytest.mark.parametrize("name", WAVESEP_MODELS)
def test_multihot_informed_absent_sources_are_exactly_silent(name):
    model = small_model(name, "informed", "multihot")
    condition = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    stems = model(torch.randn(2, 2, 300), condition).stems
    assert stems[0, 1].abs().max() == 0 and stems[1].abs().max() == 0
    assert stems[0, 0].abs().max() > 0 and stems[0, 2].abs().max() > 0


def test_query_models_answer_each_query_differently():
    model = small_model("latent-wavenet", "informed", "query")
    for block in model.stacks.blocks:  # FiLM starts as the identity; make the condition matter
        torch.nn.init.normal_(block.film.proj.weight)
    mixture = torch.randn(1, 2, 400).expand(3, 2, 400)
    stems = model(mixture, torch.tensor([0, 1, 2])).stems
    assert not torch.allclose(stems[0], stems[1]) and not torch.allclose(stems[1], stems[2])


def test_conditions_are_checked():
    informed = small_model("conv", "informed", "multihot")
    with pytest.raises(ValueError, match="needs a condition"):
        informed(torch.randn(1, 2, 100))
    with pytest.raises(ValueError, match="multi-hot condition has shape"):
        informed(torch.randn(1, 2, 100), torch.ones(1, 2))
    with pytest.raises(ValueError, match="takes no condition"):
        small_model("conv")(torch.randn(1, 2, 100), torch.ones(1, 3))
    with pytest.raises(ValueError, match="must be \\(batch, 1 or 2 channels, time\\)"):
        small_model("conv")(torch.randn(2, 100))


def test_blind_detect_keeps_only_sources_judged_present():
    model = small_model("conv", "blind")
    with torch.no_grad():
        model.presence.linear.weight.zero_()
        model.presence.linear.bias.copy_(torch.tensor([5.0, -5.0, 5.0]))
    stems, probabilities = model.detect(torch.randn(1, 2, 200))
    assert probabilities[0, 0] > 0.99 and probabilities[0, 1] < 0.01
    assert stems[0, 1].abs().max() == 0 and stems[0, 0].abs().max() > 0
    with pytest.raises(ValueError, match="needs a blind model"):
        small_model("conv").detect(torch.randn(1, 2, 200))


@pytest.mark.parametrize("name,args", [*CASES, ("latent-wavenet", {"window": 32, "spectral_ffts": [32, 64]}),
                                       ("latent-wavenet", {"spectral_ffts": [64], "spectral_output": 32}),
                                       ("latent-wavenet", {"spectral_ffts": [64], "spectral_output": 32, **LEVEL})])
def test_receptive_field_is_what_the_model_says(name, args):
    """The inputs one output sample depends on (by its gradient) span ``receptive_field`` at the
    widest, over positions of every phase of the model's strides (checked on ``separate``,
    before the level normalisation, which is global by design)."""
    model = small_model(name, **args).double()
    length = model.valid_length(3 * model.receptive_field + 64)
    x = torch.randn(1, 2, length, dtype=torch.float64, requires_grad=True)
    out, _ = model.separate(x, None)
    widest = 0
    for t in range(length // 2, length // 2 + 32):
        (grad,) = torch.autograd.grad(out[0, 0, t], x, retain_graph=True)
        where = (grad[0].abs().amax(dim=0) > 0).nonzero().flatten()
        widest = max(widest, int(where.max() - where.min() + 1))
    if name == "waveunet":  # decimation: the span depends on the phase; the field is a tight bound
        assert model.receptive_field - 2**model.config.levels < widest <= model.receptive_field
    else:
        assert widest == model.receptive_field


@pytest.mark.parametrize("name", WAVESEP_MODELS)
def test_valid_length_is_at_least_the_length(name):
    model = small_model(name)
    for length in (1, 7, 100, 1023):
        assert model.valid_length(length) >= length


@pytest.mark.parametrize("name,args", CASES)
def test_save_then_load_gives_identical_outputs(name, args, tmp_path):
    model = small_model(name, "blind", **args)
    path = tmp_path / "model.pt"
    save_atomic(checkpoint_payload(model, {"note": "test"}), path)
    loaded = load_model(path)
    assert loaded.describe() == model.describe()
    mixture = torch.randn(2, 2, 777)
    with torch.no_grad():
        a, b = model(mixture), loaded(mixture)
    assert torch.equal(a.stems, b.stems) and torch.equal(a.presence_logits, b.presence_logits)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_describe_rebuilds_the_same_architecture():
    model = small_model("wavenet", "informed", "query")
    rebuilt = model_from_description(model.describe())
    assert rebuilt.spec == model.spec and rebuilt.config == model.config
    assert rebuilt.n_parameters() == model.n_parameters()


def test_self_description():
    model = small_model("latent-wavenet")
    assert model.sources == list(SOURCES) and model.sample_rate == 8000 and model.audio_channels == 2
    assert model.receptive_field > 0


def test_model_config_is_strict():
    with pytest.raises(ValueError, match="unknown key\\(s\\) for model 'wavenet': chanels"):
        model_config("wavenet", {"chanels": 3})
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        model_config("resnet")
    with pytest.raises(ValueError, match="stacks must be int"):
        model_config("wavenet", {"stacks": "four"})
    assert model_config("wavenet", {"final_channels": [8, 4]}).final_channels == (8, 4)
    with pytest.raises(ValueError, match="spectral_ffts 48: a quarter of it must be a multiple of stride \\(8\\)"):
        small_model("latent-wavenet", spectral_ffts=[64, 48])
    with pytest.raises(ValueError, match="spectral_output 48: a quarter of it must be a multiple of stride \\(8\\)"):
        small_model("latent-wavenet", spectral_output=48)
    with pytest.raises(ValueError, match="spectral_output_hz must be between 0 and half the sample rate"):
        small_model("latent-wavenet", spectral_output=64, spectral_output_hz=5000)


@pytest.mark.parametrize("stride, window", [(8, 16), (8, 8), (4, 16)])
def test_latent_wavenet_decodes_as_its_transposed_convolution(stride, window):
    """The decoder is computed as a matrix product and shifted adds, not by the transposed
    convolution it holds: the same output and gradients, one and four frames per window."""
    model = small_model("latent-wavenet", stride=stride, window=window)
    masked = torch.rand(3, 16, 40, requires_grad=True)
    ours, theirs = model._decode(masked), model.decoder(masked)
    torch.testing.assert_close(ours, theirs)
    upstream = torch.randn_like(ours)
    ours_grads = torch.autograd.grad(ours, [masked, model.decoder.weight], upstream)
    theirs_grads = torch.autograd.grad(theirs, [masked, model.decoder.weight], upstream)
    for a, b in zip(ours_grads, theirs_grads):
        torch.testing.assert_close(a, b)


def test_latent_wavenet_spectral_output_adds_nothing_until_trained():
    """Its gains start at zero: a new model's output is the latent path's alone, as without it."""
    spec = ModelSpec(SOURCES, sample_rate=8000)
    torch.manual_seed(0)
    plain = build_model("latent-wavenet", spec, SMALL["latent-wavenet"]).eval()
    torch.manual_seed(0)
    spectral = build_model("latent-wavenet", spec, {**SMALL["latent-wavenet"], **SPECTRAL_OUTPUT}).eval()
    mixture = torch.randn(2, 2, 500)
    with torch.no_grad():
        assert torch.equal(plain(mixture).stems, spectral(mixture).stems)


def test_latent_wavenet_spectral_output_corrects_only_up_to_its_highest_frequency():
    model = small_model("latent-wavenet", spectral_output=64, spectral_output_hz=1000)  # bins 0 ... 8 of 33
    time = torch.arange(4000) / 8000
    features = torch.randn(1, model.config.skip_channels, 4000 // model.config.stride)
    with torch.no_grad():
        low, high = (model.spectral_output(torch.sin(2 * torch.pi * hz * time).expand(1, 2, -1), features)
                     for hz in (500, 2500))
    low, high = low[..., 200:-200].square().mean(), high[..., 200:-200].square().mean()  # away from the edges
    assert low > 1e-4 and high < 1e-6 * low  # the Hann window's leakage: -77 dB here


def test_latent_wavenet_spectral_output_gives_each_output_its_own_gains_on_each_channel():
    """Output k's bins scaled by k + 1, the others by nothing: output k is (k + 1) times the
    mixture, channel by channel (the STFT inverts exactly away from the edges), in every batch item."""
    model = small_model("latent-wavenet", spectral_output=64)
    path = model.spectral_output
    torch.nn.init.zeros_(path.gains[1].weight)
    with torch.no_grad():
        path.gains[1].bias.copy_(torch.arange(1.0, len(SOURCES) + 1).repeat_interleave(path.bins))
        mixture = torch.randn(3, 2, 800)  # every item and channel different
        features = torch.randn(3, model.config.skip_channels, 800 // model.config.stride)
        out = path(mixture, features).view(3, len(SOURCES), 2, 800)
    for k in range(len(SOURCES)):
        torch.testing.assert_close(out[:, k, :, 64:-64], (k + 1) * mixture[..., 64:-64], atol=1e-5, rtol=1e-5)


def test_latent_wavenet_level_input_marks_onsets_whatever_the_loudness():
    """A frame's level against the frames around it: a step up in energy stands out where it
    happens, steady frames give nothing, and scaling the mixture changes nothing."""
    level = small_model("latent-wavenet", **LEVEL).level
    torch.nn.init.ones_(level.project.weight)  # each channel is the relative level itself
    coefficients = torch.full((1, 16, 40), 0.01)
    coefficients[..., 20:] = 1.0  # +4 bels at frame 20
    with torch.no_grad():
        relative = level(coefficients)[0, 0]
        torch.testing.assert_close(level(100 * coefficients)[0, 0], relative)
    assert relative[:17].abs().max() < 1e-5 and relative[24:].abs().max() < 1e-5  # 3 frames either side see no step
    assert relative[20] == relative.max() and relative[20] > 1.5 and relative[19] < -1.5


def test_wavenet_defaults_are_the_original():
    config = model_config("wavenet")
    assert (config.stacks, config.blocks, config.channels, config.final_channels) == (4, 10, 128, (512, 256))
    model = build_model("wavenet", ModelSpec(("a",)))
    assert model.stacks.dilations[:10] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert len(model.stacks.dilations) == 40


def test_spec_rejects_bad_values():
    with pytest.raises(ValueError, match="setting must be one of"):
        ModelSpec(SOURCES, setting="oracle")
    with pytest.raises(ValueError, match="distinct"):
        ModelSpec(("a", "a"))


def test_condition_values_are_checked():
    with pytest.raises(ValueError, match="query source indices must be in 0..2"):
        small_model("conv", "informed", "query")(torch.randn(2, 2, 100), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="holds only 0 and 1"):
        small_model("conv", "informed", "multihot")(torch.randn(1, 2, 100), torch.tensor([[1.0, 0.5, 0.0]]))


def test_latent_wavenet_under_cpu_bfloat16_autocast_matches_float32():
    """Forward and backward, with a spectral input and output: its 128-tap encoder runs in float32
    and its decoder is a matrix product, since oneDNN's bfloat16 convolutions with such kernels
    return garbage on CPUs with AMX (torch 2.13), which made bfloat16 training learn nothing while
    the decoder was a transposed convolution (its backward pass is such a convolution)."""
    torch.manual_seed(0)
    config = {"stride": 64, "window": 128, "basis": 64, "channels": 16, "skip_channels": 16, "stacks": 1, "blocks": 3,
              "spectral_ffts": [512], "spectral_output": 512}
    model = with_spectral_gains(build_model("latent-wavenet", ModelSpec(SOURCES), config))
    data = torch.Generator().manual_seed(1)  # the same data whatever the model drew
    mixture, target = torch.randn(1, 2, 44100, generator=data), torch.randn(1, len(SOURCES), 2, 44100, generator=data)

    def run(bf16: bool):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            stems = model(mixture).stems.float()
        (stems - target).square().mean().backward()
        return stems.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}

    def snr(exact, other):
        return float(10 * torch.log10(exact.square().sum() / (exact - other).square().sum()))

    (exact, exact_grads), (fast, fast_grads) = run(False), run(True)
    assert snr(exact, fast) > 30, f"bfloat16 output is {snr(exact, fast):.1f} dB from float32"
    worst = min(exact_grads, key=lambda name: snr(exact_grads[name], fast_grads[name]))
    assert snr(exact_grads[worst], fast_grads[worst]) > 20, f"{worst}'s bfloat16 gradient is off"
