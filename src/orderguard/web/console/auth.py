"""Who is using the console: the session cookie, the CSRF token, and what their role allows.

Every check is made on the server for every request; the pages only hide what a role may
not do, they do not enforce it.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from orderguard.services.console_users import ConsoleUsers, Role, policy
from orderguard.storage.ports import ConsoleSession, ConsoleUser
from orderguard.web import forms
from orderguard.web.ports import wired

#: The session cookie; it is only sent to ``/console``.
SESSION_COOKIE = "og_session"
COOKIE_PATH = "/console"


class NotLoggedIn(Exception):
    """No live session: the browser is sent to the log-in page."""


class BadForm(Exception):
    """The posted body is not a small url-encoded form: answered 400."""


class Forbidden(Exception):
    """The request is refused: missing or wrong CSRF token, or the role may not act."""


@dataclass(frozen=True, slots=True)
class Visitor:
    """A logged-in console user and their session."""

    user: ConsoleUser
    session: ConsoleSession

    @property
    def name(self) -> str:
        """The user's name, as written on timelines."""
        return self.user.name

    @property
    def may_act(self) -> bool:
        """Whether the user's role may change orders."""
        return Role(self.user.role).may_act


def console_users(request: Request) -> ConsoleUsers:
    """The console's users, in the application's storage (SQL or memory)."""
    state = request.app.state
    users: ConsoleUsers | None = getattr(state, "console_users", None)
    if users is None:
        found = wired(request)
        settings = found.settings
        users = ConsoleUsers(
            found.storage.console,
            policy(
                max_failed_logins=settings.console_max_failed_logins,
                lockout_minutes=settings.console_lockout_minutes,
                session_hours=settings.console_session_hours,
            ),
        )
        state.console_users = users
    return users


async def visitor(request: Request) -> Visitor:
    """The logged-in user; raises :class:`NotLoggedIn`."""
    found = await console_users(request).session(request.cookies.get(SESSION_COOKIE, ""))
    if found is None:
        raise NotLoggedIn()
    session, user = found
    return Visitor(user, session)


async def acting(request: Request) -> tuple[Visitor, FormData]:
    """A user who may act, and their form with the right CSRF token; raises otherwise."""
    user = await visitor(request)
    form = await form_of(request)
    if not forms.same_token(user.session.csrf_token, forms.field(form, "csrf")):
        raise Forbidden("CSRF token missing or wrong")
    if not user.may_act:
        raise Forbidden(f"role {user.user.role} may not act on orders")
    return user, form


async def form_of(request: Request) -> FormData:
    """The posted form; raises :class:`BadForm` when the body is not a small url-encoded
    form (any other type, too large, of unknown size, or not parseable)."""
    try:
        return await forms.read_form(request)
    except forms.FormRefused as exc:
        raise BadForm(str(exc)) from None
    except HTTPException as exc:  # Starlette's own refusals: too many fields, bad encoding
        raise BadForm(str(exc.detail)) from None
    except (ValueError, UnicodeDecodeError, ClientDisconnect) as exc:
        raise BadForm("malformed form") from exc


def secure(request: Request) -> bool:
    """Whether cookies get the ``Secure`` flag."""
    settings = wired(request).settings
    return forms.secure_cookies(settings.public_url, settings.cookie_secure)


def set_session(response: Response, request: Request, cookie: str, max_age: int) -> None:
    """Give the browser its session cookie."""
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=secure(request),
        path=COOKIE_PATH,
    )


def clear_session(response: Response, request: Request) -> None:
    """Take the session cookie away."""
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=secure(request)
    )
