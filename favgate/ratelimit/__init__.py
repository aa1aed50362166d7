"""Rate limiting: one budget per token, shared by both APIs, exact across replicas.

A token may spend ``FAVGATE_RATE_LIMIT`` units in any ``window`` seconds (100 per 60 s by
default). A request is charged its whole cost before it does any work, in one decision:
a REST call costs 1, a GraphQL operation what its document holds
(``favgate.schema.cost``). A request that cannot pay runs nothing and is charged nothing.
A request without a known token is charged to its client's address, for the little it
may do (GraphQL introspection in development).

The parts, each explained where it lives:

- ``favgate.storage.ratelimits``: the budgets themselves, in MongoDB: per token, a sliding
  window of one-second buckets, checked and charged by one atomic ``findAndModify``, so
  that every gateway process draws on the same budget and together they never admit more.
- ``limiter``: the process's ``Limiter`` (the app's lifespan owns it), which saves round
  trips: concurrent checks of a token go together, and busy tokens lease units ahead.
  Its ``Decision`` carries what clients are told.
- ``budget``: one request's ``Budget`` (``favgate.identity`` gives each request one),
  which charges a cost and remembers the last decision for the response's headers.

Every charged response carries the budget, in the de facto fields and those of the IETF
draft (httpapi ratelimit-headers)::

    X-RateLimit-Limit: 100
    X-RateLimit-Remaining: 57
    X-RateLimit-Reset: 12
    RateLimit-Policy: "default";q=100;w=60
    RateLimit: "default";r=57;t=12

``Reset`` is the number of seconds until the whole budget is back; a refusal (429) adds
``Retry-After``, the seconds until the request would fit. Both are rounded up. If the
budget cannot be checked (the database is down), the request is refused 503: fail closed.
"""

from favgate.ratelimit.budget import Budget
from favgate.ratelimit.limiter import Decision, Limiter, Policy

__all__ = ["Budget", "Decision", "Limiter", "Policy"]
