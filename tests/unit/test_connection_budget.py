"""The connection budget's arithmetic (``storage/budget.py``): how many pools each kind of
process opens, and what a deployment of several hosts may hold at its busiest."""

from __future__ import annotations

from orderguard.storage.budget import Deployment, ServerRoom, Verdict, nearly_full, verdict


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


def test_a_host_fits_beside_the_connections_open_now_not_counting_the_readers_own() -> None:
    here = Deployment(processes=2, pool_size=10, spare=0)  # 3 pools, 30 connections
    # 97 accepted, 68 open of which 1 is the reader's: 67 others + 30 = 97
    assert verdict(here, ServerRoom(100, 3, in_use=68)) is Verdict.FITS


def test_a_host_that_fits_alone_but_not_beside_the_others_is_crowded() -> None:
    here = Deployment(processes=2, pool_size=10, spare=0)
    assert verdict(here, ServerRoom(100, 3, in_use=69)) is Verdict.CROWDED


def test_a_host_whose_pools_alone_pass_the_servers_limit_exceeds_it() -> None:
    assert verdict(Deployment(processes=2, pool_size=33, spare=0), ServerRoom(100, 3, 1)) is (
        Verdict.EXCEEDS
    )
    assert verdict(Deployment(processes=2, pool_size=32, spare=0), ServerRoom(100, 3, 1)) is (
        Verdict.FITS
    )


def test_a_server_is_nearly_full_from_four_fifths_of_what_it_accepts() -> None:
    assert not nearly_full(ServerRoom(100, 0, in_use=79))
    assert nearly_full(ServerRoom(100, 0, in_use=80))
    assert nearly_full(ServerRoom(100, 20, in_use=64))  # 80 % of the 80 accepted
