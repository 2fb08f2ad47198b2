"""The log writer; its home is `opsloop.shared.logwriter` (the agents ship their lines with it too)."""

from opsloop.shared.logwriter import LEVELS, LogWriter, Sink, SinkRejected

__all__ = ["LEVELS", "LogWriter", "Sink", "SinkRejected"]
