"""One request's charge against a budget."""

from __future__ import annotations

from dataclasses import dataclass

from favgate.errors import RateLimited
from favgate.ratelimit.limiter import Decision, Limiter


@dataclass(slots=True)
class Budget:
    """One request's view of a rate-limit budget: it remembers the last decision, for
    the response's headers."""

    limiter: Limiter
    key: str
    last: Decision | None = None

    async def charge(self, cost: int) -> None:
        """Spend ``cost`` units, all or none; ``RateLimited`` when they are not all left."""
        self.last = await self.limiter.acquire(self.key, cost)
        if not self.last.admitted:
            raise RateLimited()

    def refuse_if_spent(self) -> None:
        """``RateLimited`` at once when the budget is known to be spent (``Limiter.spent``):
        a client that cannot pay gets no work done, not even a look at its request."""
        refusal = self.limiter.spent(self.key)
        if refusal is not None:
            self.last = refusal
            raise RateLimited()

    @property
    def limit(self) -> int:
        return self.limiter.policy.limit

    @property
    def window(self) -> int:
        return self.limiter.policy.window
