"""What a dataset is: arrays on device plus a description of them."""

from __future__ import annotations

from typing import NamedTuple

import jax


class DatasetInfo(NamedTuple):
    """A dataset's shape, known without loading it.

    Attributes:
      kind: ``"image"`` (``[h, w, c]``), ``"signal"`` (``[length, c]``), ``"vector"`` (``[d]``),
        ``"text"`` (a token stream) or ``"quadratic"`` (no arrays).
      input_shape: shape of one example (``()`` for text).
      num_outputs: classes for labels, vocabulary size for text, target width for values.
      target: ``"labels"`` (int classes), ``"values"`` (float regression targets), ``"tokens"``
        (next-token prediction) or ``"none"``.
    """

    kind: str
    input_shape: tuple[int, ...]
    num_outputs: int
    target: str = "labels"


class Dataset(NamedTuple):
    """A dataset held on device.

    Attributes:
      info: its `DatasetInfo`.
      x_train: ``[n_train, *input_shape]`` float32 inputs, or ``[n_chars]`` int32 tokens for text.
      y_train: ``[n_train]`` int32 labels or ``[n_train, num_outputs]`` float32 targets; ``None``
        for text.
      x_test: as ``x_train``, for the test split.
      y_test: as ``y_train``, for the test split.
    """

    info: DatasetInfo
    x_train: jax.Array
    y_train: jax.Array | None
    x_test: jax.Array
    y_test: jax.Array | None
