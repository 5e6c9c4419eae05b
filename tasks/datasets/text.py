"""Character-level text: the English corpus shipped in ``tasks/data`` (see its README)."""

from __future__ import annotations

import importlib.resources

import jax.numpy as jnp
import numpy as np

from tasks.datasets.base import Dataset, DatasetInfo

# Newline, then the 95 printable ASCII characters: the whole alphabet of ``english.txt``.
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))


def encode(text: str) -> np.ndarray:
    """``[len(text)]`` int32 indices into `ALPHABET`; other characters map to ``?``."""
    table = np.full(128, ALPHABET.index("?"), np.int32)
    table[[ord(c) for c in ALPHABET]] = np.arange(len(ALPHABET))
    codes = np.frombuffer(text.encode("ascii", "replace"), np.uint8)
    return table[codes]


def token_dataset(tokens: np.ndarray, vocab: int, test_fraction: float = 0.1) -> Dataset:
    """A token stream split into a leading train part and a trailing test part."""
    n_test = int(len(tokens) * test_fraction)
    train, test = tokens[:-n_test], tokens[-n_test:]
    info = DatasetInfo("text", (), vocab, target="tokens")
    return Dataset(info, jnp.asarray(train, jnp.int32), None, jnp.asarray(test, jnp.int32), None)


def load_english() -> Dataset:
    """465 K characters of Python's reference prose; the last 10 % is the test split."""
    text = importlib.resources.files("tasks").joinpath("data/english.txt").read_text("ascii")
    return token_dataset(encode(text), len(ALPHABET))
