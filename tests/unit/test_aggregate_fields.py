"""Orders, payment attempts and refunds change only through the aggregate's methods.

Every module above the domain (services, api, web, outbox, reconcile, providers, the CLI,
the worker, the demo, ...) is read for assignments to an order's, an attempt's or a refund's
fields (``order.state = ...``, ``attempt.decline_code = ...``, ``refund.updated_at = ...``,
``a, order.checks = ...``, ``order.checks += 1``, ``setattr(order, "state", ...)``) and for
changes to the aggregate's lists in place (``order.attempts.append(...)``,
``order.flags[0] = ...``). ``domain/`` is where those methods live; ``storage/`` rebuilds
aggregates from rows (and counts the versions it stored), so neither is read; a demo
defect that plays a repository's part is listed with why. A name such as
``state`` is also a field of objects that are not orders (Starlette's ``app.state``): the
few such receivers are listed by name below, each with what it is.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from orderguard.domain.order import Order, PaymentAttempt
from orderguard.domain.refund_record import Refund

SRC = Path(__file__).resolve().parents[2] / "src" / "orderguard"
#: Packages that may set the aggregate's fields: where its methods live, and the storage
#: that rebuilds it from rows.
NOT_READ = ("domain", "storage")

ORDER_FIELDS = frozenset(
    {
        "id",
        "state",
        "currency",
        "lines",
        "customer",
        "status_token",
        "created_at",
        "updated_at",
        "merchant_reference",
        "locale",
        "payment_method",
        "checks",
        "last_checked_at",
        "next_check_at",
        "version",
        "livemode",
        "attempts",
        "flags",
        "refunds",
        "new_entries",
        "new_events",
    }
)
ATTEMPT_FIELDS = frozenset(
    {
        "id",
        "order_id",
        "seq",
        "provider",
        "method",
        "amount",
        "currency",
        "idempotency_key",
        "created_at",
        "updated_at",
        "state",
        "provider_ref",
        "decline_code",
        "redirect_url",
    }
)
REFUND_FIELDS = frozenset(
    {
        "id",
        "order_id",
        "attempt_id",
        "amount",
        "currency",
        "reason",
        "requester",
        "request_key",
        "created_at",
        "updated_at",
        "state",
        "provider_ref",
        "failure_reason",
        "checks",
        "next_check_at",
    }
)
FIELDS = ORDER_FIELDS | ATTEMPT_FIELDS | REFUND_FIELDS
#: The aggregate's lists, which change only through its methods too.
LISTS = frozenset({"attempts", "flags", "refunds", "new_entries", "new_events", "lines"})
#: List methods that change the list.
CHANGES = frozenset({"append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse"})
#: Receivers that are not an order, an attempt or a refund, with the field they set.
NOT_AGGREGATES = {
    ("ops", "state"): "api/app.py: a Starlette application's state",
    ("ask", "state"): "demo/shoppers.py: the simulated shopper's refund request",
    ("checkout", "refunds"): "demo/shoppers.py: the refunds a simulated shopper asked for",
    ("refunded", "refunds"): "demo/audit.py: the audit's own row of an order, read in SQL",
    ("exchange", "order_id"): "demo/shoppers.py: one request of the simulator's own record",
    ("exchange", "state"): "demo/shoppers.py: one request of the simulator's own record",
}


#: Places that play storage's part on purpose, with why: (module, what they change).
STORAGE_STAND_INS = {
    ("demo/defects.py", "order.new_entries[:]"): "the planted silent_paid defect: a "
    "repository that drops the timeline entries it was given to save",
}


def direct_changes(source: str, where: str = "<source>") -> list[str]:
    """Each place in ``source`` that sets an aggregate's field or changes its lists, in
    line order."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = [t for target in node.targets for t in _flat(target)]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = _flat(node.target)
        elif isinstance(node, ast.Delete):
            targets = [t for target in node.targets for t in _flat(target)]
        for target in targets:
            if _field(target, FIELDS) or (
                isinstance(target, ast.Subscript) and _field(target.value, LISTS)
            ):
                found.append((node.lineno, f"{where}:{node.lineno}: {ast.unparse(target)}"))
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in CHANGES:
                if _field(func.value, LISTS):
                    found.append((node.lineno, f"{where}:{node.lineno}: {ast.unparse(func)}(...)"))
            if isinstance(func, ast.Name) and func.id == "setattr" and len(node.args) > 1:
                name = node.args[1]
                if isinstance(name, ast.Constant) and name.value in FIELDS:
                    found.append(
                        (node.lineno, f"{where}:{node.lineno}: setattr(..., {name.value!r})")
                    )
    return [text for _, text in sorted(found)]


def _flat(target: ast.expr) -> list[ast.expr]:
    if isinstance(target, ast.Tuple | ast.List):
        return [t for element in target.elts for t in _flat(element)]
    if isinstance(target, ast.Starred):
        return _flat(target.value)
    return [target]


def _field(node: ast.expr, names: frozenset[str]) -> bool:
    """Whether ``node`` is ``<something other than self>.<one of names>``."""
    if not isinstance(node, ast.Attribute) or node.attr not in names:
        return False
    receiver = node.value
    if isinstance(receiver, ast.Name):
        if receiver.id in {"self", "cls"}:
            return False  # an object's own field: the aggregate's own are in domain/
        return (receiver.id, node.attr) not in NOT_AGGREGATES
    return True


def _is_sandbox(path: Path) -> bool:
    """A provider's sandbox imitates the provider with objects of its own (trades,
    deliveries, their ``state``); it never holds orderguard's aggregates (checked below)."""
    return "sandbox" in path.relative_to(SRC).parts[:-1]


def _modules() -> list[Path]:
    return [
        path
        for path in sorted(SRC.rglob("*.py"))
        if path.relative_to(SRC).parts[0] not in NOT_READ and not _is_sandbox(path)
    ]


def test_no_sandbox_reaches_the_aggregate() -> None:
    sandboxes = [path for path in SRC.rglob("*.py") if _is_sandbox(path)]
    assert len(sandboxes) > 10  # Stripe's, Alipay's and WeChat Pay's
    aggregate = ("orderguard.domain.order", "orderguard.domain.refund_record")
    reaching = [
        str(p.relative_to(SRC)) for p in sandboxes if any(m in p.read_text() for m in aggregate)
    ]
    assert reaching == []


def test_no_layer_above_the_domain_sets_an_order_attempt_or_refund_field() -> None:
    found = [
        hit
        for path in _modules()
        for hit in direct_changes(path.read_text(), str(path.relative_to(SRC)))
        if _where_what(hit) not in STORAGE_STAND_INS
    ]
    assert found == []


def test_each_storage_stand_in_is_still_there() -> None:
    found = {
        _where_what(hit)
        for path in _modules()
        for hit in direct_changes(path.read_text(), str(path.relative_to(SRC)))
    }
    assert set(STORAGE_STAND_INS) <= found


def _where_what(hit: str) -> tuple[str, str]:
    where, what = hit.split(": ", 1)
    return where.rsplit(":", 1)[0], what


def test_the_layers_read_include_the_services_api_and_web() -> None:
    read = {path.relative_to(SRC).parts[0] for path in _modules()}
    assert {"services", "api", "web", "outbox", "reconcile", "providers", "demo"} <= read
    assert "services/settling.py" in {str(p.relative_to(SRC)) for p in _modules()}


def test_the_field_lists_name_every_field_of_the_aggregate() -> None:
    assert {f.name for f in dataclasses.fields(Order)} == ORDER_FIELDS
    assert {f.name for f in dataclasses.fields(PaymentAttempt)} == ATTEMPT_FIELDS
    assert {f.name for f in dataclasses.fields(Refund)} == REFUND_FIELDS


def test_the_scan_sees_each_way_of_setting_a_field() -> None:
    source = "\n".join(
        [
            "order.state = OrderState.PAID",
            "attempt.decline_code = 'x'",
            "refund.updated_at = now",
            "a, order.next_check_at = 1, later",
            "order.checks += 1",
            "current.livemode: bool = True",
            "order.attempts.append(attempt)",
            "order.flags[0] = flag",
            "del order.refunds[0]",
            "setattr(order, 'payment_method', None)",
            "orders[0].payment_method = None",
        ]
    )
    assert [hit.split(": ", 1)[1] for hit in direct_changes(source)] == [
        "order.state",
        "attempt.decline_code",
        "refund.updated_at",
        "order.next_check_at",
        "order.checks",
        "current.livemode",
        "order.attempts.append(...)",
        "order.flags[0]",
        "order.refunds[0]",
        "setattr(..., 'payment_method')",
        "orders[0].payment_method",
    ]


def test_the_scan_leaves_reads_methods_and_objects_own_fields_alone() -> None:
    source = "\n".join(
        [
            "order.move_to(OrderState.PAID, cause=cause, at=at)",
            "state = order.state",
            "self.state = state",
            "ops.state = main.state",
            "if order.state is OrderState.PAID: pass",
            "items.append(order.attempts)",
        ]
    )
    assert direct_changes(source) == []
