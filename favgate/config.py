"""Settings: the one place that reads the environment.

Every variable is prefixed ``FAVGATE_`` except ``MONGODB_URI``, the name deployments
already use. Values are parsed and checked once, at start-up, so that a typo fails fast
with a message naming the variable instead of surfacing as a strange error per request.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeVar, get_args

from pymongo.uri_parser import parse_uri

Driver = Literal["motor", "pymongo"]
Environment = Literal["development", "production"]

DEFAULT_DATABASE = "favgate"
# Token and instance lookups are cached this long; capped so revocations and status
# changes take effect within 2 s (see favgate.storage.caching).
DEFAULT_CACHE_TTL = 1.0
MAX_CACHE_TTL = 2.0
_T = TypeVar("_T", bound=str)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A setting is missing or malformed."""


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """favgate's configuration. Build it with ``Settings.from_env()`` or directly in tests."""

    mongodb_uri: str | None = dataclasses.field(default=None, repr=False)
    database: str = DEFAULT_DATABASE
    mongo_driver: Driver = "motor"
    environment: Environment = "development"
    data_dir: Path = Path(".favgate")
    host: str = "127.0.0.1"
    port: int = 8000
    # Journaled writes by default: an acknowledged favorite survives a crash of the server.
    write_concern_w: int | str = 1
    write_journal: bool = True
    # How long a request waits for an unreachable database before answering 503.
    database_timeout_ms: int = 5000
    graphiql: bool = True
    # Abuse limits: GraphQL documents (favgate.schema.limits), request bodies (favgate.bodylimit).
    introspection: bool = True
    max_query_depth: int = 10
    max_query_aliases: int = 15
    max_query_tokens: int = 2000
    max_body_bytes: int = 64 * 1024
    log_level: str = "info"
    # Subscriptions (and other operations in flight) one WebSocket connection may hold.
    max_subscriptions_per_connection: int = 10
    cache_ttl_seconds: float = DEFAULT_CACHE_TTL
    # Requests per token per 60 s, shared by REST and GraphQL (favgate.ratelimit).
    rate_limit: int = 100
    # Busy keys take units ahead, saving round trips (favgate.limiter).
    rate_limit_leases: bool = True
    # Webhooks (favgate.webhooks): whether this process relays and sends them, how long
    # a delivery is retried before it is recorded as failed, the first retry's delay
    # (doubling from there), and whether URLs may point into private networks
    # (development and tests only).
    webhook_worker: bool = True
    webhook_retry_hours: float = 24.0
    webhook_backoff_seconds: float = 5.0
    webhook_allow_private: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        uri = env.get("MONGODB_URI") or None
        environment = _choice(env, "FAVGATE_ENV", get_args(Environment), "development")
        return cls(
            mongodb_uri=uri,
            database=_database_from_uri(uri),
            mongo_driver=_choice(env, "FAVGATE_MONGO_DRIVER", get_args(Driver), "motor"),
            environment=environment,
            data_dir=Path(env.get("FAVGATE_DATA_DIR", ".favgate")),
            host=env.get("FAVGATE_HOST", "127.0.0.1"),
            port=_integer(env, "FAVGATE_PORT", 8000),
            write_concern_w=_write_concern_w(env.get("FAVGATE_WRITE_CONCERN_W", "1")),
            write_journal=_boolean(env, "FAVGATE_WRITE_JOURNAL", True),
            database_timeout_ms=_integer(env, "FAVGATE_DATABASE_TIMEOUT_MS", 5000),
            graphiql=_boolean(env, "FAVGATE_GRAPHIQL", environment == "development"),
            introspection=_boolean(env, "FAVGATE_INTROSPECTION", environment == "development"),
            max_query_depth=_integer(env, "FAVGATE_MAX_QUERY_DEPTH", 10),
            max_query_aliases=_integer(env, "FAVGATE_MAX_QUERY_ALIASES", 15),
            max_query_tokens=_integer(env, "FAVGATE_MAX_QUERY_TOKENS", 2000),
            max_body_bytes=_integer(env, "FAVGATE_MAX_BODY_BYTES", 64 * 1024),
            log_level=env.get("FAVGATE_LOG_LEVEL", "info").lower(),
            max_subscriptions_per_connection=_integer(
                env, "FAVGATE_MAX_SUBSCRIPTIONS_PER_CONNECTION", 10
            ),
            cache_ttl_seconds=_cache_ttl(env.get("FAVGATE_CACHE_TTL_SECONDS")),
            rate_limit=_integer(env, "FAVGATE_RATE_LIMIT", 100),
            rate_limit_leases=_boolean(env, "FAVGATE_RATE_LIMIT_LEASES", True),
            webhook_worker=_boolean(env, "FAVGATE_WEBHOOK_WORKER", True),
            webhook_retry_hours=_number(env, "FAVGATE_WEBHOOK_RETRY_HOURS", 24.0),
            webhook_backoff_seconds=_number(env, "FAVGATE_WEBHOOK_BACKOFF_SECONDS", 5.0),
            webhook_allow_private=_boolean(env, "FAVGATE_WEBHOOK_ALLOW_PRIVATE", False),
        )

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def with_uri(self, uri: str) -> Settings:
        """These settings pointed at ``uri``, taking the database name from its path."""
        return self.replace(mongodb_uri=uri, database=_database_from_uri(uri))

    @property
    def redacted_uri(self) -> str | None:
        """The URI with its password hidden, fit for logs."""
        if self.mongodb_uri is None:
            return None
        scheme, sep, rest = self.mongodb_uri.partition("://")
        # Credentials end at the last "@" of the authority, before any path or options.
        authority, slash, path = rest.partition("/")
        credentials, at, hosts = authority.rpartition("@")
        if not at:
            return self.mongodb_uri
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{hosts}{slash}{path}"

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self) if f.repr
        )
        return f"Settings(mongodb_uri={self.redacted_uri!r}, {fields})"


def _database_from_uri(uri: str | None) -> str:
    if uri is None:
        return DEFAULT_DATABASE
    try:
        parsed = parse_uri(uri, validate=False)
    except Exception as exc:  # pymongo raises several types for a bad URI
        raise ConfigError(f"MONGODB_URI is not a valid MongoDB URI: {exc}") from None
    return parsed.get("database") or DEFAULT_DATABASE


def _choice(env: Mapping[str, str], name: str, choices: tuple[_T, ...], default: _T) -> _T:
    value = env.get(name, default).strip().lower()
    for choice in choices:
        if value == choice:
            return choice
    raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _cache_ttl(raw: str | None) -> float:
    if raw is None:
        return DEFAULT_CACHE_TTL
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_CACHE_TTL:  # NaN fails this too
        raise ConfigError(
            f"FAVGATE_CACHE_TTL_SECONDS must be a number from 0 to {MAX_CACHE_TTL}; got {raw!r}"
        )
    return value


def _integer(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number; got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive; got {value}")
    return value


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:  # NaN fails this too
        raise ConfigError(f"{name} must be a positive number; got {raw!r}")
    return value


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false; got {raw!r}")


def _write_concern_w(raw: str) -> int | str:
    if raw == "majority":
        return raw
    if raw.isascii() and raw.isdigit():  # str.isdigit alone accepts '²', which int() refuses
        return int(raw)
    raise ConfigError(f"FAVGATE_WRITE_CONCERN_W must be a number or 'majority'; got {raw!r}")
