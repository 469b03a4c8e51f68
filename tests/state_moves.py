"""The state machines as the product promises them (PRODUCT.md, docs/guarantees.md), written
out by hand, move by move, independently of ``orderguard.domain.states``.

The tests compare the code — the domain's tables and the database's trigger — with these
lists, so a move added to or dropped from the code makes a test fail. Change a line here only
when the promise itself changes (and docs/guarantees.md with it).
"""

from __future__ import annotations

#: Every order state, in the order an order usually goes through them.
ORDER_STATES = (
    "received",
    "payment_pending",
    "action_required",
    "payment_unknown",
    "payment_failed",
    "paid",
    "refunded",
    "cancelled",
)

#: Every move an order may make, source -> target; every other pair is refused.
ORDER_MOVES = frozenset(
    {
        ("received", "payment_pending"),
        ("received", "cancelled"),
        ("payment_pending", "action_required"),
        ("payment_pending", "payment_unknown"),
        ("payment_pending", "payment_failed"),
        ("payment_pending", "paid"),
        ("action_required", "payment_unknown"),
        ("action_required", "payment_failed"),
        ("action_required", "paid"),
        ("action_required", "cancelled"),
        ("payment_unknown", "payment_pending"),
        ("payment_unknown", "action_required"),
        ("payment_unknown", "payment_failed"),
        ("payment_unknown", "paid"),
        ("payment_failed", "payment_pending"),
        ("payment_failed", "paid"),
        ("payment_failed", "cancelled"),
        ("paid", "refunded"),
    }
)

#: How far along an order is. Every move in :data:`ORDER_MOVES` goes to a higher rank,
#: except the re-entries below.
ORDER_RANK = {
    "received": 0,
    "payment_pending": 1,
    "action_required": 2,
    "payment_unknown": 2,
    "payment_failed": 3,
    "paid": 4,
    "cancelled": 4,
    "refunded": 5,
}

#: The only moves that do not go up in rank: a charge re-sent with its key after the
#: provider never received it, paying again after a decline, and the two in-flight
#: states that follow each other as the provider answers.
ORDER_RE_ENTRIES = frozenset(
    {
        ("payment_unknown", "payment_pending"),
        ("payment_failed", "payment_pending"),
        ("payment_unknown", "action_required"),
        ("action_required", "payment_unknown"),
    }
)

#: Every payment-attempt state.
ATTEMPT_STATES = ("pending", "action_required", "unknown", "succeeded", "failed", "refunded")

#: Every move a payment attempt may make; every other pair is refused.
ATTEMPT_MOVES = frozenset(
    {
        ("pending", "action_required"),
        ("pending", "unknown"),
        ("pending", "succeeded"),
        ("pending", "failed"),
        ("action_required", "succeeded"),
        ("action_required", "failed"),
        ("unknown", "pending"),
        ("unknown", "action_required"),
        ("unknown", "succeeded"),
        ("unknown", "failed"),
        ("succeeded", "refunded"),
    }
)

#: How far along an attempt is; the only move down is a charge the provider never received
#: going back to ``pending`` to be re-sent with the same key.
ATTEMPT_RANK = {
    "pending": 0,
    "unknown": 1,
    "action_required": 2,
    "succeeded": 3,
    "failed": 3,
    "refunded": 4,
}
ATTEMPT_RE_ENTRIES = frozenset({("unknown", "pending")})


def path_to(moves: frozenset[tuple[str, str]], start: str, goal: str) -> list[str]:
    """The shortest list of states after ``start`` that reaches ``goal`` along ``moves``."""
    paths: dict[str, list[str]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for state in frontier:
            for source, target in sorted(moves):
                if source == state and target not in paths:
                    paths[target] = [*paths[state], target]
                    following.append(target)
        frontier = following
    return paths[goal]


def reachable(moves: frozenset[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """Every (source, target) where ``target`` follows ``source`` after one or more moves.

    One saved change may hold several moves, so this is what the database may see a stored
    state become. A state staying as it is is no move, so pairs of a state with itself (a
    cycle through a re-entry) are left out.
    """
    pairs = set(moves)
    while True:
        longer = {(a, d) for a, b in pairs for c, d in moves if b == c} - pairs
        if not longer:
            return frozenset((a, b) for a, b in pairs if a != b)
        pairs |= longer
