"""Compatibility import for :mod:`sdo.demo`: the module is :mod:`sdo.evaluation.replay`."""

from sdo.evaluation.replay import replay_events

__all__ = ["replay_events"]
