"""The HTTP client under the Stripe SDK: the SDK's own aiohttp client (``stripe.AIOHTTPClient``).

Every Stripe call but the charge goes through it (retrieve, search, cancel, refunds), and
the charge too when the environment names a proxy for the API's address; otherwise the
charge takes its own client (:mod:`.connections`, decided in :mod:`.wire`).

Why aiohttp and not the SDK's default (httpx): measured in one process against the sandbox
provider (32 charges in flight, same SDK, same adapter, interleaved:
``bench/stripe_client.py``), a charge built by the SDK costs about a quarter of the CPU
through aiohttp that it costs through httpx and httpcore (whose pool, among others, asks
every idle connection whether the server closed it, twice per request, through anyio's
attribute tables). aiohttp parses HTTP in C and keeps its connections alive itself.

What the SDK guarantees is unchanged: it builds the request (``Idempotency-Key``, the API
version, the form body), reads the answer and raises the same exceptions; a transport
failure is ``APIConnectionError`` raised *from* aiohttp's exception, which says whether the
request may have left (:mod:`.errors`). Three things are added to the SDK's client:

- the answer's body is read inside the same guard as its headers: the SDK reads it
  outside, so a connection lost mid-body would surface as a bare aiohttp exception instead
  of ``APIConnectionError`` (an outcome that may have reached Stripe);
- the session is built here, on first use (inside the running event loop, as aiohttp
  requires): TLS verified against the SDK's CA bundle unless told not to,
  :data:`CONNECTIONS` kept alive, and the connect and total timeouts given;
- the proxy the environment names (``HTTPS_PROXY``/``HTTP_PROXY``, ``NO_PROXY``; as httpx
  did) is looked up once per origin and given with each request. aiohttp's own
  ``trust_env`` looks it up again for every request, and the ``.netrc`` file too, each in a
  thread of the default executor: that cost most of what aiohttp saves.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import stripe

#: Connections to the provider at once, kept alive between requests.
CONNECTIONS = 100
#: Seconds an idle connection is kept for the next request.
KEEPALIVE_S = 5.0


class AioHttpClient(stripe.AIOHTTPClient):
    """The SDK's aiohttp client with its session built here and every failure of a request,
    body included, raised as the SDK's ``APIConnectionError`` (see the module)."""

    def __init__(self, *, timeout_s: float, connect_timeout_s: float) -> None:
        super().__init__(timeout=None)
        #: Seconds for a whole request, and for its connection (the charge's client too).
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self._limits = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self._opened: aiohttp.ClientSession | None = None
        #: The proxy the environment names for each origin asked (``None``: direct).
        self._proxies: dict[tuple[str, str], str | None] = {}
        #: aiohttp's request tracing, given to the session when it is built (tests count
        #: the connections it opens and reuses).
        self.trace_configs: list[aiohttp.TraceConfig] = []

    @property
    def verify(self) -> bool:
        """Whether TLS certificates are verified (the SDK client's own setting: always, as
        this client is made)."""
        return bool(self._verify_ssl_certs)

    def proxy_for(self, url: str) -> str | None:
        """The proxy the environment names for ``url`` (this client is never given one)."""
        return environment_proxy(url, self._proxies)

    @property
    def _session(self) -> aiohttp.ClientSession:
        if self._opened is None:
            verify: ssl.SSLContext | bool = False
            if self.verify:
                verify = ssl.create_default_context(cafile=stripe.ca_bundle_path)
            connector = aiohttp.TCPConnector(
                ssl=verify, limit=CONNECTIONS, keepalive_timeout=KEEPALIVE_S
            )
            self._opened = aiohttp.ClientSession(
                connector=connector,
                timeout=self._limits,
                trace_configs=self.trace_configs or None,
            )
        return self._opened

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> tuple[Any, dict[str, Any]]:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if "proxy" not in kwargs:  # none given to the SDK: the environment's, if any
            proxy = environment_proxy(url, self._proxies)
            if proxy is not None:
                kwargs["proxy"] = proxy
        return args, kwargs

    async def request_async(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        post_data: Any = None,
    ) -> tuple[bytes, int, Mapping[str, str]]:
        content, status, response_headers = await self.request_stream_async(
            method, url, headers, post_data=post_data
        )
        try:
            body = await content.read()
        except Exception as exc:
            self._handle_request_error(exc)
        return body, status, response_headers

    async def close_async(self) -> None:
        if self._opened is not None:
            await self._opened.close()
            self._opened = None


def environment_proxy(url: str, known: dict[tuple[str, str], str | None]) -> str | None:
    """The proxy ``HTTPS_PROXY``/``HTTP_PROXY`` name for ``url``'s origin unless ``NO_PROXY``
    excludes its host (``None``: connect directly), remembered in ``known`` by origin."""
    parts = urlsplit(url)
    origin = (parts.scheme, parts.netloc)
    if origin not in known:
        host = parts.hostname or ""
        proxies = urllib.request.getproxies()
        bypass = not host or bool(urllib.request.proxy_bypass(host))
        known[origin] = None if bypass else proxies.get(parts.scheme)
    return known[origin]
