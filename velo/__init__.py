"""velo: learned optimizers in JAX.

``import velo`` is cheap: `optax_lopt` and the subpackages `velo.lopt`, `velo.baselines` and
`velo.evaluation` load on first use, so the command line does not pay for JAX and flax up front.
`velo` knows nothing of `meta_train`, and only `velo.evaluation` and the command line import `tasks`
(the training loop takes any object with the `tasks.Task` interface).
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = ("baselines", "evaluation", "lopt")

__all__ = ["optax_lopt", *_SUBPACKAGES]


def __getattr__(name: str):
    if name == "optax_lopt":
        from velo.lopt import optax_lopt

        return optax_lopt
    if name in _SUBPACKAGES:
        return importlib.import_module(f"velo.{name}")
    raise AttributeError(f"module 'velo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
