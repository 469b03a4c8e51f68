"""The storm across real network faults (see ``tests/e2e/netchaos.py``), one scenario per
test on a short schedule: each ends with every invariant of the demo's audit holding
against the database and the provider's ledger, the kernel having really dropped packets
on the faulted link, and the trouble visible where it should be (shoppers retrying with the
same key, the janitor asking the provider). ``make chaos`` runs them at length."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.conftest import service_missing
from tests.e2e.netchaos import SCENARIOS, Outcome, run_scenario
from tests.e2e.netns import missing_tools

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CHECKOUTS = 100


def _run(name: str, tmp_path: Path, *, drops: bool = True, checkouts: int = CHECKOUTS) -> Outcome:
    why = missing_tools()
    if why:
        service_missing("network namespaces", why)
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1_000_000)))
    print(f"\nnetwork chaos {name}, seed {seed} (replay with CHAOS_SEED={seed})")
    outcome = run_scenario(SCENARIOS[name], seed=seed, checkouts=checkouts, work=tmp_path)
    report = outcome.report
    assert report is not None
    print(
        f"window {outcome.window_s}; dropped {outcome.dropped}; held {outcome.held}; "
        f"tcp {outcome.tcp}; recoveries {report.recoveries};"
        f" troubles {dict(report.client_troubles)}; states {report.final_states}"
    )
    assert not outcome.broken, f"invariants broken (seed {seed}): {outcome.broken}"
    assert outcome.window_s is not None, "the fault was never injected: the storm ended first"
    if drops:
        assert outcome.dropped > 0, "the kernel dropped nothing: the fault was not on the path"
    assert report.acknowledged >= checkouts * 0.8, "most shoppers got their order through"
    return outcome


def test_packet_loss_on_every_link(tmp_path: Path) -> None:
    outcome = _run("loss", tmp_path)
    assert outcome.window_s is not None and outcome.window_s[1] > outcome.window_s[0]


def test_a_partition_between_the_api_and_the_database(tmp_path: Path) -> None:
    outcome = _run("api_db_partition", tmp_path)
    assert outcome.report is not None
    assert sum(outcome.report.client_troubles.values()) > 0, "no shopper met the partition"


def test_a_partition_between_the_api_and_the_provider_during_charges(tmp_path: Path) -> None:
    outcome = _run("api_provider_partition", tmp_path)
    assert outcome.report is not None
    # charges cut mid-way are settled by asking the provider, not guessed
    assert outcome.report.recoveries["janitor"] > 0


def test_answers_lost_after_the_request_reached_the_server(tmp_path: Path) -> None:
    outcome = _run("answers_lost", tmp_path)
    assert outcome.report is not None
    # the shoppers asked again with the same key and were answered with the same order
    assert outcome.report.recoveries["retry (same Idempotency-Key)"] > 0


def test_latency_and_jitter_on_every_exchange(tmp_path: Path) -> None:
    # every exchange is slow here: fewer checkouts keep the test short
    outcome = _run("latency", tmp_path, drops=False, checkouts=40)
    relay = outcome.relay
    # every part spoke through the relay (shoppers, API, worker, webhooks: many connections)
    assert relay["connections"] >= 10 and relay["chunks"] > 40, relay
    assert 25 <= relay["mean_delay_ms"] <= 55, relay  # 40 +- 30 ms, drawn uniformly


def test_packets_reordered_on_every_link(tmp_path: Path) -> None:
    """Reordering without netem: a share of each part's packets held in a slow queue and
    overtaken. The receivers' TCP stacks must have seen segments arrive out of order (their
    own counters, not the harness's), and every invariant holds."""
    outcome = _run("reordering", tmp_path, drops=False)
    # nothing lost (no rule drops, and the slow queue never overflowed): the segments that
    # arrived out of order can only have been overtaken
    assert outcome.dropped == 0, "the slow queue dropped packets: this would be loss"
    assert outcome.held > 0, "no packet was held back: the fault was not on the path"
    assert outcome.tcp["TCPOFOQueue"] > 0, f"no segment arrived out of order: {outcome.tcp}"
    # and the senders saw holes filled late by the original packet, not by a resend
    detected = outcome.tcp["TCPSACKReorder"] + outcome.tcp["TCPTSReorder"]
    assert detected > 0, f"no sender detected a reordering: {outcome.tcp}"
