"""Client-side rate limits for hosted APIs: requests and tokens per minute.

Two token buckets that refill continuously. A request waits until both hold something;
its tokens are debited when its usage is known, so a burst of long answers slows the next
requests instead of having them refused (and retried, and paid for) by the API. Buckets
start with ten seconds' worth, so a run does not open with a minute's burst.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimiter:
    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.rates = {"requests": requests_per_minute, "tokens": tokens_per_minute}
        self.capacity = {k: max(1.0, r / 6) for k, r in self.rates.items() if r}
        self.level = dict(self.capacity)
        self.clock, self.sleep = clock, sleep
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        for kind, cap in self.capacity.items():
            self.level[kind] = min(cap, self.level[kind] + (now - self.updated) * self.rates[kind] / 60)
        self.updated = now

    async def acquire(self) -> None:
        while True:
            self._refill()
            short = {kind: (1.0 if kind == "requests" else 1e-9) - level for kind, level in self.level.items()}
            if all(gap <= 0 for gap in short.values()):
                if "requests" in self.level:
                    self.level["requests"] -= 1
                return
            await self.sleep(max(gap * 60 / self.rates[kind] for kind, gap in short.items() if gap > 0))

    def spend(self, tokens: int) -> None:
        if "tokens" in self.level:
            self._refill()
            self.level["tokens"] -= tokens
