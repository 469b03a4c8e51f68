"""A JetStream stream and subject prefix of a test's own, on the NATS server at
127.0.0.1:4222 (skipped when absent, failing in CI), deleted afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import nats
import orjson
import pytest
from nats.js import JetStreamContext

from orderguard.config import Settings
from tests.conftest import service_missing
from tests.outbox_kit import settings

NATS_URL = "nats://127.0.0.1:4222"


@dataclass
class Stream:
    """A stream and subject prefix of this test's own."""

    name: str
    prefix: str
    js: JetStreamContext

    def settings(self, **extra: str) -> Settings:
        return settings(
            nats_url=NATS_URL, nats_stream=self.name, nats_subject_prefix=self.prefix, **extra
        )

    def env(self) -> dict[str, str]:
        """The same, as the environment of an ``orderguard`` process."""
        return {
            "ORDERGUARD_NATS_URL": NATS_URL,
            "ORDERGUARD_NATS_STREAM": self.name,
            "ORDERGUARD_NATS_SUBJECT_PREFIX": self.prefix,
        }

    async def messages(self) -> list[tuple[str, dict[str, str], dict[str, object]]]:
        info = await self.js.stream_info(self.name)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            msg = await self.js.get_msg(self.name, seq)
            found.append((msg.subject, dict(msg.headers or {}), orjson.loads(msg.data or b"")))
        return found


@pytest.fixture(name="stream")
async def nats_stream() -> AsyncIterator[Stream]:
    """A JetStream context and a unique stream name; the stream is deleted afterwards."""
    try:
        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
    except Exception as exc:  # any failure to connect means NATS is not there
        service_missing("NATS JetStream", repr(exc))
    token = uuid.uuid4().hex[:10]
    js = nc.jetstream()
    found = Stream(f"OG_TEST_{token}", f"ogtest_{token}.orders", js)
    try:
        yield found
    finally:
        try:
            await js.delete_stream(found.name)
        except nats.js.errors.NotFoundError:
            pass
        await nc.close()
