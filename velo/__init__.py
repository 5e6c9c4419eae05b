"""velo: learned optimizers in JAX.

`velo` knows nothing of `meta_train`; it uses `tasks` only for its training loop and evaluation.
"""

__version__ = "0.1.0"
