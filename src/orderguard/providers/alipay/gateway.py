"""The Open Platform's gateway: signed requests out, verified answers back.

Every call is one ``POST`` of form fields to ``gateway.do`` (the common parameters and the
JSON ``biz_content``), signed with the app's private key; every answer is believed only
once its ``sign`` verifies, with Alipay's public key, over the raw text of its
``<method>_response`` value (:func:`.signing.signed_response`). A redirect payment is no
call at all: it is a signed ``GET`` URL to the same gateway the shopper's browser opens
(:meth:`Gateway.page_url`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from orderguard.providers.alipay import errors, signing
from orderguard.providers.alipay.times import alipay_time

#: The API version every method here is called with.
VERSION = "1.0"
#: The charset of every request (and so of the signed strings).
CHARSET = "utf-8"


def biz_content(fields: Mapping[str, object]) -> str:
    """``biz_content`` as compact JSON, non-ASCII kept (the signed string is UTF-8)."""
    return json.dumps(dict(fields), ensure_ascii=False, separators=(",", ":"))


class Gateway:
    """One app's requests to one gateway."""

    def __init__(
        self,
        *,
        url: str,
        app_id: str,
        private_key: rsa.RSAPrivateKey,
        alipay_public_key: rsa.RSAPublicKey,
        http: httpx.AsyncClient,
        clock: Callable[[], datetime],
    ) -> None:
        self.url = url
        self.app_id = app_id
        self._key = private_key
        self._alipay_key = alipay_public_key
        self._http = http
        self._clock = clock

    def params(self, method: str, biz: Mapping[str, object], **extra: str | None) -> dict[str, str]:
        """The signed parameters of a call to ``method`` (``extra``: notify_url, ...)."""
        params = {
            "app_id": self.app_id,
            "method": method,
            "format": "JSON",
            "charset": CHARSET,
            "sign_type": signing.SIGN_TYPE,
            "timestamp": alipay_time(self._clock()),
            "version": VERSION,
            "biz_content": biz_content(biz),
            **{k: v for k, v in extra.items() if v},
        }
        return signing.signed_params(params, self._key)

    def page_url(self, method: str, biz: Mapping[str, object], **extra: str | None) -> str:
        """The signed ``GET`` URL of the cashier for ``method`` (page or wap pay)."""
        return f"{self.url}?{urlencode(self.params(method, biz, **extra))}"

    async def call(
        self, method: str, biz: Mapping[str, object], *, mutating: bool
    ) -> Mapping[str, object]:
        """The verified ``<method>_response`` object of one call; trouble raises.

        The body returned may still be a business failure (``code`` 40004): the caller
        reads the ``sub_code``s that are answers, and :func:`errors.answer_error` types the
        rest.
        """
        form = self.params(method, biz)
        try:
            response = await self._http.post(
                self.url,
                content=urlencode(form).encode(),
                headers={"content-type": f"application/x-www-form-urlencoded;charset={CHARSET}"},
            )
        except httpx.HTTPError as exc:
            raise errors.transport_error(exc, method=method, mutating=mutating) from exc
        if response.status_code != 200:
            raise errors.http_error(response.status_code, method=method, mutating=mutating)
        return self.verified(response.text, method, mutating=mutating)

    def verified(self, text: str, method: str, *, mutating: bool) -> Mapping[str, object]:
        """The answer's response object once its signature verifies."""
        try:
            answer = signing.signed_response(text, method)
        except ValueError as exc:
            raise errors.UnverifiedAnswer(
                f"alipay {method}: unreadable answer ({exc})", safe_to_retry=True
            ) from exc
        if answer.sign is None and answer.key == "error_response":
            # the gateway refused the call itself (bad app id, bad signature): never signed
            raise errors.answer_error(answer.body, method=method, mutating=mutating)
        if answer.sign is None or not signing.verify(answer.raw, answer.sign, self._alipay_key):
            raise errors.UnverifiedAnswer(
                f"alipay {method}: the answer's signature does not verify with Alipay's public key",
                safe_to_retry=True,
            )
        return answer.body
