"""The charge, sent as the Stripe SDK sends it, without the SDK rebuilding it every time.

Every paid order makes one ``POST /v1/payment_intents``. Through the SDK's
``raw_request_async`` a large part of that request's CPU in this process was the SDK's own
per-request work, not HTTP (over the same aiohttp client, a charge built once here costs
about 0.7 x one built by the SDK: ``bench/stripe_client.py``): it rebuilds the same
headers every time (a dozen environment
variables read to detect an AI agent, the client's description dumped as JSON), formats
three log lines with a regular expression per field whether or not anything listens
(``stripe._util.log_info``/``log_debug`` format before they look at a level), and
form-encodes the body through a recursive encoder built for every shape of parameter.

:class:`ChargeWire` keeps what the SDK guarantees for this request and does the rest once:

- **the headers are the SDK's**, built by its own ``request_headers`` when the provider is
  made (``Authorization``, ``Stripe-Version``, ``User-Agent``, ``X-Stripe-Client-User-Agent``,
  ``Content-Type``); a request adds only its ``Idempotency-Key``, which every charge has;
- **the body is the SDK's form encoding** for this request's shape (scalars, booleans as
  ``true``/``false``, ``metadata[key]=value``, brackets left literal): :func:`form_body`,
  held equal to the SDK's encoder by a test for any metadata;
- **an error is read by the SDK**: its ``_interpret_response`` parses the body and raises
  the same exceptions for an error status (``CardError``, ``IdempotencyError``,
  ``RateLimitError``, ...), which :mod:`.errors` classifies as before; a success is parsed
  as JSON here (the SDK parses it the same way, into an ``OrderedDict``);
- **the transport is the charge's own** (:mod:`.connections`: kept-alive connections read
  by httptools, about 0.6 x aiohttp's CPU per charge), or the provider's aiohttp client
  (:mod:`.transport`) when the environment names a proxy for the API's address (looked up
  when the provider is made); a failure is the same
  ``APIConnectionError`` the SDK raises, raised from the client's exception, which says
  whether the request may have left (:mod:`.errors`).

Left out, on this request only: the SDK's log lines (``STRIPE_LOG``/``stripe.log``; the
order's timeline records the attempt and ``orderguard_provider_calls`` counts and times the
call), and its telemetry header (the previous request's id and duration, for Stripe's
latency statistics). The environment the headers describe is read once, when the provider
is made. Network retries were already off (``max_network_retries=0``): orderguard's retry
layer decides. Every other call (retrieve, search, cancel, refunds, charges) goes through
the SDK unchanged.

A test sends the same charge both ways to one server and compares what arrives, so an SDK
upgrade that changes the request fails it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote_plus, urlsplit

import stripe

from orderguard.providers.stripe.connections import (
    AnswerLost,
    KeepAliveClient,
    RequestNotSent,
    check_headers,
)
from orderguard.providers.stripe.transport import AioHttpClient

_log = logging.getLogger(__name__)

#: The path of the one request sent here.
PATH = "/v1/payment_intents"
#: The SDK's API mode for ``/v1`` paths.
API_MODE: Literal["V1"] = "V1"
#: Characters the SDK leaves literal in a form body (it un-escapes them after encoding).
LITERAL = "[]"
#: The header each request carries alone.
IDEMPOTENCY_HEADER = "Idempotency-Key"

Scalar = str | int | bool | None


def form_body(fields: Mapping[str, Scalar], metadata: Mapping[str, str]) -> str:
    """``fields`` and ``metadata`` form-encoded as the SDK encodes them: ``None`` left out,
    booleans as ``true``/``false``, ``metadata[key]=value``, ``[`` and ``]`` literal."""
    pairs: list[str] = []
    for key, value in fields.items():
        if isinstance(value, bool):
            pairs.append(f"{_quoted(key)}={'true' if value else 'false'}")
        elif value is not None:
            pairs.append(f"{_quoted(key)}={_quoted(str(value))}")
    pairs += [f"metadata[{_quoted(key)}]={_quoted(value)}" for key, value in metadata.items()]
    return "&".join(pairs)


#: What form encoding leaves as it is (``quote_plus``'s always-safe characters and ours).
_UNQUOTED = re.compile(r"[A-Za-z0-9_.~\-\[\]]*")


def _quoted(text: str) -> str:
    """``text`` as ``urlencode`` writes it with ``[``/``]`` safe; most of a charge's values
    (amounts, codes, ids) need nothing, and are returned without going through it."""
    return text if _UNQUOTED.fullmatch(text) else quote_plus(text, safe=LITERAL)


class ChargeWire:
    """``POST /v1/payment_intents`` with the SDK's headers, encoding and error reading, built
    once (see the module)."""

    def __init__(self, client: stripe.StripeClient, http: AioHttpClient, *, api_key: str) -> None:
        requestor = client._requestor
        given = requestor._options
        base = given.base_addresses.get("api")
        if not base:  # the SDK would send its other calls nowhere: never the charge to Stripe
            raise ValueError("the Stripe API address is empty: set it, or leave it unset")
        if given.stripe_account or given.stripe_context:
            raise ValueError("a Stripe account or context is not supported for the charge")
        self._read = requestor._interpret_response
        self._http = http
        self.url = f"{base}{PATH}"
        #: The charge's own client, or ``None``: through aiohttp (a proxy is named).
        self.direct: KeepAliveClient | None = None
        if http.proxy_for(self.url) is None:
            self.direct = KeepAliveClient(
                base,
                timeout_s=http.timeout_s,
                connect_timeout_s=http.connect_timeout_s,
                verify=http.verify,
                cafile=stripe.ca_bundle_path,
            )
        self._path = urlsplit(self.url).path
        options: dict[str, Any] = {"api_key": api_key, "stripe_version": given.stripe_version}
        headers = dict(requestor.request_headers("post", API_MODE, options))  # type: ignore[arg-type]
        headers.pop(IDEMPOTENCY_HEADER, None)  # the SDK drew one for the template: not used
        # A key with a line break in it (a secret file's last newline) is refused here, at
        # start, not on every charge as a request that could not be sent.
        check_headers(headers)
        #: What every charge sends but its idempotency key.
        self.headers: Mapping[str, str] = headers

    async def create(
        self, fields: Mapping[str, Scalar], metadata: Mapping[str, str], *, idempotency_key: str
    ) -> dict[str, Any]:
        """Send the charge; Stripe's answer as parsed JSON, or the SDK's exception."""
        headers = {**self.headers, IDEMPOTENCY_HEADER: idempotency_key}
        form = form_body(fields, metadata)
        answer_headers: Mapping[str, str]
        if self.direct is None:
            body, status, answer_headers = await self._http.request_async(
                "post", self.url, headers, post_data=form
            )
        else:
            try:
                body, status, answer_headers = await self.direct.request(
                    "POST", self._path, headers, form.encode()
                )
            except Exception as exc:  # the SDK's APIConnectionError, from this one
                if not isinstance(exc, RequestNotSent | AnswerLost):
                    # No failure the client foresees: a defect. Reported as any other
                    # (it may have struck after the request left: an unknown outcome, G3),
                    # and logged whole, to be seen and mended.
                    _log.error("the charge's HTTP client failed unexpectedly", exc_info=exc)
                self._http._handle_request_error(exc)
        if 200 <= status < 300:
            try:  # as strict as the SDK: UTF-8, then JSON (too deep a body raises too)
                data = json.loads(body.decode("utf-8"))
            except Exception:
                data = None
            if isinstance(data, dict):
                return data
        # An error status, or an answer that is no JSON object: read as the SDK reads it,
        # which raises its exception for the status (or for a body it cannot parse).
        answer = self._read(body, status, answer_headers, API_MODE)
        raise stripe.APIError(
            f"Invalid response object from API: {answer.body!r} (HTTP response code was {status})",
            answer.body,
            status,
            answer.data,
            dict(answer_headers),
        )
