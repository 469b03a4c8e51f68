"""The load generators' result (``_common.write_result``) reaches the benchmark whole: one
JSON line of any size, even when something keeps turning stdout non-blocking and the
reader is slow (a result was once cut at 64 KiB, the pipe's size, and the benchmark
stopped on half a JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"

#: A child that writes a ~2 MB result while a thread keeps its stdout non-blocking, as an
#: event loop that owns the descriptor may.
CHILD = textwrap.dedent(
    """
    import os, sys, threading
    sys.path.insert(0, sys.argv[1])
    from _common import write_result

    def flip():
        while True:
            os.set_blocking(1, False)

    threading.Thread(target=flip, daemon=True).start()
    write_result({"latencies": [i / 7 for i in range(100_000)], "tail": "end"})
    """
)


def test_a_result_larger_than_the_pipe_arrives_whole_to_a_slow_reader() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(BENCH)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        time.sleep(0.5)  # the reader is late: the pipe fills and the writer must wait
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err.decode()[-2000:]
    assert len(out) > 1_000_000 and out.endswith(b"\n") and out.count(b"\n") == 1
    result = json.loads(out)
    assert result["tail"] == "end" and len(result["latencies"]) == 100_000
