"""The dashboard: one static page at ``/`` with its script and style sheet.

Plain HTML, JavaScript and SVG shipped in the package (no build step, nothing from a CDN), so
it works offline. The page reads ``/api/v1`` from the browser; the files themselves hold no
data, so they need no token (the page asks for one when the API answers 401). A strict
Content-Security-Policy keeps the page from loading anything that is not ours.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from fastapi import APIRouter
from fastapi.responses import Response

__all__ = ["build_dashboard_router"]

_FILES: Final = {
    "dashboard.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def build_dashboard_router() -> APIRouter:
    """``GET /`` (the page), ``/dashboard/dashboard.js`` and ``/dashboard/dashboard.css``."""
    static = files("otel_llm.server").joinpath("static")
    # Read once: a handful of kilobytes, and no file access per request.
    content = {name: static.joinpath(name).read_bytes() for name in _FILES}
    router = APIRouter(include_in_schema=False)

    def serve(name: str) -> Response:
        return Response(content[name], media_type=_FILES[name], headers=_HEADERS)

    @router.get("/")
    def page() -> Response:
        return serve("dashboard.html")

    @router.get("/dashboard/dashboard.js")
    def script() -> Response:
        return serve("dashboard.js")

    @router.get("/dashboard/dashboard.css")
    def style() -> Response:
        return serve("dashboard.css")

    return router
