"""The Quix Streams peer of ``bench/ingest.py``: the same work in Quix's own terms.

One ``StreamingDataFrame`` per input topic (profile, status, location). Quix decodes each
record's JSON (its ``json`` deserializer, orjson) and a stateful ``update`` keeps the latest
event of each type per officer (the message key) in Quix's durable state: RocksDB, with
its Kafka changelog topics (``changelog__GROUP--TOPIC--default``), at-least-once, Quix's
default commit interval. After the last expected event the app is stopped, which commits
the checkpoint (state flushed, changelog produced, offsets committed); then it reports.
The benchmark checks the state by reading those changelogs. Run in the peers' venv::

    python bench/peers/quix_app.py --bootstrap HOST:PORT --group G --state-dir DIR \\
        --expect N TOPIC...

Settings for the embedded broker: ``auto_offset_reset="earliest"``; a short session
(6 s, heartbeat 0.5 s: the broker lets a group join only after about half of it); and a
20 ms fetch wait, as the worker and the other readers use (Tansu answers a fetch only when
its wait expires; librdkafka's default is 500 ms).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from quixstreams import Application
from span import Span


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("topics", nargs="+")
    args = p.parse_args(argv)

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel=logging.WARNING,
        consumer_extra_config={
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "fetch.wait.max.ms": 20,
        },
    )
    span = Span(args.expect)

    def keep(event: dict[str, Any], state: Any) -> None:
        state.set(event["type"], event)
        if span.apply():
            app.stop()  # leaves the poll loop, which then commits the checkpoint

    for name in args.topics:
        sdf = app.dataframe(app.topic(name, key_deserializer="bytes", value_deserializer="json"))
        sdf.update(keep, stateful=True)
    print("quix peer starting", flush=True)
    app.run()
    # the changelog topics' names, as Quix made them (no public accessor)
    changelogs = app._topic_manager.changelog_topics_list
    span.report(changelogs=sorted(t.name for t in changelogs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
