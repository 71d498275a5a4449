"""A small circuit breaker for the shared Redis.

When Redis stops answering, every request would otherwise wait for a connect timeout; after one
failure the hot path skips Redis for `cooldown` seconds and uses the database directly.
"""

import logging
import time

logger = logging.getLogger(__name__)


class Breaker:
    def __init__(self, name: str, cooldown: float = 5.0):
        self.name = name
        self.cooldown = cooldown
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self, error: Exception) -> None:
        if not self.is_open:
            logger.warning("%s unavailable, bypassing it for %.0fs: %r", self.name, self.cooldown, error)
        self._open_until = time.monotonic() + self.cooldown

    def reset(self) -> None:
        self._open_until = 0.0


redis_breaker = Breaker("redis")
