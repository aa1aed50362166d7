"""Settings.from_env: defaults, parsing, fail-fast errors that name the variable, and a
repr that never shows the database password. Every test passes its own environ."""

from __future__ import annotations

from pathlib import Path

import pytest

from favgate.config import DEFAULT_DATABASE, ConfigError, Settings

SECRET_URI = "mongodb://user:s3cret@host/db"


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.mongodb_uri is None
    assert settings.redacted_uri is None
    assert settings.database == DEFAULT_DATABASE == "favgate"
    assert settings.mongo_driver == "motor"
    assert settings.environment == "development"
    assert settings.data_dir == Path(".favgate")
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert (settings.write_concern_w, settings.write_journal) == (1, True)
    assert settings.database_timeout_ms == 5000
    assert settings.graphiql is True
    assert settings.log_level == "info"


def test_reads_every_variable() -> None:
    settings = Settings.from_env(
        {
            "MONGODB_URI": "mongodb://db.example:27017/prod",
            "FAVGATE_MONGO_DRIVER": "pymongo",
            "FAVGATE_ENV": "production",
            "FAVGATE_DATA_DIR": "/var/lib/favgate",
            "FAVGATE_HOST": "0.0.0.0",
            "FAVGATE_PORT": "9000",
            "FAVGATE_WRITE_CONCERN_W": "majority",
            "FAVGATE_WRITE_JOURNAL": "false",
            "FAVGATE_DATABASE_TIMEOUT_MS": "750",
            "FAVGATE_LOG_LEVEL": "DEBUG",
        }
    )
    assert settings == Settings(
        mongodb_uri="mongodb://db.example:27017/prod",
        database="prod",
        mongo_driver="pymongo",
        environment="production",
        data_dir=Path("/var/lib/favgate"),
        host="0.0.0.0",
        port=9000,
        write_concern_w="majority",
        write_journal=False,
        database_timeout_ms=750,
        graphiql=False,
        introspection=False,
        log_level="debug",
    )


def test_empty_uri_is_no_uri() -> None:
    assert Settings.from_env({"MONGODB_URI": ""}).mongodb_uri is None


@pytest.mark.parametrize(
    ("uri", "database"),
    [
        ("mongodb://h/mydb?x=y", "mydb"),
        ("mongodb://h:27017/mydb", "mydb"),
        ("mongodb://user:pw@h1,h2/other?replicaSet=rs", "other"),
        ("mongodb://h", DEFAULT_DATABASE),
        ("mongodb://h/", DEFAULT_DATABASE),
        ("mongodb://h/?directConnection=true", DEFAULT_DATABASE),
    ],
)
def test_database_comes_from_the_uri_path(uri: str, database: str) -> None:
    assert Settings.from_env({"MONGODB_URI": uri}).database == database
    assert Settings().with_uri(uri).database == database


def test_invalid_uri_fails_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="MONGODB_URI"):
        Settings.from_env({"MONGODB_URI": "http://not-mongo/db"})


@pytest.mark.parametrize(("raw", "driver"), [("pymongo", "pymongo"), ("motor", "motor")])
def test_driver_choice(raw: str, driver: str) -> None:
    assert Settings.from_env({"FAVGATE_MONGO_DRIVER": raw}).mongo_driver == driver


def test_driver_choice_ignores_case_and_spaces() -> None:
    assert Settings.from_env({"FAVGATE_MONGO_DRIVER": " PyMongo "}).mongo_driver == "pymongo"


@pytest.mark.parametrize("raw", ["mongoengine", "", "motor2"])
def test_invalid_driver_fails_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="FAVGATE_MONGO_DRIVER"):
        Settings.from_env({"FAVGATE_MONGO_DRIVER": raw})


def test_invalid_environment_fails_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="FAVGATE_ENV"):
        Settings.from_env({"FAVGATE_ENV": "staging"})


@pytest.mark.parametrize(
    ("environ", "graphiql"),
    [
        ({}, True),
        ({"FAVGATE_ENV": "development"}, True),
        ({"FAVGATE_ENV": "production"}, False),
        ({"FAVGATE_ENV": "production", "FAVGATE_GRAPHIQL": "true"}, True),
        ({"FAVGATE_ENV": "production", "FAVGATE_GRAPHIQL": "1"}, True),
        ({"FAVGATE_ENV": "development", "FAVGATE_GRAPHIQL": "off"}, False),
    ],
)
def test_graphiql_follows_the_environment_unless_set(
    environ: dict[str, str], graphiql: bool
) -> None:
    assert Settings.from_env(environ).graphiql is graphiql


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        (" ON ", True),
        ("0", False),
        ("FALSE", False),
        ("no", False),
        ("off", False),
    ],
)
def test_booleans(raw: str, value: bool) -> None:
    assert Settings.from_env({"FAVGATE_WRITE_JOURNAL": raw}).write_journal is value


@pytest.mark.parametrize("name", ["FAVGATE_WRITE_JOURNAL", "FAVGATE_GRAPHIQL"])
@pytest.mark.parametrize("raw", ["maybe", "", "2", "truthy"])
def test_bad_booleans_fail_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: raw})


@pytest.mark.parametrize("name", ["FAVGATE_PORT", "FAVGATE_DATABASE_TIMEOUT_MS"])
@pytest.mark.parametrize("raw", ["abc", "", "1.5", "0", "-5", "8k"])
def test_bad_integers_fail_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: raw})


@pytest.mark.parametrize(("raw", "w"), [("0", 0), ("1", 1), ("3", 3), ("majority", "majority")])
def test_write_concern(raw: str, w: int | str) -> None:
    assert Settings.from_env({"FAVGATE_WRITE_CONCERN_W": raw}).write_concern_w == w


@pytest.mark.parametrize("raw", ["", "all", "-1", "1.0", "MAJORITY ", "²"])
def test_bad_write_concern_fails_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="FAVGATE_WRITE_CONCERN_W"):
        Settings.from_env({"FAVGATE_WRITE_CONCERN_W": raw})


def test_repr_hides_the_password() -> None:
    settings = Settings.from_env({"MONGODB_URI": SECRET_URI})
    assert settings.mongodb_uri == SECRET_URI
    assert settings.database == "db"
    assert settings.redacted_uri == "mongodb://user:***@host/db"
    for text in (repr(settings), str(settings), f"{settings}", repr([settings])):
        assert "s3cret" not in text
        assert "mongodb://user:***@host/db" in text


def test_redacted_uri_finds_credentials_before_the_path() -> None:
    uri = "mongodb://user:pw@host/db?appname=a@b"
    assert Settings().with_uri(uri).redacted_uri == "mongodb://user:***@host/db?appname=a@b"


def test_redacted_uri_without_credentials_is_the_uri() -> None:
    uri = "mongodb://host:27017/db?directConnection=true"
    assert Settings().with_uri(uri).redacted_uri == uri


def test_with_uri_changes_only_the_uri_and_database() -> None:
    base = Settings(mongo_driver="pymongo", port=9000, graphiql=False, database="old")
    moved = base.with_uri("mongodb://other:27017/newdb")
    assert moved.mongodb_uri == "mongodb://other:27017/newdb"
    assert moved.database == "newdb"
    assert moved.replace(mongodb_uri=None, database="old") == base
    assert base.mongodb_uri is None  # frozen: the original is untouched
    assert base.with_uri("mongodb://other:27017").database == DEFAULT_DATABASE


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_cors_origins_are_exact_origins() -> None:
    assert Settings.from_env({}).cors_origins == ()
    assert Settings.from_env({"FAVGATE_CORS_ORIGINS": " , "}).cors_origins == ()
    raw = "https://app.example.com, http://localhost:3000,http://[::1]:5173,"
    assert Settings.from_env({"FAVGATE_CORS_ORIGINS": raw}).cors_origins == (
        "https://app.example.com",
        "http://localhost:3000",
        "http://[::1]:5173",
    )


@pytest.mark.parametrize(
    "origin",
    [
        "*",
        "https://*.example.com",
        "null",
        "app.example.com",
        "ftp://example.com",
        "https://example.com/",
        "https://example.com/app",
        "https://example.com?x=1",
        "https://user@example.com",
        "https://App.Example.com",  # the browser sends the host in lowercase
        "https://example.com:443",  # ... and no default port
        "http://example.com:80",
        "http://example.com:0",
        "http://example.com:65536",
        "http://example.com:080",
        "http://example..com",
    ],
)
def test_cors_origins_refuse_what_no_browser_sends(origin: str) -> None:
    with pytest.raises(ConfigError, match=r"FAVGATE_CORS_ORIGINS .*scheme://host\[:port\]"):
        Settings.from_env({"FAVGATE_CORS_ORIGINS": f"https://ok.example.com,{origin}"})


def readme_settings() -> dict[str, str]:
    """The README's settings table: each variable and its default, as written there."""
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    table = readme.split("| variable | default | meaning |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        name, default = (cell.strip() for cell in line.strip("|").split("|")[:2])
        rows[name.strip("`")] = default
    return rows


def test_the_readme_lists_every_setting_with_its_default() -> None:
    assert readme_settings() == Settings.variables()


def test_webhook_settings() -> None:
    assert (Settings().webhook_retry_hours, Settings().webhook_allow_private) == (24.0, False)
    settings = Settings.from_env(
        {
            "FAVGATE_WEBHOOK_WORKER": "false",
            "FAVGATE_WEBHOOK_RETRY_HOURS": "0.5",
            "FAVGATE_WEBHOOK_BACKOFF_SECONDS": "2",
            "FAVGATE_WEBHOOK_ALLOW_PRIVATE": "true",
        }
    )
    assert (settings.webhook_worker, settings.webhook_allow_private) == (False, True)
    assert (settings.webhook_retry_hours, settings.webhook_backoff_seconds) == (0.5, 2.0)


@pytest.mark.parametrize("name", ["FAVGATE_WEBHOOK_RETRY_HOURS", "FAVGATE_WEBHOOK_BACKOFF_SECONDS"])
@pytest.mark.parametrize("raw", ["abc", "", "0", "-1", "nan", "inf"])
def test_bad_webhook_durations_fail_naming_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be a positive number; got {raw!r}"):
        Settings.from_env({name: raw})
