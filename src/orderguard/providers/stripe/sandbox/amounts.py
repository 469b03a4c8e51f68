"""The sandbox refuses PaymentIntent amounts Stripe refuses, in Stripe's own units and words.

The rules are Stripe's currency rules (:mod:`orderguard.providers.stripe.currencies`, from
https://docs.stripe.com/currencies): the amount arrives in Stripe's units (``1000`` is 1,000
MGA, 10.00 USD or 1.000 KWD) and is checked as Stripe checks it, answering Stripe's error
codes (https://docs.stripe.com/error-codes): ``amount_too_small``, ``amount_too_large``,
``invalid_charge_amount`` (three-decimal amounts not ending in 0) and
``invalid_charge_amount_no_decimal_compatible`` (ISK amounts that are not whole krónur).
"""

from __future__ import annotations

from orderguard.providers.stripe import currencies as rules
from orderguard.providers.stripe.sandbox import objects
from orderguard.providers.stripe.sandbox.ledger import Obj

#: Each refusal is HTTP 400 ``invalid_request_error`` on ``param``.
Refusal = tuple[str, str, str]


def _written(amount: int, currency: str) -> str:
    """``amount`` Stripe units as Stripe writes it in messages (``0.50 usd``, ``50 jpy``)."""
    digits = rules.stripe_exponent(currency)
    whole, minor = divmod(amount, 10**digits)
    shown = f"{whole:,}" if digits == 0 else f"{whole:,}.{minor:0{digits}d}"
    return f"{shown} {currency.lower()}"


def amount_refusal(amount: int, currency: str) -> Refusal | None:
    """``(code, message, param)`` of Stripe's refusal of ``amount`` (its units), or None."""
    code = currency.upper()
    if code not in rules.SUPPORTED:
        return (
            "parameter_invalid",
            f"Invalid currency: {currency.lower()}. Stripe does not charge in this currency.",
            "currency",
        )
    least, most = rules.stripe_minimum(code), rules.stripe_maximum(code)
    if amount < least:
        return (
            "amount_too_small",
            f"Amount must be at least {_written(least, code)}",
            "amount",
        )
    if amount > most:
        return (
            "amount_too_large",
            f"Amount must be no more than {_written(most, code)}",
            "amount",
        )
    step = rules.stripe_step(code)
    if amount % step and code in rules.WHOLE_UNITS_IN_TWO_DECIMALS:
        return (
            "invalid_charge_amount_no_decimal_compatible",
            f"Invalid amount. Currency {code} has become effectively zero-decimal and charged "
            f"amounts must be evenly divisible by {step}.",
            "amount",
        )
    if amount % step:
        return (
            "invalid_charge_amount",
            f"Invalid amount. {code} amounts must be a multiple of {step} "
            "(three-decimal currencies must end in 0).",
            "amount",
        )
    return None


def amount_problem(params: Obj) -> Obj | None:
    """The 400 error body for a PaymentIntent's ``amount``/``currency``, or None when fine.

    Called after the required parameters were checked (``amount`` is a positive integer).
    """
    refusal = amount_refusal(int(params["amount"]), str(params["currency"]))
    if refusal is None:
        return None
    code, message, param = refusal
    return objects.error("invalid_request_error", message, code=code, param=param)
