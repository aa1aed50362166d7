"""GraphiQL served by favgate itself: the page and every asset it loads come from favgate,
pinned and checked against the vendoring record, with no host of anyone else's in sight.
(The page running in a real browser is tests/test_graphiql_browser.py.)"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from helpers import LifespanApp

from favgate import graphiql
from favgate.app import create_app
from favgate.config import Settings
from favgate.storage import Storage

HTML = {"Accept": "text/html"}
STATIC = Path(graphiql.__file__).parent / "static"
ASSET_URL = re.compile(r'(?:src|href)="(graphiql/static/[^"?]+)\?v=([0-9a-f]{16})"')
ANY_URL = re.compile(r"https?://", re.IGNORECASE)


async def page(client: httpx.AsyncClient) -> httpx.Response:
    response = await client.get("/graphql", headers=HTML)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response


async def test_the_page_loads_only_favgate_assets(client: httpx.AsyncClient) -> None:
    html = (await page(client)).text
    assert not ANY_URL.search(html), "the page names another host"
    loaded = ASSET_URL.findall(html)
    assert [path.rsplit("/", 1)[1] for path, _ in loaded] == [
        "graphiql.min.css",
        "favgate-graphiql.css",
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql.min.js",
        "favgate-graphiql.js",
    ]
    # Every src and href is one of those (or the inline empty icon).
    references = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert set(references) == {f"{path}?v={version}" for path, version in loaded} | {"data:,"}
    assert {version for _, version in loaded} == {graphiql.assets_version()}


async def test_the_page_allows_scripts_from_favgate_only(client: httpx.AsyncClient) -> None:
    policy = (await page(client)).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["connect-src"] == "'self'"


async def test_assets_are_served_with_long_cache_lifetimes(client: httpx.AsyncClient) -> None:
    for path, version in ASSET_URL.findall((await page(client)).text):
        response = await client.get(f"/{path}?v={version}")
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        kind = "text/css" if path.endswith(".css") else "text/javascript"
        assert response.headers["content-type"].startswith(kind), path
        assert response.content == graphiql.ASSETS[path.rsplit("/", 1)[1]].read_bytes()


async def test_stylesheets_pull_in_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    for name in ("graphiql.min.css", "favgate-graphiql.css"):
        css = (await client.get(f"/graphiql/static/{name}")).text
        assert "@import" not in css
        # GraphiQL embeds its fonts: every url() is a data: URL.
        urls = re.findall(r"url\(\s*['\"]?([^'\")]*)", css)
        assert all(url.startswith("data:") for url in urls), name


async def test_the_script_opens_on_the_example_and_the_token_header(
    client: httpx.AsyncClient,
) -> None:
    script = (await client.get("/graphiql/static/favgate-graphiql.js")).text
    assert not ANY_URL.search(script)
    assert "mutation SetFavorite {" in script
    assert "setFavorite(instance:" in script
    assert "query Favorites {" in script
    assert 'favorites(instance: "demo"' in script
    assert 'JSON.stringify({ token: "<paste your token>" }' in script
    assert "isHeadersEditorEnabled: true" in script


@pytest.mark.parametrize(
    "path",
    [
        "/graphiql/static/VERSIONS",
        "/graphiql/static/LICENSE.react",
        "/graphiql/static/graphiql.html",
        "/graphiql/static/..%2Fgraphiql.py",
        "/graphiql/static/nothing.js",
    ],
)
async def test_nothing_else_is_served(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": {"message": "Not Found"}}


@pytest.fixture
async def no_graphiql(settings: Settings, storage: Storage) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings.replace(graphiql=False))
    async with application.router.lifespan_context(application) as state:
        transport = httpx.ASGITransport(app=LifespanApp(application, dict(state or {})))
        async with httpx.AsyncClient(transport=transport, base_url="http://favgate.test") as c:
            yield c


async def test_no_assets_without_graphiql(no_graphiql: httpx.AsyncClient) -> None:
    response = await no_graphiql.get("/graphiql/static/graphiql.min.js")
    assert response.status_code == 404


# --- The vendored files --------------------------------------------------------------------


def versions() -> tuple[dict[str, str], dict[str, str]]:
    """VERSIONS: package versions, and the sha256 of each vendored file."""
    packages, sums = {}, {}
    for line in (STATIC / "graphiql" / "VERSIONS").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        first, second = line.split()
        if re.fullmatch(r"[0-9a-f]{64}", first):
            sums[second] = first
        else:
            packages[first] = second
    return packages, sums


def test_vendored_files_are_the_pinned_builds_untouched() -> None:
    packages, sums = versions()
    assert packages == {"graphiql": "3.8.3", "react": "18.3.1", "react-dom": "18.3.1"}
    vendored = {path.name for path in (STATIC / "graphiql").iterdir()} - {"VERSIONS"}
    assert vendored == set(sums)
    for name, expected in sums.items():
        actual = hashlib.sha256((STATIC / "graphiql" / name).read_bytes()).hexdigest()
        assert actual == expected, f"{name} differs from what was vendored"


def test_licences_travel_with_the_code() -> None:
    for package in ("graphiql", "react", "react-dom"):
        licence = (STATIC / "graphiql" / f"LICENSE.{package}").read_text()
        assert licence.startswith("MIT License")


def test_the_vendoring_script_pins_the_same_versions() -> None:
    script = (Path(__file__).parents[1] / "scripts" / "vendor-graphiql.sh").read_text()
    packages, _ = versions()
    assert f'GRAPHIQL_VERSION="${{GRAPHIQL_VERSION:-{packages["graphiql"]}}}"' in script
    assert f'REACT_VERSION="${{REACT_VERSION:-{packages["react"]}}}"' in script
