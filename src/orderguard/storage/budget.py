"""The PostgreSQL connection budget of a deployment: what its processes' pools may open at
their busiest, against what the server accepts.

Every orderguard process opens one pool of at most ``ORDERGUARD_DB_POOL_SIZE`` connections
(``storage/postgres.py``). How many processes a deployment runs is what the operator knows:
``serve`` runs one process (API and worker together), ``serve --processes N`` runs N API
processes and a worker process of its own (none with ``--no-worker``), ``worker`` and
``outbox relay`` one each. Short commands (``migrate``, ``sweep``, ``doctor``, the demo's
audit) take a few more for a moment: the spare.

The server accepts ``max_connections`` minus the connections it keeps for superusers
(``superuser_reserved_connections``, and ``reserved_connections`` from PostgreSQL 16 on).
A pool that asks for more than that is refused (``too many clients already``) exactly when
the deployment is busiest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from orderguard.storage.database import Database, transaction

#: Connections kept aside for short commands run beside the deployment (``migrate``,
#: ``sweep``, ``doctor``, an operator's ``psql``).
SPARE = 5


@dataclass(frozen=True)
class Deployment:
    """The orderguard processes of one deployment on one PostgreSQL."""

    #: Hosts running ``orderguard serve``.
    api_hosts: int = 1
    #: ``--processes`` of each of them.
    processes: int = 1
    #: Whether ``serve`` runs its worker (not ``--no-worker``).
    worker_beside_api: bool = True
    #: Hosts running ``orderguard worker``.
    worker_hosts: int = 0
    #: ``orderguard outbox relay`` processes.
    relays: int = 0
    #: ``ORDERGUARD_DB_POOL_SIZE``, the same on every host.
    pool_size: int = 10
    spare: int = SPARE

    def sized(self, pool_size: int) -> Deployment:
        """The same processes with pools of ``pool_size`` connections."""
        return replace(self, pool_size=pool_size)

    @property
    def pools_per_api_host(self) -> int:
        """Pools one ``serve`` opens: one process holds API and worker; under a supervisor
        each API process has its own pool, and so has the worker process."""
        if self.processes <= 1:
            return 1
        return self.processes + (1 if self.worker_beside_api else 0)

    @property
    def pools(self) -> int:
        """Every pool of the deployment."""
        return self.api_hosts * self.pools_per_api_host + self.worker_hosts + self.relays

    @property
    def needed(self) -> int:
        """Connections the deployment may hold at its busiest."""
        return self.pools * self.pool_size + self.spare

    def formula(self) -> str:
        """How :attr:`needed` is made, term by term, with the numbers."""
        return (
            f"({self.api_hosts} API hosts x {self.pools_per_api_host} pools + "
            f"{self.worker_hosts} worker hosts + {self.relays} relays) x "
            f"{self.pool_size} connections + {self.spare} spare = {self.needed}"
        )


@dataclass(frozen=True)
class ServerRoom:
    """What a PostgreSQL server accepts, read from the server itself."""

    max_connections: int
    #: Kept for superusers (and, from PostgreSQL 16, ``pg_use_reserved_connections``).
    reserved: int
    #: Client connections open now, from anyone (this check's own included).
    in_use: int

    @property
    def available(self) -> int:
        """Connections ordinary roles may open in all."""
        return self.max_connections - self.reserved


class Verdict(Enum):
    """How a host's pools fit on a server."""

    #: Beside every connection open now.
    FITS = "fits"
    #: Alone, but not beside the connections other processes hold now.
    CROWDED = "crowded"
    #: Not even alone: more than the server accepts in all.
    EXCEEDS = "exceeds"


def verdict(here: Deployment, room: ServerRoom, *, own: int = 1) -> Verdict:
    """How the pools of ``here`` fit in ``room``, which was read over ``own`` connections
    of the reader's (closed since: not counted among the others)."""
    if here.needed > room.available:
        return Verdict.EXCEEDS
    if here.needed + room.in_use - own > room.available:
        return Verdict.CROWDED
    return Verdict.FITS


#: Share of what the server accepts that, once open, is worth a look before it runs out.
NEARLY_FULL = 0.8


def nearly_full(room: ServerRoom, *, share: float = NEARLY_FULL) -> bool:
    """Whether the connections open now take ``share`` or more of what the server
    accepts: one more host, or one busy moment, and pools are refused."""
    return room.in_use >= share * room.available


#: The server's limits and its open client connections, in one round trip.
_ROOM = (
    "SELECT current_setting('max_connections')::int AS max_connections, "
    "current_setting('superuser_reserved_connections')::int "
    "+ COALESCE(current_setting('reserved_connections', true), '0')::int AS reserved, "
    "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int "
    "AS in_use"
)


async def server_room(db: Database) -> ServerRoom | None:
    """What the server of ``db`` accepts; None on SQLite (one file, no connection limit)."""
    if db.dialect != "postgresql":
        return None
    async with transaction(db, write=False) as conn:
        row = await conn.fetchone(_ROOM, {})
    assert row is not None
    return ServerRoom(int(row["max_connections"]), int(row["reserved"]), int(row["in_use"]))
