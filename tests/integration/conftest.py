"""Integration fixtures: a real ``sdo worker`` process against the session broker."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import pytest

from sdo.broker import EmbeddedBroker
from sdo.config import Topics

#: A worker joins its group after about half the session timeout on the embedded broker.
WORKER_SESSION_TIMEOUT_S = 3.0
#: Start-up: import, topic creation, group join, table recovery.
WORKER_READY_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 30.0


@dataclass
class WorkerProcess:
    """A running ``sdo worker`` subprocess and what it printed."""

    proc: subprocess.Popen[str]
    app_id: str
    topics: Topics
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    output: list[str] = field(default_factory=list)

    def changelog(self, table: str) -> str:
        return f"{self.app_id}-{table}-changelog"

    def restores(self) -> list[int]:
        """The incident counts of each restore the worker logged (one per assignment of
        partitions it was given), in order."""
        return [
            int(m.group(1))
            for line in self.output
            if (m := re.search(r"restored \d+ officers, (\d+) incidents", line))
        ]

    def wait_ready(self, timeout: float = WORKER_READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if "worker ready (" in line:
                return
        raise AssertionError(
            f"worker not ready within {timeout:.0f} s (exit {self.proc.poll()}):\n"
            + "".join(self.output[-40:])
        )

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WORKER_STOP_TIMEOUT_S)
        return self.proc.returncode

    def close(self) -> None:
        """Stop the worker and release its pipe."""
        self.stop()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _pump(worker: WorkerProcess) -> None:
    assert worker.proc.stdout is not None
    for line in worker.proc.stdout:
        worker.output.append(line)
        worker.lines.put(line)


@pytest.fixture
def own_broker() -> Iterator[EmbeddedBroker]:
    """A broker of the test's own (one it may freeze), started in the main thread."""
    own = EmbeddedBroker(port=0).start()
    try:
        yield own
    finally:
        own.stop()


@pytest.fixture
def start_worker(
    broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``sdo worker`` processes on the test's topics; all are stopped at the end.
    Each gets a data directory of its own under ``tmp_path`` (a worker the test kills
    with SIGKILL cannot remove the temporary one it would make)."""
    started: list[WorkerProcess] = []

    def start(app_id: str | None = None, *extra: str, wait: bool = True) -> WorkerProcess:
        app_id = app_id or f"sdo-test-{uuid4().hex[:8]}"
        data_dir = tmp_path / f"worker-{len(started)}-{app_id}"
        cmd = [
            sys.executable,
            "-m",
            "sdo",
            "worker",
            "--broker",
            broker.url,
            "--topic-prefix",
            topic_prefix,
            "--app-id",
            app_id,
            "--session-timeout",
            str(WORKER_SESSION_TIMEOUT_S),
            "-l",
            "info",
            *([] if "--data-dir" in extra else ["--data-dir", str(data_dir)]),
            *extra,
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        worker = WorkerProcess(proc, app_id, Topics(topic_prefix))
        threading.Thread(target=_pump, args=(worker,), daemon=True).start()
        started.append(worker)
        if wait:
            worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.close()
        # (pytest shows what a test printed, teardown included, only when it fails: then
        # the workers' last log lines say what they were doing)
        print(
            f"--- worker {worker.app_id} (exit {worker.proc.returncode}), last lines:\n"
            + "".join(worker.output[-60:])
        )
