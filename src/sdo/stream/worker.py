"""``sdo worker``: create the contract topics, then run the Faust app until signalled."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import faust

from sdo import heap
from sdo.areas import load_areas
from sdo.broker import ensure_topics, other_counts, tls_problem, topic_specs
from sdo.cli import settings_from
from sdo.config import Settings
from sdo.domain import scans
from sdo.domain.recommend import Policy
from sdo.domain.world import World
from sdo.errors import BrokerError, ConfigError
from sdo.grade import load_rules
from sdo.health import LoopProbes
from sdo.logs import dict_config
from sdo.metrics import WorkerMetrics, new_registry, serve_metrics
from sdo.stream.app import WorkerOptions, build_app, input_topics

__all__ = ["cli", "faust_worker", "make_world", "prepare_topics"]

_LOGLEVELS = {
    "crit": "critical",
    "error": "error",
    "warn": "warning",
    "info": "info",
    "debug": "debug",
}


def faust_worker(
    app: faust.App, level: str, logging_config: dict[str, Any] | None = None
) -> faust.Worker:
    """A Faust worker for ``app`` logging at ``level``, without the terminal spinner, and
    with its standard output its own.

    Faust's spinner, at a level of WARN or above, sets the root logger to DEBUG so that it
    can spin on every record: every aiokafka frame then builds a log record (~5% of the
    worker's CPU in bench/ingest.py). A service has no terminal to spin on. And Faust
    turns whatever a process prints into log records of level WARNING: the worker's
    "worker ready" and "metrics at" lines read as warnings (in JSON logs, records of level
    WARNING).
    """
    worker = faust.Worker(
        app, loglevel=level, quiet=True, logging_config=logging_config, redirect_stdouts=False
    )
    worker.spinner = None
    return worker


def make_world(settings: Settings, policy: str = "thrive") -> World:
    """A World from the settings' area and rules files (one-line errors on bad files),
    its compiled scans ready (see :func:`sdo.domain.scans.warm_up`)."""
    scans.warm_up()
    areas = load_areas(settings.areas_path)
    rules = load_rules(settings.rules_path)
    return World(areas, rules, Policy.from_mapping(policy, rules.recommend))


def prepare_topics(
    settings: Settings, partitions: int, timeout: float = 30.0, *, replication: int = 1
) -> None:
    """Create the contract topics (idempotent); a clear error if the broker is not there,
    or if an input topic exists with another partition count than ``partitions`` (the
    worker's tables are partitioned like its input: it could not apply those events)."""
    counts = _topic_counts(settings, partitions, timeout, replication)
    inputs = {name: counts[name] for name in input_topics(settings.topics)}
    wrong = {name: n for name, n in inputs.items() if n != partitions}
    if wrong:
        found = ", ".join(f"{name} {n}" for name, n in sorted(wrong.items()))
        counts_seen = set(inputs.values())
        fix = (
            f"start the worker with --partitions {counts_seen.pop()}"
            if len(counts_seen) == 1
            else "the input topics must all have the same number of partitions"
        )
        raise ConfigError(
            f"input topic(s) with another number of partitions than --partitions {partitions} "
            f"({found}): {fix}"
        )
    # (said only if the worker goes on: a user error is one line)
    other = other_counts(counts, topic_specs(settings.topics, partitions))
    if other is not None:
        logging.getLogger(__name__).warning("%s", other)


def _topic_counts(
    settings: Settings, partitions: int, timeout: float, replication: int
) -> dict[str, int]:
    """:func:`ensure_topics`, its failure as one line: aiokafka logs every failed attempt
    to connect, and before Faust sets logging up that reached stderr beside our line."""
    kafka_log = logging.getLogger("aiokafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(
            ensure_topics(
                settings.bootstrap,
                topic_specs(settings.topics, partitions),
                timeout=timeout,
                replication_factor=replication,
                security=settings.kafka.client_options(),
                warn=False,
            )
        )
    except Exception as exc:
        broker = isinstance(exc, BrokerError | OSError)  # (OSError: timeouts, refusals)
        if not broker and not type(exc).__module__.startswith("aiokafka"):
            raise
        # (aiokafka says only that it could not connect: a TLS mistake is named here)
        why = asyncio.run(tls_problem(settings))
        cause = exc.__cause__ if isinstance(exc, BrokerError) else exc
        if why is None and (cause is None or not _unreachable(cause)):
            raise
        if why is None:
            why = str(cause)
            if not why.startswith(type(cause).__name__):  # (aiokafka's errors name themselves)
                why = f"{type(cause).__name__}: {why}"
        raise BrokerError(f"cannot reach the broker at {settings.broker}: {why}") from None
    finally:
        kafka_log.setLevel(level)


def _unreachable(exc: BaseException) -> bool:
    """A failure to connect at all (not a broker's refusal of a request)."""
    from aiokafka.errors import KafkaConnectionError  # noqa: PLC0415  (as faust, on use)

    return isinstance(exc, OSError | KafkaConnectionError)


def cli(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    world = make_world(settings)
    prepare_topics(settings, args.partitions, replication=args.replication)
    cleanup = None
    data_dir = args.data_dir
    if data_dir is None:
        cleanup = tempfile.mkdtemp(prefix="sdo-worker-")
        data_dir = Path(cleanup)
    options = WorkerOptions(
        app_id=args.app_id,
        partitions=args.partitions,
        replication=args.replication,
        session_timeout_s=args.session_timeout,
        data_dir=str(data_dir),
        web_port=args.web_port,
        order_idle_s=args.order_idle,
        batch_lane=args.batch_lane,
    )
    app, runtime = build_app(settings, world, options)

    def _ready() -> None:
        # start-up is done: the collector leaves what it built alone (sdo.heap)
        frozen = heap.settle()
        logging.getLogger(__name__).info("start-up heap frozen: %d objects", frozen)
        # the ready line is how `sdo demo` and the tests know the worker is processing
        print(f"worker ready ({options.app_id})", flush=True)  # noqa: T201
        # and a record of it for a log store (JSON logs: --log-format json, -l info)
        logging.getLogger(__name__).info(
            "worker ready (%s)%s",
            options.app_id,
            "" if server is None else f"; metrics at {server.url}",
        )

    runtime.on_ready = _ready
    level = _LOGLEVELS[args.loglevel]
    # Faust (mode) replaces the logging set-up when it starts: hand it the config instead.
    logging_config = dict_config(level, args.log_format) if args.log_format else None
    worker = faust_worker(app, level, logging_config)
    server = None
    if args.metrics_port is not None:
        registry = new_registry()
        runtime.metrics = WorkerMetrics(registry)
        # /healthz and /readyz beside /metrics, asked on the loop the worker runs
        probes = LoopProbes(runtime.problems, worker.loop)
        server = serve_metrics(registry, args.metrics_port, probes)
        print(f"metrics at {server.url}", flush=True)  # noqa: T201

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]
        async def _revoked(sender: object, revoked: set[Any], **_: object) -> None:
            if runtime.metrics is not None:
                runtime.metrics.revoked((tp.topic, tp.partition) for tp in revoked)

    try:
        worker.execute_from_commandline()
    finally:
        if server is not None:
            server.close()
        logging.getLogger(__name__).info(
            "processed %s, ignored %s, dead letters %s; AVL fixes by the batch lane %d "
            "(%d records left to the general way)",
            dict(runtime.processed),
            dict(runtime.ignored),
            dict(runtime.dead),
            0 if runtime.lane is None else runtime.lane.applied,
            0 if runtime.lane is None else runtime.lane.refused,
        )
        if cleanup is not None:
            shutil.rmtree(cleanup, ignore_errors=True)
    return 0
