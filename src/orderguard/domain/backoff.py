"""When to try again to process a stored webhook whose processing failed.

Pure policy: exponential waits with jitter (so a burst of failures does not come back all
at once), capped at an hour; the event stays in the inbox until it is processed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

#: The wait after the first failure, before jitter.
WEBHOOK_FIRST_WAIT = timedelta(seconds=5)
#: No wait is longer than this.
WEBHOOK_MAX_WAIT = timedelta(hours=1)


def webhook_retry_delay(*, attempts: int, jitter: Callable[[], float] = random.random) -> timedelta:
    """The wait after the ``attempts``-th failed processing (1 for the first failure).

    The base wait doubles per failure from :data:`WEBHOOK_FIRST_WAIT`; the result is drawn
    between half the base and the whole of it (``jitter`` returns a number in ``[0, 1)``),
    and never exceeds :data:`WEBHOOK_MAX_WAIT`.
    """
    exponent = min(max(attempts, 1) - 1, 20)
    base = min(WEBHOOK_FIRST_WAIT * (1 << exponent), WEBHOOK_MAX_WAIT)
    return base / 2 + base / 2 * jitter()
