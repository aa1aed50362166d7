"""GraphiQL, served entirely by favgate: the page works with no internet access.

The page (``static/graphiql.html``) loads pinned graphiql, react and react-dom builds
vendored into ``static/graphiql/`` by ``scripts/vendor-graphiql.sh``, plus favgate's own
small script and stylesheet, all from ``/graphiql/static/<name>``. Asset URLs carry a
hash of the assets' contents (``?v=``), so they can be cached for a year and still change
the moment an upgrade does. The page's Content-Security-Policy allows scripts from
favgate only, so nothing can sneak a CDN back in.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

STATIC = Path(__file__).parent / "static"
VENDORED = STATIC / "graphiql"
ASSETS: dict[str, Path] = {
    "react.production.min.js": VENDORED / "react.production.min.js",
    "react-dom.production.min.js": VENDORED / "react-dom.production.min.js",
    "graphiql.min.js": VENDORED / "graphiql.min.js",
    "graphiql.min.css": VENDORED / "graphiql.min.css",
    "favgate-graphiql.js": STATIC / "favgate-graphiql.js",
    "favgate-graphiql.css": STATIC / "favgate-graphiql.css",
}
ASSET_CACHE_CONTROL = "public, max-age=31536000, immutable"
# GraphiQL sets inline styles and embeds its fonts as data: URLs; scripts, though, come
# from favgate alone, and queries and subscriptions go back to it.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self' data:",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)


@cache
def assets_version() -> str:
    """A short hash of every asset's contents: their URLs change when they do."""
    digest = hashlib.sha256()
    for name, path in sorted(ASSETS.items()):
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@cache
def page_html() -> str:
    template = (STATIC / "graphiql.html").read_text(encoding="utf-8")
    return template.replace("{{version}}", assets_version())


def page_response() -> HTMLResponse:
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"}
    return HTMLResponse(page_html(), headers=headers)


async def asset(request: Request) -> Response:
    # A fixed list, not a directory: nothing else under static/ is reachable.
    path = ASSETS.get(request.path_params["name"])
    if path is None:
        raise HTTPException(status_code=404, detail="Not Found")
    return FileResponse(path, headers={"Cache-Control": ASSET_CACHE_CONTROL})


def routes(enabled: bool) -> list[Route]:
    """The asset routes, present only when GraphiQL is."""
    return [Route("/graphiql/static/{name}", asset, methods=["GET"])] if enabled else []
