"""Which merchant endpoint URLs may receive webhooks (issue 15): public http(s) only."""

from __future__ import annotations

import re

import pytest

from orderguard.outbox.egress import EgressRefused, check_endpoint_url, pinned, target_of

#: URLs naming a non-public address in one of its many spellings, and why each is refused.
NOT_PUBLIC = [
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("http://[::1]:22/", "loopback"),
    ("http://127.0.0.1:22", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://0177.0.0.1/", "not a URL"),  # httpx reads no octal: it could not be sent
    ("http://127.1/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:a9fe:a9fe]/", "cloud metadata"),
    ("http://[64:ff9b::a9fe:a9fe]/", "cloud metadata"),
    ("http://[2002:a00:1::]/", "private"),
    ("https://10.1.2.3/", "private"),
    ("https://192.168.1.1/", "private"),
    ("https://172.16.0.1/", "private"),
    ("http://[fd00:ec2::254]/", "cloud metadata"),
    ("http://[fe80::1]/", "link-local"),
    ("http://224.0.0.251/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://0.0.0.0:8080/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://100.64.0.1/", "not public"),
]


async def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"{host} is an address; nothing should be resolved")


def resolving_to(*addresses: str):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(("url", "why"), NOT_PUBLIC)
async def test_a_url_naming_a_non_public_address_is_refused(url: str, why: str) -> None:
    with pytest.raises(EgressRefused) as refused:
        await check_endpoint_url(url, allow_private=False, resolver=no_dns)
    assert why in str(refused.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:22", "http://[::1]:8080/hook"])
async def test_allow_private_lets_a_local_receiver_through(url: str) -> None:
    await check_endpoint_url(url, allow_private=True, resolver=no_dns)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://user:pw@example.com", "user name or password"),
        ("https://token@example.com/hook", "user name or password"),
        ("ftp://example.com/", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("gopher://127.0.0.1:25/", "only http:// and https://"),
        ("https:///path-only", "no host"),
    ],
)
async def test_userinfo_and_other_schemes_are_refused_even_when_private_is_allowed(
    url: str, said: str
) -> None:
    with pytest.raises(EgressRefused, match=said):
        await check_endpoint_url(url, allow_private=True, resolver=no_dns)


async def test_a_name_is_refused_if_any_address_it_resolves_to_is_private() -> None:
    dns = resolving_to("93.184.216.34", "10.0.0.7")
    with pytest.raises(EgressRefused, match=re.escape("resolves to 10.0.0.7 (private)")):
        await check_endpoint_url("https://hooks.merchant.test/", allow_private=False, resolver=dns)


async def test_a_name_that_does_not_resolve_is_refused_with_the_reason() -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(EgressRefused, match=re.escape("cannot resolve hooks.merchant.test")):
        await check_endpoint_url(
            "https://hooks.merchant.test/", allow_private=False, resolver=nxdomain
        )


async def test_a_name_resolving_to_public_addresses_is_accepted() -> None:
    dns = resolving_to("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    await check_endpoint_url("https://hooks.merchant.test/h", allow_private=False, resolver=dns)


def test_the_request_goes_to_the_checked_address_and_names_the_host() -> None:
    import ipaddress

    target = target_of("https://hooks.merchant.test:8443/h?x=1")
    request = pinned(target, ipaddress.ip_address("93.184.216.34"))
    assert str(request.url) == "https://93.184.216.34:8443/h?x=1"
    assert request.headers == {"host": "hooks.merchant.test:8443"}
    assert request.extensions == {"sni_hostname": "hooks.merchant.test"}
    six = pinned(target_of("http://hooks.merchant.test/h"), ipaddress.ip_address("2606:2800::1"))
    assert str(six.url) == "http://[2606:2800::1]/h"
    assert six.headers == {"host": "hooks.merchant.test"}
