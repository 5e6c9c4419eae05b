"""Hand-designed optimizers, all with velo's calling convention."""

from velo.baselines.registry import make, names

__all__ = ["make", "names"]
