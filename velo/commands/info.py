"""``velo info``: versions, devices and where checkpoints are found."""

from __future__ import annotations

import importlib.metadata
import platform

PACKAGES = ("velo", "jax", "jaxlib", "flax", "optax", "evosax", "orbax-checkpoint", "numpy")


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="print versions, devices and checkpoint locations")
    p.set_defaults(func=run)


def run(args) -> int:
    import jax

    from velo.lopt import shipped

    print(f"python {platform.python_version()} on {platform.platform()}")
    for name in PACKAGES:
        try:
            print(f"{name:>18} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            print(f"{name:>18} not installed")
    devices = jax.devices()
    print(f"backend {jax.default_backend()}, {len(devices)} device(s): "
          f"{', '.join(str(d) for d in devices)}")
    print(f"checkpoints directory: {shipped.directory()}")
    names = shipped.names()
    print(f"shipped checkpoints: {'' if names else '(none)'}")
    for name in names:
        print(f"  {describe(name)}")
    return 0


def describe(name: str) -> str:
    """One line on shipped checkpoint ``name``: size, provenance and where its model card is."""
    import os

    from velo import lopt

    path = lopt.shipped.path(name)
    _, config, metadata = lopt.load(path)
    default = " (default)" if name == lopt.DEFAULT_CHECKPOINT else ""
    card = os.path.join(path, "README.md")
    return (f"{name}{default}: {lopt.num_meta_params(config):,} meta-parameters, "
            f"{metadata.get('source', 'unknown source')} generation "
            f"{metadata.get('generation', '?')}; model card {card}")
