"""Reading HTML form posts defensively, and the CSRF check every form goes through.

The shopper has no session: their forms carry a double-submit token, a random value in a
``SameSite=Strict``, ``HttpOnly`` cookie that the form repeats in a hidden field. A page
on another site can neither read nor set that cookie, so it cannot forge the field.
The console keeps its token in the server-side session instead (see ``console.auth``).
"""

from __future__ import annotations

import hmac
import secrets

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

#: The shopper's double-submit cookie.
SHOPPER_CSRF_COOKIE = "og_csrf"
#: Most fields and bytes a form may have.
MAX_FIELDS = 20
MAX_FORM_BYTES = 16 * 1024


class FormRefused(Exception):
    """The form is too large, malformed, or its CSRF token is missing or wrong."""


def new_token() -> str:
    """A fresh unguessable token."""
    return secrets.token_urlsafe(32)


async def read_form(request: Request) -> FormData:
    """The posted form; raises :class:`FormRefused` when it is not a small url-encoded form."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length", "")
    if media_type != "application/x-www-form-urlencoded":
        raise FormRefused(f"unsupported form type {media_type or 'none'}")
    if not declared.isdigit() or int(declared) > MAX_FORM_BYTES:
        raise FormRefused("form too large or of unknown size")
    return await request.form(max_files=0, max_fields=MAX_FIELDS)


def field(form: FormData, name: str, *, limit: int = 2000) -> str:
    """A text field of ``form`` ('' when missing), at most ``limit`` characters."""
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def same_token(expected: str | None, given: str) -> bool:
    """Whether ``given`` is the CSRF token ``expected``, compared in constant time."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def shopper_csrf(request: Request) -> str:
    """The shopper's CSRF token: the cookie's, or a new one to set with :func:`keep_csrf`."""
    return request.cookies.get(SHOPPER_CSRF_COOKIE) or new_token()


def keep_csrf(response: Response, token: str, *, secure: bool) -> None:
    """Set the shopper's CSRF cookie on ``response``."""
    response.set_cookie(
        SHOPPER_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/"
    )


def check_shopper_csrf(request: Request, form: FormData) -> None:
    """Raise :class:`FormRefused` unless the form repeats the cookie's token."""
    if not same_token(request.cookies.get(SHOPPER_CSRF_COOKIE), field(form, "csrf")):
        raise FormRefused("CSRF token missing or wrong")


def secure_cookies(public_url: str, setting: str) -> bool:
    """Whether cookies get the ``Secure`` flag: ``auto`` means when ``public_url`` is https."""
    choice = setting.strip().lower()
    if choice in {"1", "true", "yes", "on"}:
        return True
    if choice in {"0", "false", "no", "off"}:
        return False
    return public_url.lower().startswith("https://")
