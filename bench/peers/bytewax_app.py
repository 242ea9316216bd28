"""The bytewax peer of ``bench/ingest.py``: the same work as a bytewax dataflow.

``KafkaSource`` over the three officer topics (one librdkafka consumer per partition, read
from the beginning to the end of each partition: ``tail=False``, so the dataflow ends when
the pre-produced input is consumed); each record's JSON decoded with orjson and keyed by
officer; one ``stateful_batch`` step keeps, per officer, the latest event of each type.
With ``--recovery`` (the default) the state is durable the bytewax way: snapshots of every
changed officer at each epoch's end (10 s, and at the end of the input) into the SQLite
recovery partition, with the input offsets. The run ends when the dataflow has stopped;
then the peer reads the latest snapshot of each officer back from SQLite and writes
``{officer: {type: event_id}}`` to ``--state-out`` for the benchmark to check.
``--no-recovery`` keeps the state in memory only and writes it from the operator at the
end of the input instead. Run in the peers' venv::

    python bench/peers/bytewax_app.py --bootstrap HOST:PORT --expect N --work-dir DIR \\
        --state-out FILE TOPIC...

One worker (``cli_main`` with one worker per process: one thread, like the other peers).
``fetch.wait.max.ms`` 20, as the worker and the other readers use on the embedded broker.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sqlite3
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.connectors.kafka import KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main
from span import Span

EPOCH = timedelta(seconds=10)  # bytewax's default epoch interval, stated


class Latest(op.StatefulBatchLogic):
    """One officer's latest event of each type."""

    def __init__(self, span: Span, resume: dict[str, Any] | None, emit_at_eof: bool) -> None:
        self.span = span
        self.state: dict[str, Any] = dict(resume or {})
        self.emit_at_eof = emit_at_eof

    def on_batch(self, values: list[Any]) -> tuple[list[Any], bool]:
        state = self.state
        for event in values:
            state[event["type"]] = event
        self.span.apply(len(values))
        return [], op.StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Any], bool]:
        if self.emit_at_eof:
            return [{t: e["event_id"] for t, e in self.state.items()}], self.RETAIN
        return [], self.RETAIN

    def snapshot(self) -> dict[str, Any]:
        return dict(self.state)  # the events themselves are never changed after decoding


class _Collect(StatelessSinkPartition[Any]):
    def __init__(self, into: dict[str, Any]) -> None:
        self.into = into

    def write_batch(self, items: list[Any]) -> None:
        for officer, latest in items:
            self.into[officer] = latest


class Collect(DynamicSink[Any]):
    """Collects what reaches it (the end-of-input state without recovery; else nothing)."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Collect:
        return _Collect(self.items)


def snapshots(db_dir: Path, step: str) -> dict[str, Any]:
    """The latest snapshot of each key of ``step`` in the SQLite recovery partitions."""
    out: dict[str, Any] = {}
    for db in sorted(db_dir.glob("*.sqlite3")):
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT state_key, ser_change FROM snaps WHERE step_id = ? ORDER BY snap_epoch",
                (step,),
            ).fetchall()
        for key, blob in rows:
            # the recovery store is this run's own, written by this process a moment ago
            out[key] = None if blob is None else pickle.loads(blob)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--work-dir", type=Path, required=True)
    p.add_argument("--state-out", type=Path, required=True)
    p.add_argument("--no-recovery", dest="recovery", action="store_false")
    p.add_argument("topics", nargs="+")
    args = p.parse_args(argv)

    span = Span(args.expect)
    flow = Dataflow("sdo_bench_latest")
    source = KafkaSource(
        [args.bootstrap], args.topics, tail=False, add_config={"fetch.wait.max.ms": "20"}
    )
    records = op.input("officer_events", flow, source)

    def decode(msg: Any) -> tuple[str, Any]:
        # the clock starts here: the stateful step may see its first batch only once the
        # source has handed on a good part of the input (bytewax batches per activation)
        span.start()
        return msg.key.decode(), orjson.loads(msg.value)

    keyed = op.map("decode", records, decode)
    latest = op.stateful_batch(
        "latest", keyed, lambda resume: Latest(span, resume, not args.recovery)
    )
    sink = Collect()
    op.output("end_state", latest, sink)

    recovery = None
    if args.recovery:
        db_dir = args.work_dir / "recovery"
        db_dir.mkdir(parents=True, exist_ok=True)
        init_db_dir(db_dir, 1)
        recovery = RecoveryConfig(str(db_dir))
    print("bytewax peer starting", flush=True)
    cli_main(flow, workers_per_process=1, epoch_interval=EPOCH, recovery_config=recovery)
    span.report(recovery="sqlite" if args.recovery else "memory")

    if args.recovery:
        held = snapshots(db_dir, "sdo_bench_latest.latest")
        state = {k: {t: e["event_id"] for t, e in v.items()} for k, v in held.items() if v}
    else:
        state = sink.items
    args.state_out.write_text(json.dumps(state))
    print("bytewax state written", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
