"""Running a model in each setting, and scoring it on validation chunks with SI-SDR per stem."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch

from wavesep.losses import si_sdr
from wavesep.models import SeparationModel
from wavesep.train.data import presence_labels

EXTRA_QUERY_PROBABILITY = 0.25  # informed multi-hot training: also ask for absent sources this often


def run_setting(model: torch.nn.Module, spec, mixture: torch.Tensor, stems: torch.Tensor,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Run ``model`` as its setting requires; return (estimates, the references they match, presence logits).

    Informed models are told the truth: the multi-hot vector of the stems playing in the chunk
    (in training, with ``generator``, absent stems are added at random, so the model learns to
    answer silence); a query model is asked for one random source per example in training (absent
    ones included), and for every source in turn without ``generator``.

    Shape:
        mixture (batch, channels, time), stems (batch, sources, channels, time) ->
        estimates and references (batch, sources or 1, channels, time), logits (batch, sources).
    """
    if spec.setting != "informed":
        out = model(mixture)
        return out.stems, stems, out.presence_logits
    labels = presence_labels(stems)
    if not spec.query:
        if generator is not None:
            extra = torch.rand(labels.shape, generator=generator) < EXTRA_QUERY_PROBABILITY
            labels = torch.maximum(labels, extra.to(labels))
        return model(mixture, labels.to(mixture.device)).stems, stems, None
    batch = mixture.shape[0]
    if generator is not None:
        query = torch.randint(spec.n_sources, (batch,), generator=generator).to(mixture.device)
        return model(mixture, query).stems, stems[torch.arange(batch), query].unsqueeze(1), None
    estimates = [model(mixture, torch.full((batch,), s, device=mixture.device)).stems for s in range(spec.n_sources)]
    return torch.cat(estimates, dim=1), stems, None


@dataclass
class ValidScores:
    """SI-SDR per stem on the validation chunks where that stem plays (a silent reference has no
    SI-SDR: it is not counted, and ``counted`` says how many chunks were), the improvement over
    using the mixture as the estimate, and the blind presence head's accuracy."""

    sources: list[str]
    si_sdr: dict[str, float | None] = field(default_factory=dict)  # None: the stem never played
    si_sdri: dict[str, float | None] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)
    presence_accuracy: float | None = None

    def _mean(self, scores: dict[str, float | None]) -> float:
        """Mean over the stems that played at least once; -inf when none did."""
        values = [scores[s] for s in self.sources if self.counted.get(s)]
        return sum(values) / len(values) if values else float("-inf")

    @property
    def mean_si_sdr(self) -> float:
        return self._mean(self.si_sdr)

    @property
    def mean_si_sdri(self) -> float:
        return self._mean(self.si_sdri)

    def as_dict(self) -> dict:
        return {"si_sdr": self.si_sdr, "si_sdri": self.si_sdri, "counted": self.counted,
                "mean_si_sdr": self.mean_si_sdr, "mean_si_sdri": self.mean_si_sdri,
                "presence_accuracy": self.presence_accuracy}


@torch.no_grad()
def validate(model: SeparationModel, chunks: Iterable[tuple[torch.Tensor, torch.Tensor]],
             device: torch.device, batch_size: int = 4) -> tuple[ValidScores, torch.Tensor | None]:
    """Score ``model`` on ``(mixture, stems)`` chunks; also return the estimates of the first batch,
    (batch, sources, channels, time), for listening. Chunks are (channels, time) and (sources,
    channels, time)."""
    spec = model.spec
    was_training = model.training
    model.eval()
    totals = torch.zeros(spec.n_sources, dtype=torch.float64)
    improvements = torch.zeros_like(totals)
    counts = torch.zeros(spec.n_sources, dtype=torch.long)
    correct = judged = 0
    first = None
    loader = torch.utils.data.DataLoader(chunks if hasattr(chunks, "__getitem__") else list(chunks),
                                         batch_size=batch_size)
    for mixture, stems in loader:
        mixture, stems = mixture.to(device), stems.to(device)
        estimates, references, logits = run_setting(model, spec, mixture, stems)
        estimates = estimates.float()
        first = estimates.cpu() if first is None else first
        playing = presence_labels(references).bool().cpu()  # (batch, sources)
        # (batch, sources): channels pooled, as wavesep.metrics and `wavesep evaluate` score them
        scores = si_sdr(estimates.flatten(-2), references.flatten(-2)).cpu()
        baseline = si_sdr(mixture.unsqueeze(1).expand_as(references).flatten(-2), references.flatten(-2)).cpu()
        totals += (scores * playing).sum(dim=0).double()
        improvements += ((scores - baseline) * playing).sum(dim=0).double()
        counts += playing.sum(dim=0)
        if logits is not None:
            correct += int(((logits.cpu() > 0) == playing).sum())
            judged += playing.numel()
    model.train(was_training)
    result = ValidScores(list(spec.sources))
    for i, name in enumerate(spec.sources):
        n = int(counts[i])
        result.counted[name] = n
        result.si_sdr[name] = float(totals[i] / n) if n else None
        result.si_sdri[name] = float(improvements[i] / n) if n else None
    if judged:
        result.presence_accuracy = correct / judged
    return result, first
