"""The id of the request being served: the one ambient value storage reads.

A context variable at the bottom of the package (standard library only), so storage can
stamp it on the timeline entries it writes without importing observability, which sets it
(``observability.context.request_context``) for each HTTP request and the tasks it starts.
The worker runs outside any request: there it is ``None``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_REQUEST_ID: ContextVar[str | None] = ContextVar("orderguard_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request being served, or ``None`` outside a request."""
    return _REQUEST_ID.get()


@contextmanager
def request_id_set(request_id: str) -> Iterator[None]:
    """Run a block with ``request_id`` as the current request's id."""
    token = _REQUEST_ID.set(request_id)
    try:
        yield
    finally:
        _REQUEST_ID.reset(token)
