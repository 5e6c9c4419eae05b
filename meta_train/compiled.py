"""Ahead-of-time compiled functions, cached by key, with the compile time measured apart."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Hashable

import jax


class CompileCache:
    """Compiles ``jax.jit(fn)`` once per key and input shapes; remembers seconds spent compiling.

    Keys name the program (e.g. the task, learner and mesh); values passed as arguments, such as
    the horizon, are traced and so share one program. Shapes and shardings of the arguments are
    part of the key too, so a population of another size compiles afresh instead of failing.
    """

    def __init__(self):
        self._compiled: dict[Hashable, Callable] = {}
        self.seconds = 0.0

    def __call__(self, key: Hashable, fn: Callable, *args, **jit_kwargs):
        """``jax.jit(fn, **jit_kwargs)(*args)``, compiling on first use of ``key``."""
        signature = (key, jax.tree.structure(args), tuple(
            (x.shape, x.dtype, getattr(x, "sharding", None)) for x in jax.tree.leaves(args)
        ))
        compiled = self._compiled.get(signature)
        if compiled is None:
            start = time.perf_counter()
            compiled = jax.jit(fn, **jit_kwargs).lower(*args).compile()
            self.seconds += time.perf_counter() - start
            self._compiled[signature] = compiled
        return compiled(*args)


def enable_persistent_cache(directory: str) -> None:
    """Keep compiled programs in ``directory`` across processes (JAX's persistent cache)."""
    jax.config.update("jax_compilation_cache_dir", os.path.abspath(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
