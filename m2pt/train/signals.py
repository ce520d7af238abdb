"""SIGINT/SIGTERM handling: finish the current step, save, then stop (opt-in: entry points turn it on)."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any, Optional


class StopRequest:
    """Set by SIGINT/SIGTERM while installed; the loop checks it after each step.

    A second SIGINT while stopping raises ``KeyboardInterrupt`` as usual.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: Optional[str] = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread: no handlers
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class NoStopRequest:
    """A :class:`StopRequest` that installs nothing: the process's signal handlers stay as they are."""

    requested = False
    signal_name: Optional[str] = None

    def __enter__(self) -> "NoStopRequest":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None
