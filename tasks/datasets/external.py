"""Optional datasets: downloaded ones (extra ``datasets``) and local ``.npz`` files.

Images are resized to the 8x8 the image families use and scaled to [0, 1]; text becomes byte
tokens. Without the extra, or offline, loading fails with a message naming the extra and the
local-file alternative, which needs neither.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tasks.datasets.base import Dataset, DatasetInfo
from tasks.datasets.text import token_dataset

NPZ_PREFIX = "npz:"
IMAGE_SIZE = 8
NPZ_LAYOUT = (
    "an .npz holding x_train, y_train, x_test, y_test (images [n, h, w] or [n, h, w, c], or "
    "vectors [n, d], with integer labels [n]) or train_tokens, test_tokens (integer token streams)"
)


class External(NamedTuple):
    """A downloadable dataset: what it holds and where the two supported libraries keep it."""

    info: DatasetInfo
    tfds_name: str
    hf_name: str


EXTERNAL = {
    "mnist": External(DatasetInfo("image", (8, 8, 1), 10), "mnist", "mnist"),
    "fashion_mnist": External(
        DatasetInfo("image", (8, 8, 1), 10), "fashion_mnist", "fashion_mnist"
    ),
    "cifar10": External(DatasetInfo("image", (8, 8, 3), 10), "cifar10", "cifar10"),
    "tiny_shakespeare": External(
        DatasetInfo("text", (), 256, target="tokens"), "tiny_shakespeare",
        "karpathy/tiny_shakespeare"
    ),
}


def resize_images(x: np.ndarray, size: int = IMAGE_SIZE) -> np.ndarray:
    """``[n, h, w(, c)]`` images as ``[n, size, size, c]`` float32 in [0, 1] (antialiased)."""
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
        x = x[..., None]
    if x.max() > 1.0:
        x = x / 255.0
    shape = (x.shape[0], size, size, x.shape[-1])
    return np.asarray(jax.image.resize(jnp.asarray(x), shape, "linear", antialias=True))


def from_arrays(arrays: dict[str, np.ndarray], where: str) -> Dataset:
    """A `Dataset` from named numpy arrays (the ``.npz`` layout); ``where`` names them in errors."""
    if "train_tokens" in arrays and "test_tokens" in arrays:
        train = np.asarray(arrays["train_tokens"]).astype(np.int64).ravel()
        test = np.asarray(arrays["test_tokens"]).astype(np.int64).ravel()
        vocab = int(max(train.max(), test.max())) + 1
        tokens = np.concatenate([train, test])
        return token_dataset(tokens, vocab, test_fraction=len(test) / len(tokens))
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}; expected {NPZ_LAYOUT}")
    x_train, x_test = np.asarray(arrays["x_train"]), np.asarray(arrays["x_test"])
    y_train, y_test = np.asarray(arrays["y_train"]), np.asarray(arrays["y_test"])
    if not (np.issubdtype(y_train.dtype, np.integer) and y_train.ndim == 1):
        raise ValueError(f"{where}: y_train must be integer labels [n], got {y_train.dtype} "
                         f"{y_train.shape}; expected {NPZ_LAYOUT}")
    if x_train.ndim in (3, 4):
        x_train, x_test = resize_images(x_train), resize_images(x_test)
        kind = "image"
    elif x_train.ndim == 2:
        kind = "vector"
    else:
        raise ValueError(f"{where}: x_train has shape {x_train.shape}; expected {NPZ_LAYOUT}")
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError(f"{where}: inputs and labels differ in length; expected {NPZ_LAYOUT}")
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    info = DatasetInfo(kind, tuple(x_train.shape[1:]), num_classes)

    def put(a, dtype):
        return jnp.asarray(np.asarray(a, dtype))

    return Dataset(info, put(x_train, np.float32), put(y_train, np.int32),
                   put(x_test, np.float32), put(y_test, np.int32))


@functools.cache
def load_npz(path: str) -> Dataset:
    """The dataset stored in the ``.npz`` file at ``path`` (layout: see `NPZ_LAYOUT`)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(
            f"cannot read dataset file {path!r} ({e}); expected {NPZ_LAYOUT}"
        ) from None
    return from_arrays(arrays, f"dataset file {path!r}")


def _missing_extra(name: str, cause: str) -> ValueError:
    return ValueError(
        f"dataset {name!r} could not be loaded ({cause}). It needs the optional extra "
        f"(pip install 'velo[datasets]') and network access once; offline, save {NPZ_LAYOUT} "
        f"and use dataset 'npz:/path/to/file.npz' instead"
    )


def _arrays_from_tfds(name: str) -> dict[str, np.ndarray]:
    import tensorflow_datasets as tfds

    ext = EXTERNAL[name]
    train, test = tfds.as_numpy(tfds.load(ext.tfds_name, split=["train", "test"], batch_size=-1))
    if ext.info.kind == "text":
        return {"train_tokens": np.frombuffer(b"".join(train["text"]), np.uint8),
                "test_tokens": np.frombuffer(b"".join(test["text"]), np.uint8)}
    return {"x_train": train["image"], "y_train": train["label"],
            "x_test": test["image"], "y_test": test["label"]}


def _arrays_from_hf(name: str) -> dict[str, np.ndarray]:
    import datasets as hf

    ext = EXTERNAL[name]
    data = hf.load_dataset(ext.hf_name)
    if ext.info.kind == "text":
        def tokens(split):
            return np.frombuffer("".join(data[split]["text"]).encode("utf-8"), np.uint8)

        return {"train_tokens": tokens("train"), "test_tokens": tokens("test")}
    image_key = "image" if "image" in data["train"].column_names else "img"

    def images(split):
        return np.stack([np.asarray(im) for im in data[split][image_key]])

    return {"x_train": images("train"), "y_train": np.asarray(data["train"]["label"]),
            "x_test": images("test"), "y_test": np.asarray(data["test"]["label"])}


@functools.cache
def load_external(name: str) -> Dataset:
    """Download-once dataset ``name`` through tensorflow-datasets or Hugging Face ``datasets``."""
    errors = []
    for loader in (_arrays_from_tfds, _arrays_from_hf):
        try:
            arrays = loader(name)
        except ImportError as e:
            errors.append(f"{e.name or 'library'} not installed")
            continue
        except Exception as e:  # noqa: BLE001 - offline failures come in many types
            errors.append(f"{type(e).__name__}: {e}")
            continue
        # The declared info (vocabulary 256 for bytes) holds even if the text uses fewer symbols.
        return from_arrays(arrays, f"dataset {name!r}")._replace(info=EXTERNAL[name].info)
    raise _missing_extra(name, "; ".join(errors))
