"""Pretrained learned optimizers shipped with velo, one directory each with a model card.

This package holds data only; read it with `velo.lopt.shipped` (``velo info`` lists it).
"""
