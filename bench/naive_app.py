"""The naive peer for ``bench/ingest.py``: the Faust agent a team would write first.

One agent over the officer topics; every event is decoded with the same contract code as
the worker (:func:`sdo.events.decode`) and written as one table entry, keyed by officer
(``<type>:<officer_id>``), so the table changelog gets one record per event. Same Faust
settings as ``sdo worker`` where they matter (memory store, raw bytes, 4 partitions,
session timeout 3 s). Run by the benchmark as::

    python bench/naive_app.py --broker kafka://HOST:PORT --topic-prefix P --app-id ID
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from typing import Any

import faust

from sdo.config import Topics
from sdo.events import decode, to_json_dict


def build(broker: str, prefix: str, app_id: str, datadir: str, partitions: int = 4) -> faust.App:
    topics = Topics(prefix)
    app = faust.App(
        app_id,
        broker=broker,
        store="memory://",
        datadir=datadir,  # (Faust's default is ./APP_ID-data, left behind in the tree)
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=partitions,
        topic_replication_factor=1,
        broker_session_timeout=3.0,
        broker_heartbeat_interval=0.5,
        broker_rebalance_timeout=10.0,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
        web_enabled=False,
    )
    latest = app.Table("latest", default=None, partitions=partitions, key_type=str)
    source = app.topic(
        topics.location, topics.status, topics.profile, key_type=bytes, value_type=bytes
    )

    @app.agent(source, name="naive.inputs")
    async def inputs(stream: Any) -> None:
        async for value in stream:
            event = decode(value)
            latest[f"{event.type}:{event.officer_id}"] = to_json_dict(event)

    @app.task
    async def ready() -> None:
        print(f"naive ready ({app_id})", flush=True)

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--broker", required=True)
    p.add_argument("--topic-prefix", required=True)
    p.add_argument("--app-id", required=True)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix=f"{args.app_id}-") as datadir:
        app = build(args.broker, args.topic_prefix, args.app_id, datadir)
        faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
