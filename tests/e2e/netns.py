"""A small private network on this machine: one network namespace per part (database, API,
worker, provider, shopper), each joined by a veth pair to a bridge in a hub namespace, and
network faults injected between them with nftables.

Nothing is routed outside: the bridge has no uplink; the only other door is one veth from
the test's own (root) namespace to the bridge, so the test can read the database and the
provider's ledger for its audit. Faults are nftables rules in the namespace of one end of a
link, matching the other end's address, so the root door never meets them; every rule
counts what it dropped, and those kernel counters are the report's "faults injected" (the
harness never counts them itself).

Packet reordering is made without ``netem`` (the kernels of some virtual machines are
built without it; this one is): a link's egress gets an HTB queueing discipline with two
classes, a fast default one and a slow one (a few hundred kbit/s, one packet's burst), and
an nftables rule sends a random share of the packets to the slow class by setting their
priority. The packets held there leave late and are overtaken by the packets sent after
them on the fast class: real reordering on the wire, which the receivers' TCP stacks count
(``TcpExtTCPOFOQueue``: segments that arrived ahead of a gap; :meth:`Network.tcp_counters`),
and which the harness reports from those kernel counters and the slow class's own.

Needs root, ``ip`` and ``tc`` (iproute2) and ``nft`` (nftables).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Namespaces and links are named from this prefix and a per-network tag.
PREFIX = "ogn"
#: The /16 the networks' /24s are carved from (private; nothing routes it anywhere).
NET16 = "10.213"
_LOCK = Path("/tmp/orderguard-netns.lock")
#: The TCP counters of a namespace that show reordering: segments a receiver queued because
#: they arrived ahead of a gap, and reorderings a sender detected (by SACK, timestamps, or
#: duplicate acknowledgements without SACK).
REORDER_COUNTERS = (
    "TCPOFOQueue", "TCPSACKReorder", "TCPTSReorder", "TCPRenoReorder", "TCPFACKReorder",
)  # fmt: skip


class NetworkUnavailable(Exception):
    """This machine cannot make the network: not root, or ``ip`` / ``nft`` missing, or the
    kernel refused."""


def missing_tools() -> str | None:
    """Why a network cannot be made here, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc", "nft"):
        if shutil.which(tool) is None:
            package = {"ip": "iproute2", "tc": "iproute2", "nft": "nftables"}[tool]
            return f"{tool} not found (apt-get install {package})"
    return None


def _sh(*argv: str, check: bool = True, input: str | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=30)
    if check and done.returncode != 0:
        raise NetworkUnavailable(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout}")
    return done.stdout


@dataclass
class Node:
    """One part of the system in its own namespace."""

    role: str
    ns: str
    ip: str


@dataclass
class Fault:
    """nftables rules in ``node``'s namespace (one table), dropping what they match."""

    kind: str
    node: Node
    table: str
    detail: str
    active: bool = True
    #: Packets the rules dropped, read from the kernel when the fault is healed.
    dropped: int = 0
    #: Packets held back so that later ones overtook them (``reorder``), read from the
    #: slow class's counters when the fault is healed.
    held: int = 0


@dataclass
class Network:
    """The namespaces of ``roles``, made by :meth:`up` and removed by :meth:`down`."""

    roles: Sequence[str]
    nodes: dict[str, Node] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    hub: str = ""
    root_ip: str = ""
    _tag: str = ""
    _root_link: str = ""

    def up(self) -> Network:
        why = missing_tools()
        if why:
            raise NetworkUnavailable(why)
        _LOCK.touch(exist_ok=True)
        with _LOCK.open() as lock:  # two runs at once must not pick the same subnet
            fcntl.flock(lock, fcntl.LOCK_EX)
            subnet = self._free_subnet()
            self._tag = f"{os.getpid() % 0xFFFF:04x}{subnet:02x}"
            try:
                self._build(subnet)
            except Exception:
                self.down()
                raise
        return self

    def _free_subnet(self) -> int:
        routes = _sh("ip", "-4", "route", "show")
        for third in range(256):
            if f"{NET16}.{third}.0/24" not in routes:
                return third
        raise NetworkUnavailable(f"no free /24 left in {NET16}.0.0/16")

    def _build(self, subnet: int) -> None:
        base = f"{NET16}.{subnet}"
        self.hub = f"{PREFIX}{self._tag}-hub"
        _sh("ip", "netns", "add", self.hub)
        _sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        for index, role in enumerate(self.roles, start=1):
            node = Node(role, f"{PREFIX}{self._tag}-{role}", f"{base}.{index}")
            _sh("ip", "netns", "add", node.ns)
            self._wire(f"h{self._tag}{index}", node.ns, "eth0")
            _sh("ip", "-n", node.ns, "addr", "add", f"{node.ip}/24", "dev", "eth0")
            _sh("ip", "-n", node.ns, "link", "set", "lo", "up")
            self.nodes[role] = node
        # the test's own door: root namespace <-> bridge
        self._root_link = f"r{self._tag}"
        self.root_ip = f"{base}.254"
        _sh("ip", "link", "add", self._root_link, "type", "veth", "peer", "name", "hr" + self._tag)
        _sh("ip", "link", "set", "hr" + self._tag, "netns", self.hub)
        _sh("ip", "-n", self.hub, "link", "set", "hr" + self._tag, "master", "br0", "up")
        _sh("ip", "addr", "add", f"{self.root_ip}/24", "dev", self._root_link)
        _sh("ip", "link", "set", self._root_link, "up")

    def _wire(self, hub_end: str, ns: str, name: str) -> None:
        """A veth pair from the bridge to ``ns``, where its end is called ``name``."""
        peer = "n" + hub_end[1:]
        _sh("ip", "link", "add", hub_end, "type", "veth", "peer", "name", peer)
        _sh("ip", "link", "set", hub_end, "netns", self.hub)
        _sh("ip", "-n", self.hub, "link", "set", hub_end, "master", "br0", "up")
        _sh("ip", "link", "set", peer, "netns", ns)
        _sh("ip", "-n", ns, "link", "set", peer, "name", name)
        _sh("ip", "-n", ns, "link", "set", name, "up")

    def down(self) -> None:
        """Remove every namespace and link (processes must be stopped first)."""
        for node in self.nodes.values():
            _sh("ip", "netns", "del", node.ns, check=False)
        if self.hub:
            _sh("ip", "netns", "del", self.hub, check=False)
        if self._root_link:
            _sh("ip", "link", "del", self._root_link, check=False)
        self.nodes.clear()

    # -- running things in a namespace -------------------------------------------------

    def command(self, role: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside ``role``'s namespace."""
        return ["ip", "netns", "exec", self.nodes[role].ns, *argv]

    def ip(self, role: str) -> str:
        return self.nodes[role].ip

    # -- faults --------------------------------------------------------------------------

    def _install(
        self, kind: str, role: str, detail: str, *, into: Iterable[str], out: Iterable[str] = ()
    ) -> Fault:
        """One table in ``role``'s namespace: rules ``into`` it and ``out`` of it."""
        node = self.nodes[role]
        table = f"og_{kind}_{len(self.faults)}"
        lines = [f"table inet {table} {{"]
        for hook, rules in (("input", into), ("output", out)):
            lines.append(f"  chain {hook} {{ type filter hook {hook} priority -10; policy accept;")
            lines += [f"    {rule}" for rule in rules]
            lines.append("  }")
        lines.append("}")
        _sh("ip", "netns", "exec", node.ns, "nft", "-f", "-", input="\n".join(lines) + "\n")
        fault = Fault(kind, node, table, detail)
        self.faults.append(fault)
        return fault

    def partition(self, a: str, b: str) -> Fault:
        """Nothing passes between ``a`` and ``b``, either way (a cut cable)."""
        peer = self.ip(b)
        return self._install(
            "partition",
            a,
            f"{a} <-/-> {b}",
            into=[f"ip saddr {peer} counter drop"],
            out=[f"ip daddr {peer} counter drop"],
        )

    def loss(self, role: str, peers: Sequence[str], percent: int) -> Fault:
        """``percent`` % of the packets between ``role`` and each of ``peers`` lost, each way."""
        addresses = "{ " + ", ".join(self.ip(p) for p in peers) + " }"
        rule = f"numgen random mod 100 < {percent} counter drop"
        return self._install(
            "loss",
            role,
            f"{percent}% loss {role} <-> {', '.join(peers)}",
            into=[f"ip saddr {addresses} {rule}"],
            out=[f"ip daddr {addresses} {rule}"],
        )

    def drop_answers(self, server: str, client: str, port: int) -> Fault:
        """What ``server`` sends back from ``port`` to ``client`` is lost; requests still
        arrive (the shopper's connection drops after the request reached the server)."""
        peer = self.ip(client)
        return self._install(
            "answers",
            server,
            f"{server}:{port} -/-> {client} (requests still arrive)",
            into=[],
            out=[f"ip daddr {peer} tcp sport {port} counter drop"],
        )

    def reorder(self, role: str, percent: int, slow_kbit: int = 1000) -> Fault:
        """``percent`` % of what ``role`` sends, drawn at random, held in a slow queue
        (``slow_kbit``, one packet's burst) while the rest goes on: later packets overtake
        the held ones (see the module)."""
        node = self.nodes[role]
        tc = ("ip", "netns", "exec", node.ns, "tc")
        _sh(*tc, "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "10")
        _sh(*tc, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb",
            "rate", "10gbit", "quantum", "60000")  # fmt: skip
        _sh(*tc, "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:20", "htb",
            "rate", f"{slow_kbit}kbit", "ceil", f"{slow_kbit}kbit", "burst", "1600",
            "cburst", "1600", "quantum", "1600")  # fmt: skip
        table = f"og_reorder_{len(self.faults)}"
        rules = (
            f"table inet {table} {{\n  chain postrouting {{ type filter hook postrouting "
            f"priority 0; policy accept;\n    numgen random mod 100 < {percent} "
            "meta priority set 1:20 counter\n  }\n}\n"
        )
        try:
            _sh("ip", "netns", "exec", node.ns, "nft", "-f", "-", input=rules)
        except NetworkUnavailable:
            _sh(*tc, "qdisc", "del", "dev", "eth0", "root", check=False)
            raise
        detail = f"{percent}% of {role}'s packets held at {slow_kbit} kbit/s, overtaken"
        fault = Fault("reorder", node, table, detail)
        self.faults.append(fault)
        return fault

    def tcp_counters(self, role: str) -> dict[str, int]:
        """The ``TcpExt`` counters of ``role``'s namespace (its own TCP stack's), from the
        kernel."""
        text = _sh("ip", "netns", "exec", self.nodes[role].ns, "cat", "/proc/net/netstat")
        lines = text.splitlines()
        for names, values in zip(lines[::2], lines[1::2], strict=False):
            if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
                return dict(zip(names.split()[1:], map(int, values.split()[1:]), strict=True))
        raise NetworkUnavailable(f"no TcpExt counters in {role}'s /proc/net/netstat")

    def heal(self, fault: Fault) -> int:
        """Remove ``fault``; the packets it dropped (``reorder``: its slow queue's drops,
        which should be none)."""
        if not fault.active:
            return fault.dropped
        ns = fault.node.ns
        if fault.kind == "reorder":
            # nothing more is held back; what is held leaves before the queue is removed
            # (removing it would drop them: a loss this fault is not about)
            _sh("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", fault.table)
            deadline = time.monotonic() + 10
            while True:
                fault.held, fault.dropped, queued = _slow_class(ns)
                if queued == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            _sh("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root")
        else:
            fault.dropped = _dropped(ns, fault.table)
            _sh("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", fault.table)
        fault.active = False
        return fault.dropped

    def heal_all(self) -> None:
        for fault in self.faults:
            self.heal(fault)

    def dropped_by_kind(self) -> Mapping[str, int]:
        totals: dict[str, int] = {}
        for fault in self.faults:
            totals[fault.kind] = totals.get(fault.kind, 0) + fault.dropped
        return totals


def _dropped(ns: str, table: str) -> int:
    """Packets counted by the ``counter`` statements of ``table`` (the kernel's own count)."""
    listing = json.loads(
        _sh("ip", "netns", "exec", ns, "nft", "-j", "list", "table", "inet", table)
    )
    total = 0
    for item in listing.get("nftables", []):
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                total += int(expr["counter"]["packets"])
    return total


def _slow_class(ns: str) -> tuple[int, int, int]:
    """The reordering fault's slow class (1:20): packets it sent (the ones held back; the
    kernel's count, segments after GSO), packets it dropped (its queue full: a loss this
    fault must not cause) and packets still queued in it."""
    text = _sh("ip", "netns", "exec", ns, "tc", "-s", "class", "show", "dev", "eth0")
    block = text.split("class htb 1:20 ", 1)
    if len(block) < 2:
        raise NetworkUnavailable(f"no slow class on eth0 in {ns}")
    sent = re.search(r"Sent \d+ bytes (\d+) pkt \(dropped (\d+)", block[1])
    backlog = re.search(r"backlog \d+b (\d+)p", block[1])
    if sent is None or backlog is None:
        raise NetworkUnavailable(f"unreadable class statistics in {ns}: {block[1][:200]}")
    return int(sent.group(1)), int(sent.group(2)), int(backlog.group(1))
