"""wavesep: music source separation in the waveform domain, trained on stems rendered from MIDI."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # wavesep.Separator without importing torch for `wavesep --version` and the render workers.
    if name == "Separator":
        from wavesep.separate import Separator

        return Separator
    raise AttributeError(f"module 'wavesep' has no attribute {name!r}")


__all__ = ["Separator", "__version__"]
