"""The one HTTP client of the codebase: delivery, the fake chat, scenarios, fuzz and tests use it.

Typed clients on top of it: `PlanfixClient` (the five chat-API commands, clients/planfix.py) and
`ControlClient` (`/api/v1`, clients/control.py); this module imports neither. Import them all from
`simulator.clients`.

`send()` never raises for HTTP or network trouble: it returns an `Answer` whose `error` says what
went wrong (timeout, refused, TLS, reset), because every caller must record failures, not crash.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, quote, urlencode, urlsplit

__all__ = ["Answer", "encode_form", "parse_json", "post_form", "request_json", "send"]

USER_AGENT = "planfix-simulator"


@dataclass(frozen=True)
class Answer:
    """What came back: status and body, or the network error that stopped the exchange."""

    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    duration_ms: float = 0.0
    error: str = ""  # "" | "timeout: …" | "refused: …" | "tls: …" | "reset: …" | "network: …"

    @property
    def text(self) -> str:
        """The body as text (undecodable bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; ValueError when it is not JSON."""
        return parse_json(self.body.decode("utf-8"))

    def json_or_none(self) -> Any:
        """The body parsed as JSON, or None when it is empty or not JSON."""
        try:
            return self.json()
        except (ValueError, UnicodeDecodeError):
            return None


def encode_form(pairs: Iterable[tuple[str, str]]) -> bytes:
    """Form-urlencode pairs in order; repeated keys stay repeated and un-indexed."""
    return urlencode(list(pairs)).encode("ascii")


def send(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Answer:
    """One HTTP request; the URL is used as given, query string included."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # brackets that are not an IPv6 literal ('http://a]b/')
        return Answer(None, error=f"network: not a URL: {url!r} ({exc})")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Answer(None, error=f"network: not an http(s) URL: {url!r}")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if not target.isascii():
        # What browsers do with a non-ASCII path or query: UTF-8 percent-escapes.
        target = quote(target, safe="/?&=%:@!$'()*+,;~[]-._")
    all_headers = {"User-Agent": USER_AGENT, "Connection": "close", **(headers or {})}
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000

    try:
        # Built inside the try: a port that is not a number, or a host with characters no
        # request line can carry, is a failure to report like any other, not a crash.
        conn = _connection(parts, timeout)
    except (ValueError, http.client.HTTPException) as exc:
        return Answer(None, error=f"network: bad URL: {exc}")
    try:
        conn.request(method, target, body=body or None, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        return Answer(
            response.status,
            data,
            {k: v for k, v in response.getheaders()},
            elapsed(),
        )
    except TimeoutError:
        return Answer(None, duration_ms=elapsed(), error=f"timeout: no answer within {timeout:g} s")
    except ssl.SSLError as exc:
        return Answer(None, duration_ms=elapsed(), error=f"tls: {exc.reason or exc}")
    except ConnectionRefusedError:
        return Answer(None, duration_ms=elapsed(), error="refused: connection refused")
    except (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError) as exc:
        return Answer(None, duration_ms=elapsed(), error=f"reset: {exc or 'connection dropped'}")
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, duration_ms=elapsed(), error=f"network: {exc}")
    except (UnicodeError, ValueError) as exc:  # e.g. a host name that is not valid IDNA
        return Answer(None, duration_ms=elapsed(), error=f"network: bad URL: {exc}")
    finally:
        conn.close()


def _connection(parts: SplitResult, timeout: float) -> http.client.HTTPConnection:
    """A connection to the URL's host and port (not yet opened)."""
    host = parts.hostname or ""
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    return http.client.HTTPConnection(host, parts.port, timeout=timeout)


def parse_json(text: str | bytes) -> Any:
    """JSON another party sent; ValueError when it is not JSON or nests past the parser's limit."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply to read") from exc


def post_form(
    url: str,
    pairs: Sequence[tuple[str, str]],
    *,
    timeout: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """POST an `application/x-www-form-urlencoded` form, pairs in order."""
    return send(
        "POST",
        url,
        body=encode_form(pairs),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            **(headers or {}),
        },
        timeout=timeout,
    )


def request_json(
    method: str,
    url: str,
    data: Any = None,
    *,
    timeout: float = 30.0,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """A JSON request (the control API's way)."""
    body = b"" if data is None else json.dumps(data).encode("utf-8")
    extra = {"Accept": "application/json", **(headers or {})}
    if data is not None:
        extra["Content-Type"] = "application/json"
    return send(method, url, body=body, headers=extra, timeout=timeout)
