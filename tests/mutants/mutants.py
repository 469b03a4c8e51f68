"""A mutation check of the suite: hand-written mutants of the code that keeps the guarantees,
each applied to a temporary copy of the repository (never the working tree), with the tests
that should notice it run against that copy.

A mutant is *killed* when those tests fail on it (and passed on the unchanged copy, checked
first), *survived* when they pass: then the suite would not notice that guarantee breaking.
The mutants the issue names (``named``) must all be killed; the run exits 1 otherwise.

    python tests/mutants/mutants.py                     # every mutant, report on stdout
    python tests/mutants/mutants.py --report docs/mutants.md
    python tests/mutants/mutants.py --only backward_order_edges --only refunded_double_charge

``make mutants`` runs all of them and rewrites docs/mutants.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: What is copied into the temporary repository (the tests read the docs and the config).
COPIED = ("src", "tests", "docs", "pyproject.toml", "README.md")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache")
#: The longest one mutant's tests may run before the run counts as an error, in seconds.
TIMEOUT_S = 900


@dataclass(frozen=True)
class Mutant:
    """One deliberate mistake: ``original`` (exactly once in ``file``) becomes ``replacement``."""

    name: str
    #: The file changed, relative to ``src/orderguard``.
    file: str
    original: str
    replacement: str
    #: The pytest arguments (test files, node ids, ``-k``) that should notice it.
    tests: tuple[str, ...]
    #: What the mistake breaks, in a reader's words.
    breaks: str
    #: Named by the issue: the run fails unless it is killed.
    named: bool = False


ORDER_FAILED = "    _O.PAYMENT_FAILED: frozenset({_O.PAYMENT_PENDING, _O.PAID, _O.CANCELLED}),\n"
ORDER_UNKNOWN = (
    "    _O.PAYMENT_UNKNOWN: frozenset(\n"
    "        {_O.PAYMENT_PENDING, _O.ACTION_REQUIRED, _O.PAYMENT_FAILED, _O.PAID}\n"
    "    ),\n"
)
STATE_TESTS = ("tests/unit/test_state_machine.py", "tests/unit/test_settle.py")

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "backward_order_edges",
        "domain/states.py",
        ORDER_FAILED,
        ORDER_FAILED.replace("_O.CANCELLED}", "_O.CANCELLED, _O.RECEIVED}"),
        STATE_TESTS,
        "G6: payment_failed -> received (the issue's first backward edge)",
        named=True,
    ),
    Mutant(
        "backward_order_edges_unknown",
        "domain/states.py",
        ORDER_UNKNOWN,
        ORDER_UNKNOWN.replace("_O.PAID}", "_O.PAID, _O.RECEIVED}"),
        STATE_TESTS,
        "G6: payment_unknown -> received (the issue's second backward edge)",
        named=True,
    ),
    Mutant(
        "cancelled_reopens",
        "domain/states.py",
        "    _O.CANCELLED: frozenset(),\n",
        "    _O.CANCELLED: frozenset({_O.PAYMENT_PENDING}),\n",
        STATE_TESTS,
        "G6: a cancelled order can be charged again",
    ),
    Mutant(
        "failed_attempt_reopens",
        "domain/states.py",
        "    _A.FAILED: frozenset(),\n",
        "    _A.FAILED: frozenset({_A.PENDING}),\n",
        STATE_TESTS,
        "G6: a failed payment attempt goes back to pending",
    ),
    Mutant(
        "trigger_allows_everything",
        "storage/migrations/0014_forward_states.sqlite.sql",
        "WHERE machine = 'order' AND from_state",
        "WHERE machine = 'order' OR from_state",
        ("tests/integration/test_state_moves_sql.py", "-k", "sqlite"),
        "G6 in the database: the trigger lets any order state through",
    ),
    Mutant(
        "recheck_ignores_found_success",
        "services/recheck.py",
        "            return outcome_of(result)\n",
        "            found = outcome_of(result)\n"
        "            return None if found.state is AttemptState.SUCCEEDED else found\n",
        ("tests/integration/test_payments_api.py", "-k", "sqlite"),
        "G3/G5: a recheck that finds the charge succeeded leaves the order unknown",
        named=True,
    ),
    Mutant(
        "recheck_resends_with_a_new_key",
        "services/recheck.py",
        "            return await self._payments.send(order, attempt)\n",
        "            import uuid\n"
        "            from dataclasses import replace\n\n"
        "            fresh = replace(attempt, idempotency_key=f'again-{uuid.uuid4()}')\n"
        "            return await self._payments.send(order, fresh)\n",
        ("tests/integration/test_payments_api.py", "-k", "sqlite"),
        "G5: an unknown outcome is re-sent under a key the provider never saw",
    ),
    Mutant(
        "key_lock_removed",
        "services/idempotency.py",
        "        if existing.locked_until is not None and existing.locked_until > now:\n",
        "        if False:\n",
        ("tests/integration/test_idempotency_keys.py", "-k", "sqlite"),
        "G2: a duplicate of a request still charging is answered instead of 409",
        named=True,
    ),
    Mutant(
        # in storage, where every intake path meets it: a paid order's key is claimed with
        # the order (claim_for) when the provider's breaker is closed, apart when it is not
        "key_claim_ignored",
        "storage/keys.py",
        "        return _record(row) if row else None\n",
        "        return None\n",
        ("tests/integration/test_idempotency_keys.py", "-k", "sqlite and fifty"),
        "G2: a key already claimed makes another order (no merchant reference to stop it)",
        named=True,
    ),
    Mutant(
        "key_reuse_accepted",
        "services/idempotency.py",
        "        if existing.fingerprint != request.fingerprint:\n",
        "        if False:\n",
        ("tests/integration/test_api_intake.py", "-k", "sqlite"),
        "G2: the same key with a different body replays the first answer instead of 422",
    ),
    Mutant(
        "refunded_double_charge",
        "demo/audit.py",
        "        if len(charges) > 1 and order_id in db.orders:\n",
        "        kept = [c for c in charges if int(c['amount']) > int(c.get('amount_refunded') or 0)]\n"  # noqa: E501
        "        if len(kept) > 1 and order_id in db.orders:\n",
        ("tests/unit/test_demo_audit.py",),
        "G3 in the demo: a second charge the sweep refunded is not counted as charged twice",
        named=True,
    ),
    Mutant(
        "two_orders_per_checkout_never_fires",
        "demo/audit.py",
        "        if len(checkout.acknowledged) > 1:\n",
        "        if len(checkout.acknowledged) > 2:\n",
        ("tests/unit/test_demo_audit.py",),
        "G2 in the demo: a checkout answered with two orders passes",
    ),
    Mutant(
        "paid_amount_unchecked",
        "demo/audit.py",
        '                (minor_units(int(c["amount"]), c["currency"]), c["currency"]) != expected\n',  # noqa: E501
        "                False\n",
        ("tests/unit/test_demo_audit.py",),
        "G11 in the demo: a paid order charged a different amount passes",
    ),
    Mutant(
        "closed_attempt_charge_unflagged",
        "domain/settle.py",
        "        if outcome.state is AttemptState.SUCCEEDED and attempt.state is AttemptState.FAILED:\n",  # noqa: E501
        "        if False:\n",
        ("tests/unit/test_settle.py",),
        "G3: money taken on an attempt already failed is only noted, not flagged",
    ),
    Mutant(
        "amount_never_checked",
        "domain/settle.py",
        "    if (amount, currency) == (order.total.amount, order.currency):\n",
        "    if True:\n",
        ("tests/unit/test_settle.py",),
        "G11: a success for another amount makes the order paid",
    ),
    Mutant(
        "second_charge_unflagged",
        "domain/settle.py",
        "    return any(\n        other.id != attempt.id",
        "    return False and any(\n        other.id != attempt.id",
        ("tests/unit/test_settle.py",),
        "G3: a second attempt's success on a paid order raises no duplicate-charge flag",
    ),
    Mutant(
        "older_attempt_speaks_for_the_order",
        "domain/settle.py",
        "    return newest.id != attempt.id and attempt.state is not AttemptState.SUCCEEDED\n",
        "    return False\n",
        ("tests/unit/test_settle.py", "tests/unit/test_settle_older_attempts.py"),
        "G6: a late answer for an older attempt moves the order past the newer attempt",
    ),
    Mutant(
        "server_error_counts_as_declined",
        "services/payments.py",
        '            return Outcome(AttemptState.UNKNOWN, reason=f"provider error after retries: {exc}")\n',  # noqa: E501
        '            return Outcome(AttemptState.FAILED, reason=f"provider error after retries: {exc}")\n',  # noqa: E501
        ("tests/e2e/test_payment_faults.py", "-k", "outage and sqlite"),
        "G3/G5: a 5xx after the retries is taken as a decline, though it may have charged",
    ),
    Mutant(
        "timeout_counts_as_declined",
        "services/payments.py",
        '            return Outcome(AttemptState.UNKNOWN, reason="no answer within the time budget")\n',  # noqa: E501
        '            return Outcome(AttemptState.FAILED, reason="no answer within the time budget")\n',  # noqa: E501
        ("tests/integration/test_payment_limits.py", "-k", "sqlite"),
        "G3/G5: a charge with no answer in time is taken as a decline, though it charged",
    ),
    Mutant(
        "unreachable_provider_counts_as_declined",
        "services/payments.py",
        "            return Outcome(AttemptState.PENDING, reason=reason)\n",
        "            return Outcome(AttemptState.FAILED, reason=reason)\n",
        ("tests/integration/test_payments_api.py", "-k", "sqlite"),
        "G5: a charge the provider never received is failed instead of re-sent",
    ),
    Mutant(
        "each_send_uses_a_new_key",
        "services/payments.py",
        "            idempotency_key=attempt.idempotency_key,\n",
        "            idempotency_key=ids.new_id('key'),\n",
        (
            "tests/integration/test_payments_api.py",
            "tests/integration/test_janitor.py",
            "-k",
            "sqlite",
        ),
        "G3: an attempt sent again (after no answer) is charged under a new key",
    ),
)


@dataclass
class Result:
    mutant: Mutant
    #: ``killed``, ``survived`` or ``error`` (the mutant no longer applies, or pytest broke).
    outcome: str
    #: The first failing test, or what went wrong.
    detail: str
    seconds: float


class Stale(Exception):
    """The mutant's original text is not (exactly once) in the file: the code moved on."""


def apply(root: Path, mutant: Mutant) -> str:
    """Write ``mutant`` into the copy at ``root``; returns the file's original text."""
    path = root / "src" / "orderguard" / mutant.file
    text = path.read_text()
    found = text.count(mutant.original)
    if found != 1:
        raise Stale(f"{mutant.file}: the original text is there {found} times, not once")
    path.write_text(text.replace(mutant.original, mutant.replacement))
    return text


def child_env(root: Path) -> dict[str, str]:
    """The environment of a child run in the copy: its code first, no parent pytest's state."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT_TEST", "PYTEST_ADDOPTS"))
    }
    env["PYTHONPATH"] = os.pathsep.join([str(root / "src"), str(root)])
    return env


def pytest(root: Path, args: Sequence[str], python: str) -> subprocess.CompletedProcess[str]:
    """Run pytest in the copy at ``root``, importing orderguard and the tests from it."""
    env = child_env(root)
    command = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    return subprocess.run(
        [*command, *args], cwd=root, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )


def first_failure(output: str) -> str:
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)
    return match[1] if match else output.strip().splitlines()[-1] if output.strip() else ""


def copy_repository(into: Path) -> Path:
    root = into / "repo"
    root.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=IGNORED)
        elif source.is_file():
            shutil.copy2(source, root / name)
    return root


def check_imports(root: Path, python: str) -> None:
    """The copy's orderguard, not an installed one, is what the tests import."""
    env = child_env(root)
    done = subprocess.run(
        [python, "-c", "import orderguard, tests; print(orderguard.__file__, tests.__file__)"],
        cwd=root, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    if any(not Path(p).is_relative_to(root) for p in done.stdout.split()):
        raise SystemExit(f"the copy is not what gets imported: {done.stdout.strip()}")


def run(mutants: Iterable[Mutant], *, python: str = sys.executable) -> list[Result]:
    """Each mutant's outcome, after a control run of every test set on the unchanged copy."""
    chosen = list(mutants)
    results = []
    with tempfile.TemporaryDirectory(prefix="orderguard-mutants-") as tmp:
        root = copy_repository(Path(tmp))
        check_imports(root, python)
        for tests in dict.fromkeys(m.tests for m in chosen):
            control = pytest(root, tests, python)
            print(f"control  {' '.join(tests)}: exit {control.returncode}", flush=True)
            if control.returncode != 0:
                raise SystemExit(
                    f"control run failed on the unchanged code ({' '.join(tests)}):\n"
                    + control.stdout[-3000:]
                )
        for mutant in chosen:
            results.append(_one(root, mutant, python))
            print(_line(results[-1]), flush=True)
    return results


def _one(root: Path, mutant: Mutant, python: str) -> Result:
    started = time.monotonic()
    try:
        original = apply(root, mutant)
    except Stale as exc:
        return Result(mutant, "error", str(exc), 0.0)
    path = root / "src" / "orderguard" / mutant.file
    try:
        done = pytest(root, mutant.tests, python)
    except subprocess.TimeoutExpired:
        return Result(mutant, "error", f"tests ran past {TIMEOUT_S}s", time.monotonic() - started)
    finally:
        path.write_text(original)
    took = time.monotonic() - started
    if done.returncode == 1:  # tests ran and at least one failed
        return Result(mutant, "killed", first_failure(done.stdout), took)
    if done.returncode == 0:
        return Result(mutant, "survived", "every test passed", took)
    detail = f"pytest exit {done.returncode}: {first_failure(done.stdout + done.stderr)}"
    return Result(mutant, "error", detail, took)


def _line(result: Result) -> str:
    mark = "*" if result.mutant.named else " "
    return f"{result.outcome:8} {mark} {result.mutant.name:40} {result.detail}"


def markdown(results: Sequence[Result], command: str) -> str:
    killed = sum(1 for r in results if r.outcome == "killed")
    lines = [
        "# Mutants: does the suite notice a guarantee breaking?",
        "",
        "Each row is one deliberate mistake written into a temporary copy of the repository",
        "(never the working tree) by `tests/mutants/mutants.py`; the tests named on the row are",
        "run against that copy with the code's own tests unchanged. *Killed* means a test failed",
        "(the first one is shown), so the suite notices that mistake; *survived* means every test",
        "passed. Before the mutants run, the same tests are run on the unchanged copy and must",
        "pass. Rows marked **named** are the mistakes issue 17 names: each must be killed.",
        "",
        f"Generated by `{command}`: {killed} of {len(results)} killed.",
        "",
        "| mutant | file | what it breaks | tests run | result |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        m = r.mutant
        name = f"`{m.name}`" + (" **named**" if m.named else "")
        tests = " ".join(m.tests).replace("|", "\\|")
        detail = r.detail.replace("|", "\\|")
        lines.append(f"| {name} | `{m.file}` | {m.breaks} | `{tests}` | {r.outcome}: `{detail}` |")
    survivors = [r for r in results if r.outcome != "killed"]
    lines += ["", "## Survivors", ""]
    if survivors:
        lines += [f"- `{r.mutant.name}` ({r.outcome}): {r.detail}" for r in survivors]
        lines += ["", "What each survivor means, and what was done about it: `docs/testing.md`."]
    else:
        lines.append("None: every mutant was killed.")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", default=[], help="run only this mutant")
    parser.add_argument("--named", action="store_true", help="run only the named mutants")
    parser.add_argument("--report", type=Path, help="write the markdown report here")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = parser.parse_args(argv)
    known = {m.name for m in MUTANTS}
    unknown = sorted(set(args.only) - known)
    if unknown:
        parser.error(f"no mutant named {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    chosen = [
        m for m in MUTANTS if (not args.only or m.name in args.only) and (not args.named or m.named)
    ]
    if args.list:
        for m in chosen:
            print(f"{'*' if m.named else ' '} {m.name:40} {m.file:45} {m.breaks}")
        return 0
    results = run(chosen)
    if args.report:
        command = "python tests/mutants/mutants.py " + " ".join(argv or sys.argv[1:])
        args.report.write_text(markdown(results, command.strip()))
    bad = [r for r in results if r.outcome == "error" or (r.mutant.named and r.outcome != "killed")]
    killed = sum(1 for r in results if r.outcome == "killed")
    print(f"{killed} of {len(results)} mutants killed; named ones not killed: {len(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
