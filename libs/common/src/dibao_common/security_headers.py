"""The HTTP response headers every dibao service sends, whatever answered (a route, a
problem, the body limit, the last-resort 500, /healthz, /docs).

A JSON API that answers with households, ID numbers and bank accounts must not be kept by
a shared proxy or a browser's disk cache, sniffed as another type, nor framed by another
site (OWASP REST Security Cheat Sheet, "Security headers"):

- ``Cache-Control: no-store``: no cache keeps the answer (RFC 9111 section 5.2.2.5). A
  response that sets its own ``Cache-Control`` (a document download's ``private,
  no-store``) keeps it.
- ``X-Content-Type-Options: nosniff``: a browser takes the ``Content-Type`` as sent, never
  guesses HTML or script from a body that holds what a caller typed.
- ``X-Frame-Options: DENY`` and ``Content-Security-Policy: frame-ancestors 'none'``: no page
  frames an answer (clickjacking of /docs, a JSON body shown in a frame). Only
  ``frame-ancestors``: a stricter policy would stop the Swagger UI of /docs loading.
- ``Referrer-Policy: no-referrer``: a link followed from an answer (none are expected)
  does not carry the API's URL, with its query, elsewhere.

No CORS header is sent: the district portals call from their servers, not from a browser
of another origin; a service that needs one configures it on purpose.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("content-security-policy", "frame-ancestors 'none'"),
    ("referrer-policy", "no-referrer"),
)
"""Each header and the value it gets when the response has not set it."""


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` a response has not set itself. Installed outermost
    by ``build_app``, so that a problem answered by another middleware gets them too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    if name not in headers:
                        headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
