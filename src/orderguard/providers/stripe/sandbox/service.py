"""The sandbox's running state: ledger, engine, fault dice, outage window, webhook dispatcher.

Idempotency is Stripe's: the first result of an Idempotency-Key (once the endpoint began,
so a validation 400 is not kept) is saved, a 5xx included, and replayed to every request with
that key for :data:`KEY_TTL_S` seconds of the sandbox's clock; after that the key is free. A
request whose key is still being worked on is answered 409 ``idempotency_key_in_use``.

Most faults model the network edge in front of a healthy Stripe: a "500 after the charge" or
a "timeout after the charge" loses the *answer*, not the stored idempotent result, so a retry
with the same key replays the real outcome. ``error_saved`` is Stripe itself failing after
the charge: its 500 is what the key keeps, so only asking (retrieve, search) tells the truth.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse

from orderguard.providers.faults import StrikeLimit, hold
from orderguard.providers.stripe.sandbox import objects
from orderguard.providers.stripe.sandbox.engine import Engine, Outcome
from orderguard.providers.stripe.sandbox.faults import (
    CallFaults,
    FaultDice,
    FaultProfile,
)
from orderguard.providers.stripe.sandbox.ledger import Ledger, Obj
from orderguard.providers.stripe.sandbox.scripted import SHOULD_RETRY, ScriptedAnswer
from orderguard.providers.stripe.sandbox.webhooks import WebhookDispatcher


@dataclass(slots=True)
class SandboxConfig:
    """How one sandbox runs."""

    db_path: str
    faults: FaultProfile = field(default_factory=FaultProfile)
    seed: int = 0
    webhook_url: str | None = None
    #: What webhooks are signed with; the receiving account must be configured with it.
    webhook_secret: str = "whsec_sandbox"
    #: Unix seconds for ``created`` stamps; tests pass a settable clock.
    clock: Callable[[], float] = time.time


#: How long Stripe keeps an idempotency key's saved result (24 hours).
KEY_TTL_S = 24 * 3600
#: Stripe's message for a key reused with other parameters.
KEY_REUSED = (
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with. Try using a key other than '{key}' if you meant to execute a different request."
)
#: Stripe's message for a key whose first request is still running.
KEY_IN_USE = (
    "There is currently another in-progress request using this Stripe API key and "
    "idempotency key. Please try again later."
)


def error_response(status: int, kind: str, message: str, **extra: str) -> JSONResponse:
    """A Stripe error object as a response (``extra``: ``code`` and the like)."""
    return JSONResponse(objects.error(kind, message, **extra), status_code=status)


def fingerprint(path: str, params: Obj) -> str:
    """What an idempotency key is bound to: the route and its parameters."""
    return hashlib.sha256(json.dumps([path, params], sort_keys=True).encode()).hexdigest()


class Sandbox:
    """Everything one running sandbox app shares between requests."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        #: Seconds added to ``config.clock`` through ``POST /_sandbox/clock``.
        self.clock_offset = 0.0
        self.ledger = Ledger(config.db_path, clock=self.now)
        self.engine = Engine(
            self.ledger, clock=self.now, search_lag=lambda: self.profile.search_lag_s
        )
        self.dice = FaultDice(config.seed)
        self._profile = config.faults
        #: Calls struck under the current profile (for ``FaultProfile.limit``).
        self.strikes = StrikeLimit()
        self.outage_until = 0.0
        #: Answers the next API calls give, in order (set through ``/_sandbox/answers``).
        self.scripted: list[ScriptedAnswer] = []
        self.write_lock = asyncio.Lock()
        #: Idempotency keys whose first request is being worked on.
        self.keys_in_use: set[str] = set()
        #: Cleared through ``/_sandbox/writes`` to hold writes mid-flight (their keys in use).
        self.writes_open = asyncio.Event()
        self.writes_open.set()
        self.webhooks = WebhookDispatcher(
            self.ledger,
            url=config.webhook_url,
            secret=config.webhook_secret,
            dice=self.dice,
            profile=lambda: self.profile,
        )

    def now(self) -> float:
        """The sandbox's clock: ``config.clock`` moved by what ``/_sandbox/clock`` advanced."""
        return self.config.clock() + self.clock_offset

    def refund_starts_pending(self) -> bool:
        """Whether the next refund starts ``pending`` (the profile's ``refund_pending``)."""
        return self.dice.roll("refund_pending", self.profile.refund_pending)

    @property
    def profile(self) -> FaultProfile:
        """The faults in force."""
        return self._profile

    @profile.setter
    def profile(self, profile: FaultProfile) -> None:
        self._profile, self.strikes = profile, StrikeLimit()

    def call_faults(self, *, mutating: bool) -> CallFaults:
        """Decide the faults of the next API call (none once the profile's ``limit`` of
        struck calls is used up)."""
        return self.strikes.apply(
            self.dice.call(self.profile, mutating=mutating), self.profile.limit
        )

    def next_scripted(self, path: str) -> ScriptedAnswer | None:
        """The scripted answer for this call, if one is queued (it is used up)."""
        if not self.scripted:
            return None
        answer = self.scripted.pop(0)
        self.fault("scripted", f"{path} {answer.status} {answer.type}")
        return answer

    def start_outage(self, seconds: float) -> None:
        """Answer every API call with 503 for ``seconds`` from now."""
        self.outage_until = time.monotonic() + seconds

    def fault(self, kind: str, detail: str) -> None:
        """Record one injected fault."""
        self.ledger.record_fault(kind, detail)

    async def before(self, faults: CallFaults, path: str) -> JSONResponse | None:
        """Apply the faults that strike before the request is handled."""
        if faults.latency_ms:
            self.fault("latency", f"{path} {faults.latency_ms}ms")
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.outage and time.monotonic() >= self.outage_until:
            self.start_outage(self.profile.outage_s)
        if time.monotonic() < self.outage_until:
            self.fault("outage", path)
            return error_response(503, "api_error", "The sandbox is in an outage window.")
        if faults.rate_limit:
            self.fault("rate_limit", path)
            return JSONResponse(objects.rate_limited(), status_code=429)
        if faults.error_before:
            self.fault("error_before", path)
            return error_response(500, "api_error", "Internal error (sandbox fault, no effect).")
        return None

    async def write(
        self,
        key: str | None,
        path: str,
        params: Obj,
        op: Callable[[Obj], Outcome],
        *,
        saved_error: Outcome | None = None,
        effect: bool = True,
    ) -> tuple[Outcome, bool]:
        """Run a write once per Idempotency-Key; returns the outcome and whether it replayed.

        A key whose first request is still running is answered 409 (nothing is saved). With
        ``saved_error`` the endpoint fails after running ``op`` (or before it, without
        ``effect``) and that error, not the real result, is what the key keeps.
        """
        if key is not None and key in self.keys_in_use:
            self.fault("idempotency_key_in_use", path)
            body = objects.error("idempotency_error", KEY_IN_USE, code="idempotency_key_in_use")
            return Outcome(409, body), False
        if key is not None:
            self.keys_in_use.add(key)
        try:
            await self.writes_open.wait()
            async with self.write_lock:
                outcome, replayed = self._write_once(key, path, params, op, saved_error, effect)
        finally:
            if key is not None:
                self.keys_in_use.discard(key)
        if not replayed:
            self.webhooks.enqueue(outcome.events)
        return outcome, replayed

    def _write_once(
        self,
        key: str | None,
        path: str,
        params: Obj,
        op: Callable[[Obj], Outcome],
        saved_error: Outcome | None,
        effect: bool,
    ) -> tuple[Outcome, bool]:
        wanted = fingerprint(path, params)
        stored = self.ledger.replay(key, saved_after=self.now() - KEY_TTL_S) if key else None
        if stored is not None:
            bound, status, body = stored
            if bound != wanted:  # not a replay: a refusal
                reused = objects.error("idempotency_error", KEY_REUSED.format(key=key))
                return Outcome(400, reused), False
            return Outcome(status, body), True
        with self.ledger.transaction():
            outcome = op(params) if effect or saved_error is None else Outcome(200, {})
            for evt in outcome.events:
                self.ledger.add_event(evt)
            answer = outcome
            if saved_error is not None and outcome.status != 400:
                self.fault("error_saved", f"{path} {saved_error.status}")
                answer = Outcome(saved_error.status, saved_error.body, outcome.events)
            if key and answer.status != 400:
                self.ledger.remember(key, wanted, answer.status, answer.body)
        return answer, False

    @staticmethod
    def replay_headers(outcome: Outcome) -> dict[str, str]:
        """Headers of a replayed result: a replayed 5xx will never change, so do not retry."""
        headers = {"Idempotent-Replayed": "true"}
        if outcome.status >= 500:
            headers[SHOULD_RETRY] = "false"
        return headers

    async def hold(self, request: Request) -> None:
        """Keep the answer back for ``hold_s`` or until the client hangs up."""
        await hold(request, self.profile.hold_s)
