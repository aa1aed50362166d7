"""Settings: the one place that reads the environment.

Every variable is prefixed ``FAVGATE_`` except ``MONGODB_URI``, the name deployments
already use. Values are parsed and checked once, at start-up, so that a typo fails fast
with a message naming the variable instead of surfacing as a strange error per request.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pymongo.uri_parser import parse_uri

Driver = Literal["motor", "pymongo"]
Environment = Literal["development", "production"]

DEFAULT_DATABASE = "favgate"
# Token and instance lookups are cached this long; capped so revocations and status
# changes take effect within 2 s (see favgate.storage.caching).
DEFAULT_CACHE_TTL = 1.0
MAX_CACHE_TTL = 2.0
Parser = Callable[[str, str], Any]  # (variable name, raw value) -> value
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# An origin as browsers send it: lowercase scheme and host, a port only if not the default.
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_ORIGIN = re.compile(
    rf"(?P<scheme>https?)://(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>[1-9]\d{0,4}))?"
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}


class ConfigError(ValueError):
    """A setting is missing or malformed."""


def _shown(default: object) -> str:
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, float) and default.is_integer():
        return f"`{int(default)}`"
    return f"`{default}`"


def _text(name: str, raw: str) -> str:
    return raw


def _optional_text(name: str, raw: str) -> str | None:
    return raw or None


def _lowercase(name: str, raw: str) -> str:
    return raw.lower()


def _path(name: str, raw: str) -> Path:
    return Path(raw)


def _optional_path(name: str, raw: str) -> Path | None:
    return Path(raw) if raw else None


def _choice(choices: Any) -> Parser:
    """A parser of one of the ``Literal`` type's values, in any case."""
    allowed: tuple[str, ...] = get_args(choices)

    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        return value

    return parse


def _cache_ttl(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_CACHE_TTL:  # NaN fails this too
        raise ConfigError(f"{name} must be a number from 0 to {MAX_CACHE_TTL}; got {raw!r}")
    return value


def _integer(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number; got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive; got {value}")
    return value


def _number(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:  # NaN fails this too
        raise ConfigError(f"{name} must be a positive number; got {raw!r}")
    return value


def _boolean(name: str, raw: str) -> bool:
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false; got {raw!r}")


def _write_concern_w(name: str, raw: str) -> int | str:
    if raw == "majority":
        return raw
    if raw.isascii() and raw.isdigit():  # str.isdigit alone accepts '²', which int() refuses
        return int(raw)
    raise ConfigError(f"{name} must be a number or 'majority'; got {raw!r}")


def _origins(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated exact origins. The browser's ``Origin`` header is compared with each
    as a string, so one that could never equal it (a path, a wildcard, capitals, a default
    port) is refused here rather than silently matching nothing."""
    origins = tuple(origin.strip() for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if not _is_origin(origin):
            raise ConfigError(
                f"{name} must list origins as browsers send them, "
                "scheme://host[:port] (http or https, lowercase, no path, no wildcard, "
                f"no default port), e.g. https://app.example.com; got {origin!r}"
            )
    return origins


def _is_origin(value: str) -> bool:
    match = _ORIGIN.fullmatch(value)
    if match is None:
        return False
    port = match["port"]
    return port is None or (port != _DEFAULT_PORTS[match["scheme"]] and int(port) <= 65535)


def _default(cls: type[Settings], name: str) -> Any:
    return cls.__dataclass_fields__[name].default


def _database_from_uri(uri: str | None) -> str:
    if uri is None:
        return DEFAULT_DATABASE
    try:
        parsed = parse_uri(uri, validate=False)
    except Exception as exc:  # pymongo raises several types for a bad URI
        raise ConfigError(f"MONGODB_URI is not a valid MongoDB URI: {exc}") from None
    return parsed.get("database") or DEFAULT_DATABASE


def setting(
    env: str, default: Any, parse: Parser, shown: str | None = None, *, repr: bool = True
) -> Any:
    """A setting: its variable, default and parser, in one place. ``shown`` is the default
    as the README's settings table writes it (a test holds the two together)."""
    metadata = {"env": env, "parse": parse, "shown": shown or _shown(default)}
    return dataclasses.field(default=default, metadata=metadata, repr=repr)


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """favgate's configuration. Build it with ``Settings.from_env()`` or directly in tests.

    Each field that the environment sets names its variable, default and parser once."""

    mongodb_uri: str | None = setting(
        "MONGODB_URI", None, _optional_text, "unset: embedded database", repr=False
    )
    # Not a variable of its own: the URI's path names it.
    database: str = DEFAULT_DATABASE
    mongo_driver: Driver = setting("FAVGATE_MONGO_DRIVER", "motor", _choice(Driver))
    environment: Environment = setting("FAVGATE_ENV", "development", _choice(Environment))
    data_dir: Path = setting("FAVGATE_DATA_DIR", Path(".favgate"), _path)
    host: str = setting("FAVGATE_HOST", "127.0.0.1", _text)
    port: int = setting("FAVGATE_PORT", 8000, _integer)
    # Journaled writes by default: an acknowledged favorite survives a crash of the server.
    write_concern_w: int | str = setting("FAVGATE_WRITE_CONCERN_W", 1, _write_concern_w)
    write_journal: bool = setting("FAVGATE_WRITE_JOURNAL", True, _boolean)
    # How long a request waits for the database, stalled or gone, before answering 503.
    database_timeout_ms: int = setting("FAVGATE_DATABASE_TIMEOUT_MS", 5000, _integer)
    # Both default to on in development and off in production (from_env).
    graphiql: bool = setting("FAVGATE_GRAPHIQL", True, _boolean, "on in development")
    introspection: bool = setting("FAVGATE_INTROSPECTION", True, _boolean, "on in development")
    # Abuse limits: GraphQL documents (favgate.schema.limits), request bodies (favgate.bodylimit).
    max_query_depth: int = setting("FAVGATE_MAX_QUERY_DEPTH", 10, _integer)
    max_query_aliases: int = setting("FAVGATE_MAX_QUERY_ALIASES", 15, _integer)
    max_query_tokens: int = setting("FAVGATE_MAX_QUERY_TOKENS", 2000, _integer)
    max_body_bytes: int = setting("FAVGATE_MAX_BODY_BYTES", 64 * 1024, _integer)
    log_level: str = setting("FAVGATE_LOG_LEVEL", "info", _lowercase)
    # Subscriptions (and other operations in flight) one WebSocket connection may hold.
    max_subscriptions_per_connection: int = setting(
        "FAVGATE_MAX_SUBSCRIPTIONS_PER_CONNECTION", 10, _integer
    )
    # Subscriptions one token may hold open on this replica, all connections together.
    max_subscriptions_per_token: int = setting("FAVGATE_MAX_SUBSCRIPTIONS_PER_TOKEN", 100, _integer)
    # WebSocket compression, when the client offers it (favgate.wsprotocol).
    ws_per_message_deflate: bool = setting("FAVGATE_WS_PER_MESSAGE_DEFLATE", True, _boolean)
    cache_ttl_seconds: float = setting("FAVGATE_CACHE_TTL_SECONDS", DEFAULT_CACHE_TTL, _cache_ttl)
    # Units per token per 60 s, shared by REST and GraphQL (favgate.ratelimit).
    rate_limit: int = setting("FAVGATE_RATE_LIMIT", 100, _integer)
    # Busy keys take units ahead, saving round trips (favgate.ratelimit.limiter).
    rate_limit_leases: bool = setting("FAVGATE_RATE_LIMIT_LEASES", True, _boolean)
    # A manifest of the only GraphQL documents that may run (favgate.persisted).
    trusted_documents: Path | None = setting(
        "FAVGATE_TRUSTED_DOCUMENTS", None, _optional_path, "unset: any document"
    )
    # Origins of browser apps allowed to call the APIs (favgate.cors); none: no CORS at all.
    cors_origins: tuple[str, ...] = setting("FAVGATE_CORS_ORIGINS", (), _origins, "empty: no CORS")
    # Webhooks (favgate.webhooks): whether this process relays and sends them, how long
    # a delivery is retried before it is recorded as failed, the first retry's delay
    # (doubling from there), and whether URLs may point into private networks
    # (development and tests only).
    webhook_worker: bool = setting("FAVGATE_WEBHOOK_WORKER", True, _boolean)
    webhook_retry_hours: float = setting("FAVGATE_WEBHOOK_RETRY_HOURS", 24.0, _number)
    webhook_backoff_seconds: float = setting("FAVGATE_WEBHOOK_BACKOFF_SECONDS", 5.0, _number)
    webhook_allow_private: bool = setting("FAVGATE_WEBHOOK_ALLOW_PRIVATE", False, _boolean)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            name = field.metadata.get("env")
            if name is not None and env.get(name) is not None:
                values[field.name] = field.metadata["parse"](name, env[name])
        environment = values.get("environment", _default(cls, "environment"))
        development = environment == "development"
        values.setdefault("graphiql", development)
        values.setdefault("introspection", development)
        values["database"] = _database_from_uri(values.get("mongodb_uri"))
        return cls(**values)

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Each variable and its default as the README shows it."""
        return {
            field.metadata["env"]: field.metadata["shown"]
            for field in dataclasses.fields(cls)
            if "env" in field.metadata
        }

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
