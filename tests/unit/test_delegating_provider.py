"""The delegating base every provider wrapper builds on forwards each method of the
``PaymentProvider`` protocol to the provider it wraps, arguments and answer unchanged.

The methods are read off the protocol itself, so a method added there without a forward in
``DelegatingProvider`` fails here, and the wrappers that only add something around each call
(retries, metrics) are held to forwarding unchanged too.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from orderguard.demo.defects import ForgetfulKeys, HiddenSuccess, ShortCharges, ShortRefunds
from orderguard.observability.instrumented import InstrumentedProvider
from orderguard.providers.base import DelegatingProvider, PaymentProvider
from orderguard.providers.resilience import RetryingProvider

#: Every method of the protocol, read off it (its ``name`` is an attribute, not a method).
PROTOCOL_METHODS = sorted(
    name
    for name, value in vars(PaymentProvider).items()
    if inspect.isfunction(value) and not name.startswith("_")
)
#: What the recorded provider answers every call with.
ANSWER = object()
#: Wrappers that change nothing they are given nor anything they answer.
TRANSPARENT: list[Callable[[Any], PaymentProvider]] = [
    DelegatingProvider,
    RetryingProvider,
    InstrumentedProvider,
]


class Recorded:
    """A provider whose every protocol method records its call and answers :data:`ANSWER`
    (awaitably where the protocol's method is a coroutine)."""

    name = "recorded"

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []

    def __getattr__(self, method: str) -> Callable[..., object]:
        declared = getattr(PaymentProvider, method)  # AttributeError for anything else

        def record(*args: object, **kwargs: object) -> object:
            self.calls.append((method, _bound(method, *args, **kwargs)))
            return ANSWER

        async def record_async(*args: object, **kwargs: object) -> object:
            return record(*args, **kwargs)

        return record_async if inspect.iscoroutinefunction(declared) else record


def _bound(method: str, *args: object, **kwargs: object) -> dict[str, object]:
    """The call's arguments by parameter name, however they were passed."""
    signature = inspect.signature(getattr(PaymentProvider, method))
    return dict(signature.bind(None, *args, **kwargs).arguments) | {"self": None}


def _markers(method: str) -> tuple[list[object], dict[str, object]]:
    """A distinct marker for every parameter of the protocol's ``method`` (defaulted ones
    too, so a forward that drops one is seen): positional ones by position, keyword-only
    ones by name."""
    parameters = list(inspect.signature(getattr(PaymentProvider, method)).parameters.values())
    args = [object() for p in parameters[1:] if p.kind is p.POSITIONAL_OR_KEYWORD]
    kwargs = {p.name: object() for p in parameters if p.kind is p.KEYWORD_ONLY}
    return args, kwargs


async def _call(
    provider: object, method: str, args: list[object], kwargs: dict[str, object]
) -> object:
    answer = getattr(provider, method)(*args, **kwargs)
    return await answer if inspect.isawaitable(answer) else answer


def _answer_of(method: str) -> object:
    """What the wrapper answers: the wrapped provider's answer, ``None`` where the protocol
    declares nothing is returned (``aclose``)."""
    returns = inspect.signature(getattr(PaymentProvider, method)).return_annotation
    return None if returns in (None, "None") else ANSWER


def test_the_protocol_methods_are_read_off_the_protocol() -> None:
    assert {"create_payment", "refund", "parse_webhook", "aclose"} <= set(PROTOCOL_METHODS)
    assert "name" not in PROTOCOL_METHODS


@pytest.mark.parametrize("method", PROTOCOL_METHODS)
def test_the_base_defines_each_method_as_the_protocol_does(method: str) -> None:
    assert method in vars(DelegatingProvider), f"DelegatingProvider does not forward {method}"
    assert inspect.iscoroutinefunction(
        getattr(DelegatingProvider, method)
    ) == inspect.iscoroutinefunction(getattr(PaymentProvider, method))
    assert inspect.signature(getattr(DelegatingProvider, method)) == inspect.signature(
        getattr(PaymentProvider, method)
    )


@pytest.mark.parametrize("wrap", TRANSPARENT, ids=lambda w: w.__name__)
@pytest.mark.parametrize("method", PROTOCOL_METHODS)
async def test_each_call_reaches_the_wrapped_provider_unchanged(
    wrap: Callable[[Any], PaymentProvider], method: str
) -> None:
    inner = Recorded()
    wrapper = wrap(inner)
    args, kwargs = _markers(method)

    answer = await _call(wrapper, method, args, kwargs)

    assert answer is _answer_of(method)
    assert inner.calls == [(method, _bound(method, *args, **kwargs))]


@pytest.mark.parametrize(
    "wrapper",
    [
        DelegatingProvider,
        RetryingProvider,
        InstrumentedProvider,
        ShortRefunds,
        ShortCharges,
        ForgetfulKeys,
        HiddenSuccess,
    ],
)
def test_every_wrapper_is_a_delegating_provider_under_the_wrapped_name(
    wrapper: type[DelegatingProvider],
) -> None:
    wrapped = wrapper(Recorded())  # type: ignore[arg-type]
    assert isinstance(wrapped, DelegatingProvider)
    assert isinstance(wrapped, PaymentProvider)
    assert wrapped.name == "recorded"
