"""The sandbox's running state: ledger, engine, fault dice, outage window, webhook dispatcher.

Faults model the network edge in front of a healthy Stripe: a "500 after the charge" or a
"timeout after the charge" loses the *answer*, not the stored idempotent result, so a retry
with the same Idempotency-Key replays the real outcome.
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

from orderguard.providers.sandbox import objects
from orderguard.providers.sandbox.engine import Engine, Outcome
from orderguard.providers.sandbox.faults import NO_CALL_FAULTS, CallFaults, FaultDice, FaultProfile
from orderguard.providers.sandbox.ledger import Ledger, Obj
from orderguard.providers.sandbox.scripted import ScriptedAnswer
from orderguard.providers.sandbox.webhooks import WebhookDispatcher


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


def error_response(status: int, kind: str, message: str) -> JSONResponse:
    """A Stripe error object as a response."""
    return JSONResponse(objects.error(kind, message), status_code=status)


def fingerprint(path: str, params: Obj) -> str:
    """What an idempotency key is bound to: the route and its parameters."""
    return hashlib.sha256(json.dumps([path, params], sort_keys=True).encode()).hexdigest()


class Sandbox:
    """Everything one running sandbox app shares between requests."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.ledger = Ledger(config.db_path)
        self.engine = Engine(self.ledger, clock=config.clock)
        self.dice = FaultDice(config.seed)
        self._profile = config.faults
        #: API calls answered under the current profile (for ``FaultProfile.limit``).
        self.calls = 0
        self.outage_until = 0.0
        #: Answers the next API calls give, in order (set through ``/_sandbox/answers``).
        self.scripted: list[ScriptedAnswer] = []
        self.write_lock = asyncio.Lock()
        self.webhooks = WebhookDispatcher(
            self.ledger,
            url=config.webhook_url,
            secret=config.webhook_secret,
            dice=self.dice,
            profile=lambda: self.profile,
        )

    @property
    def profile(self) -> FaultProfile:
        """The faults in force."""
        return self._profile

    @profile.setter
    def profile(self, profile: FaultProfile) -> None:
        self._profile, self.calls = profile, 0

    def call_faults(self, *, mutating: bool) -> CallFaults:
        """Decide the faults of the next API call (none past the profile's ``limit``)."""
        self.calls += 1
        faults = self.dice.call(self.profile, mutating=mutating)
        if self.profile.limit and self.calls > self.profile.limit:
            return NO_CALL_FAULTS
        return faults

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
        self, key: str | None, path: str, params: Obj, op: Callable[[Obj], Outcome]
    ) -> tuple[Outcome, bool]:
        """Run a write once per Idempotency-Key; returns the outcome and whether it replayed."""
        async with self.write_lock:
            stored = self.ledger.replay(key) if key else None
            if stored is not None:
                return self._replayed(stored, fingerprint(path, params)), True
            with self.ledger.transaction():
                outcome = op(params)
                for evt in outcome.events:
                    self.ledger.add_event(evt)
                if key and outcome.status != 400:
                    self.ledger.remember(
                        key, fingerprint(path, params), outcome.status, outcome.body
                    )
        self.webhooks.enqueue(outcome.events)
        return outcome, False

    def _replayed(self, stored: tuple[str, int, Obj], wanted: str) -> Outcome:
        bound, status, body = stored
        if bound != wanted:
            message = (
                "Keys for idempotent requests can only be used with the same parameters "
                "they were first used with."
            )
            return Outcome(400, objects.error("idempotency_error", message))
        return Outcome(status, body)

    async def hold(self, request: Request) -> None:
        """Keep the answer back for ``hold_s`` or until the client hangs up."""

        async def hang_up() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        try:
            await asyncio.wait_for(hang_up(), self.profile.hold_s)
        except TimeoutError:
            pass
