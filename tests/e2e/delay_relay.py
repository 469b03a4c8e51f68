"""A TCP relay that delays what crosses it: latency and jitter for kernels without ``netem``.

    python -m tests.e2e.delay_relay --delay-ms 40 --jitter-ms 30 --seed 7 \\
        --route 10.213.0.6:8000=10.213.0.3:8000 --route 10.213.0.6:5432=10.213.0.1:5432 \\
        --stats relay.json

Each ``--route LISTEN=UPSTREAM`` accepts connections on LISTEN and opens one to UPSTREAM per
connection; every chunk read from either side is written to the other ``delay ± jitter`` ms
later (drawn from the seed), never before the chunk read before it, so a stream stays in
order as TCP keeps it (packet reordering under TCP is invisible to the programs above it;
``Network.reorder`` makes it on the wire). Run inside a network namespace of its own,
between the parts, it makes every exchange across it slow and uneven over real sockets. On
SIGTERM it writes what it did to ``--stats`` (JSON): connections, chunks and bytes
relayed, the mean delay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass
class Stats:
    connections: int = 0
    chunks: int = 0
    bytes: int = 0
    delay_ms_total: float = 0.0

    @property
    def mean_delay_ms(self) -> float:
        return self.delay_ms_total / self.chunks if self.chunks else 0.0


class Relay:
    def __init__(self, delay_ms: float, jitter_ms: float, seed: int) -> None:
        self.delay_s, self.jitter_s = delay_ms / 1000, jitter_ms / 1000
        self.rng = random.Random(seed)
        self.stats = Stats()

    def _lag(self) -> float:
        return max(0.0, self.delay_s + self.rng.uniform(-self.jitter_s, self.jitter_s))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy ``reader`` to ``writer``, each chunk delayed, in order; EOF passed on."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                at, data = await queue.get()
                wait = at - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.create_task(send())
        release = 0.0
        try:
            while True:
                data = await reader.read(65536)
                lag = self._lag()
                release = max(release, loop.time() + lag)
                queue.put_nowait((release, data))
                if not data:
                    break
                self.stats.chunks += 1
                self.stats.bytes += len(data)
                self.stats.delay_ms_total += lag * 1000
        except (ConnectionError, OSError):
            queue.put_nowait((0.0, b""))
        try:
            await sender
        except (ConnectionError, OSError):
            pass

    async def handle(
        self, upstream: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.stats.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*upstream)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def _serve(args: argparse.Namespace) -> Relay:
    relay = Relay(args.delay_ms, args.jitter_ms, args.seed)
    servers = []
    for route in args.route:
        listen, upstream = (_address(part) for part in route.split("=", 1))

        async def handle(
            r: asyncio.StreamReader, w: asyncio.StreamWriter, up: tuple[str, int] = upstream
        ) -> None:
            await relay.handle(up, r, w)

        servers.append(await asyncio.start_server(handle, *listen))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("relaying", ", ".join(args.route), flush=True)
    await stop.wait()
    for server in servers:
        server.close()
    return relay


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.delay_relay")
    parser.add_argument("--route", action="append", required=True, help="LISTEN=UPSTREAM")
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stats", default=None)
    args = parser.parse_args(argv)
    relay = asyncio.run(_serve(args))
    if args.stats:
        stats = relay.stats
        with open(args.stats, "w") as f:
            json.dump({**asdict(stats), "mean_delay_ms": stats.mean_delay_ms}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
