"""Rate limits, concurrency and budgets: exact across replicas through Redis, or in-process."""

from .keys import MICRO, Period, usage_key
from .limiter import Admission, Limiter

__all__ = ["MICRO", "Admission", "Limiter", "Period", "usage_key"]
