"""The shopper's side of the demo's oracle: every checkout ends where the shopper was told.

What a checkout was shown and did comes from the simulator's own record
(:class:`~orderguard.demo.shoppers.Checkout`); where its order ended, from the database.
The rules are written here from what a shopper reads, not from the service's state machine:

* a state the shopper was shown last makes a promise (:data:`PROMISES`): told ``paid``, the
  order ends paid (or refunded by the back office); told ``payment_failed``, no charge is
  kept (it stays failed, or is cancelled). A state still being found out promises nothing;
* what the shopper did makes one too (:func:`broken_promises`): paying again with a card
  that works after an answer, or approving 3-D Secure and being shown the order back at the
  shop, cannot end declined or cancelled; a refused or abandoned challenge, and a declined
  card never paid again, cannot end paid;
* nothing may go wrong that nothing explains: a 5xx after retries, a well-formed request
  refused, a page that would not open, a step the flow could not take, a simulator error
  (the simulator writes these down as ``errors``).
"""

from __future__ import annotations

from collections.abc import Iterable

from orderguard.demo.shoppers import Checkout

#: Order states a shopper shown the key may find their order in at the end.
PROMISES: dict[str, frozenset[str]] = {
    "paid": frozenset({"paid", "refunded"}),
    "refunded": frozenset({"refunded"}),
    "cancelled": frozenset({"cancelled"}),
    "payment_failed": frozenset({"payment_failed", "cancelled"}),
}
#: End states in which the shopper's money was not taken (or not kept).
NOT_CHARGED = frozenset({"payment_failed", "cancelled"})
#: End states in which the shopper paid.
CHARGED = frozenset({"paid", "refunded"})
#: Behaviours whose card is charged when sent (and whose order must not end declined).
WORKING_CARD = frozenset({"card", "double_click"})


def misled(checkout: Checkout, final_states: Iterable[str]) -> list[str]:
    """Why ``checkout``'s shopper was misled, given the states its orders ended in (read
    from the database); empty when what they were told and did agrees with them."""
    finals = sorted(set(final_states))
    why = [f"{checkout.reference}: {error}" for error in checkout.errors]
    told = checkout.told
    if told in PROMISES:
        why += [
            f"{checkout.reference}: told {told}, order ended {final}"
            for final in finals
            if final not in PROMISES[told]
        ]
    why += [
        f"{checkout.reference}: {promise}, order ended {final}"
        for promise, forbidden in broken_promises(checkout)
        for final in finals
        if final in forbidden
    ]
    return why


def broken_promises(checkout: Checkout) -> list[tuple[str, frozenset[str]]]:
    """What the shopper's own steps promise: (the step in words, end states it rules out)."""
    answered = [e for e in checkout.exchanges if e.state is not None]
    sent_again = [e for e in checkout.exchanges if e.path.endswith("/payments")]
    back_at_shop = [e for e in answered if e.method == "GET"]
    behaviour = checkout.behaviour
    if behaviour == "declined_then_paid" and any(e.state for e in sent_again):
        return [("paid again with a card that works and was answered", NOT_CHARGED)]
    if behaviour == "declined_then_paid" and not sent_again:
        return [("declined and never paid again", CHARGED)]
    if behaviour == "3ds_approved" and back_at_shop:
        return [("approved 3-D Secure and was shown the order back at the shop", NOT_CHARGED)]
    if behaviour == "3ds_refused":
        return [("refused 3-D Secure", CHARGED)]
    if behaviour == "3ds_abandoned":
        return [("walked away from 3-D Secure", CHARGED)]
    if behaviour in WORKING_CARD and answered:
        return [("paid with a card that works and was answered", NOT_CHARGED)]
    return []
