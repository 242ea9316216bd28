"""Compatibility import for :mod:`sdo.demo`: the module is :mod:`sdo.evaluation.simulate`."""

from sdo.evaluation.simulate import simulate

__all__ = ["simulate"]
