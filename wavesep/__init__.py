"""wavesep: music source separation in the waveform domain, trained on stems rendered from MIDI."""

__version__ = "0.1.0"
