"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM.

While a run is active the first of these signals only sets a flag. The flag is checked after
every compiled chunk of inner steps (`population.Runner.advance` waits for each chunk, so a check
comes at least once per chunk rather than once per dispatched generation); when it is set, the
loop checkpoints the last completed generation and raises `Stopped`. A second signal gets the
default behaviour (immediate exit). A compile in progress is not interrupted: the signal is seen
after it. In a multi-process run the processes agree on the flag at every check, so all of them
stop at the same chunk and write the checkpoint together.
"""

from __future__ import annotations

import signal
import threading

import jax
import numpy as np

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """A run stopped by a signal after checkpointing.

    Attributes:
      signum: the signal received.
      generation: generations completed, all saved in the run's latest checkpoint.
    """

    def __init__(self, signum: int, generation: int | None = None):
        super().__init__(signum, generation)
        self.signum = signum
        self.generation = generation

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by ``signum``."""
        return 128 + self.signum

    def message(self, out: str) -> str:
        name = signal.Signals(self.signum).name
        return (f"stopped by {name} after generation {self.generation}; checkpoint written to "
                f"{out}; continue with --resume")


class StopFlag:
    """Context manager catching `SIGNALS` for the duration of a run (main thread only)."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        del frame
        self.signum = signum
        for s, handler in self._previous.items():  # a second signal acts at once
            signal.signal(s, handler)

    def check(self, outputs=None) -> None:
        """Wait for ``outputs`` (arrays being computed), then raise `Stopped` if signalled."""
        if outputs is not None:
            jax.block_until_ready(outputs)
        signum = self.signum or 0
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            signum = int(np.max(multihost_utils.process_allgather(np.int32(signum))))
        if signum:
            raise Stopped(signum)


def never(outputs=None) -> None:
    """A check that never stops: for runners outside a meta-training run (benchmarks)."""
    del outputs
