"""TensorBoard event files through tensorboardX, the optional ``velo[tensorboard]`` extra.

tensorboardX writes the event format with protobuf alone (no TensorFlow or PyTorch), so
``pip install 'velo[tensorboard]'`` stays small; ``tensorboard --logdir DIR`` (installed
separately) shows the curves.
"""

from __future__ import annotations

import glob
import os
import struct
import time


def open_writer(logdir: str, purge_step: int | None = None):
    """A `tensorboardX.SummaryWriter` on ``logdir``.

    Args:
      logdir: directory for the event files (created).
      purge_step: a run resumed at this step: TensorBoard hides the earlier events at this
        step and after, which the resumed run writes again.

    Raises:
      ValueError: tensorboardX is not installed.
    """
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ValueError(
            "TensorBoard logging needs tensorboardX: pip install 'velo[tensorboard]' (or drop "
            "--tensorboard)"
        ) from None
    # tensorboardX names files by the second: a resumed run in the same second would overwrite.
    suffix = f".{os.getpid()}.{time.time_ns()}"
    return SummaryWriter(logdir, purge_step=purge_step, flush_secs=10, filename_suffix=suffix)


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in ``logdir``'s event files: ``{tag: [(step, value), ...]}`` in file order."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            data = f.read()
        offset = 0
        while offset + 12 <= len(data):  # TFRecord: length, its CRC, payload, payload CRC
            (length,) = struct.unpack("<Q", data[offset:offset + 8])
            payload = data[offset + 12:offset + 12 + length]
            offset += 12 + length + 4
            event = event_pb2.Event.FromString(payload)
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars
