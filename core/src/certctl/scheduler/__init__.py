"""Periodic work: named loops, leader election, and their status for ``/api/v1/scheduler``."""

from certctl.scheduler.loops import LoopSpec, builtin_loops
from certctl.scheduler.runner import Scheduler

__all__ = ["LoopSpec", "Scheduler", "builtin_loops"]
