"""The connection budget's arithmetic (``storage/budget.py``): how many pools each kind of
process opens, and what a deployment of several hosts may hold at its busiest."""

from __future__ import annotations

from orderguard.storage.budget import Deployment, ServerRoom


def test_one_serve_process_holds_api_and_worker_in_one_pool() -> None:
    assert Deployment(processes=1).pools_per_api_host == 1
    assert Deployment(processes=1, worker_beside_api=False).pools_per_api_host == 1


def test_under_a_supervisor_each_api_process_and_the_worker_have_a_pool() -> None:
    assert Deployment(processes=4).pools_per_api_host == 5
    assert Deployment(processes=4, worker_beside_api=False).pools_per_api_host == 4


def test_two_api_hosts_two_worker_hosts_and_a_relay_add_up_with_the_spare() -> None:
    deployment = Deployment(
        api_hosts=2,
        processes=2,
        worker_beside_api=False,
        worker_hosts=2,
        relays=1,
        pool_size=10,
        spare=5,
    )
    # (2 x 2 + 2 + 1) pools x 10 + 5
    assert deployment.pools == 7
    assert deployment.needed == 75
    assert deployment.formula() == (
        "(2 API hosts x 2 pools + 2 worker hosts + 1 relays) x 10 connections + 5 spare = 75"
    )


def test_the_pool_size_multiplies_every_pool_but_not_the_spare() -> None:
    assert Deployment(api_hosts=3, processes=2, pool_size=20, spare=5).sized(5).needed == 50


def test_what_the_server_accepts_leaves_out_its_reserved_connections() -> None:
    assert ServerRoom(max_connections=100, reserved=3, in_use=40).available == 97
