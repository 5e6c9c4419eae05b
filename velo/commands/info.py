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

    import checkpoints

    print(f"python {platform.python_version()} on {platform.platform()}")
    for name in PACKAGES:
        try:
            print(f"{name:>18} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            print(f"{name:>18} not installed")
    devices = jax.devices()
    print(f"backend {jax.default_backend()}, {len(devices)} device(s): "
          f"{', '.join(str(d) for d in devices)}")
    print(f"checkpoints directory: {checkpoints.directory()}")
    shipped = checkpoints.names()
    print(f"shipped checkpoints: {', '.join(shipped) if shipped else '(none yet)'}")
    return 0
