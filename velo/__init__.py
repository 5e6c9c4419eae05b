"""velo: learned optimizers in JAX.

`velo` knows nothing of `meta_train`; it uses `tasks` only for its training loop and evaluation.
"""

__version__ = "0.1.0"

__all__ = ["optax_lopt"]


def __getattr__(name: str):
    # Lazy, so `import velo` (and the CLI) does not pay for importing JAX and flax.
    if name == "optax_lopt":
        from velo.lopt import optax_lopt

        return optax_lopt
    raise AttributeError(f"module 'velo' has no attribute {name!r}")
