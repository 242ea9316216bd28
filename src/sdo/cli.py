"""``sdo`` and its sub-commands (CONTRACT §5).

Thin by design: parse flags, build :class:`~sdo.config.Settings`, call one function in
the module that owns the command. ``main(argv) -> int`` is what tests call. User
mistakes (:class:`~sdo.errors.BadInput`, :class:`~sdo.errors.BrokerError`) print one
line on stderr and exit 2 (1 for a broker problem), never a traceback. The owning
modules are imported only when their command runs, so ``sdo grade`` does not pay
for importing Faust.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from sdo.config import ENV, KAFKA_PASSWORD_ENV, Settings, env_default, kafka_auth
from sdo.errors import BadInput, BrokerError

__all__ = ["build_parser", "main", "settings_from"]


def _common(p: argparse.ArgumentParser, *, broker: bool = True, areas: bool = True) -> None:
    if broker:
        p.add_argument(
            "--broker",
            default=env_default("broker"),
            metavar="URL",
            help="Kafka: kafka://HOST:PORT[,HOST:PORT...] (SDO_BROKER)",
        )
        p.add_argument(
            "--topic-prefix",
            default=env_default("topic_prefix"),
            help="topic name prefix (SDO_TOPIC_PREFIX)",
        )
        _kafka_security(p)
    if areas:
        p.add_argument(
            "--areas", type=Path, default=env_default("areas"), help="area GeoJSON (SDO_AREAS)"
        )
        p.add_argument(
            "--rules", type=Path, default=env_default("rules"), help="grading rules (SDO_RULES)"
        )


#: The Kafka security flags: (settings key in ENV, metavar, whether a path, what it is).
_KAFKA_FLAGS: Final = (
    ("kafka_security", "PROTOCOL", False, "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
    ("kafka_ca", "PEM", True, "CA certificate(s) to trust instead of the system's"),
    ("kafka_cert", "PEM", True, "client certificate, for mutual TLS"),
    ("kafka_key", "PEM", True, "the client certificate's private key"),
    ("kafka_sasl_mechanism", "M", False, "SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN"),
    ("kafka_user", "NAME", False, "SASL user"),
    ("kafka_password_file", "FILE", True, "SASL password, the file's first line"),
)


def _kafka_security(p: argparse.ArgumentParser) -> None:
    """How the Kafka clients connect to a production cluster (docs/run-on-kafka.md)."""
    g = p.add_argument_group("Kafka security (a production cluster; default: plaintext)")
    for key, metavar, path, text in _KAFKA_FLAGS:
        variable = ENV[key][0]
        if key == "kafka_password_file":
            variable += f"; or the password itself in {KAFKA_PASSWORD_ENV}"
        g.add_argument(
            "--" + key.replace("_", "-"),
            type=Path if path else str,
            default=env_default(key),
            metavar=metavar,
            help=f"{text} ({variable})",
        )


def _observability(p: argparse.ArgumentParser, *, metrics: bool = True) -> None:
    """``--log-format`` and ``--metrics-port`` (issue #8: metrics and structured logs)."""
    p.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=None,
        help="log lines as text or one JSON object per line (default: text)",
    )
    if metrics:
        p.add_argument(
            "--metrics-port",
            default=None,
            metavar="[HOST:]PORT",
            help="serve Prometheus metrics at /metrics (HOST defaults to 127.0.0.1; 0 = any port)",
        )


def _admission(p: argparse.ArgumentParser) -> None:
    """``--max-ahead``: the clock skew the admission rule allows (sdo.admission)."""
    p.add_argument(
        "--max-ahead",
        default=env_default("max_ahead"),
        metavar="SECONDS",
        help="refuse events whose ts is more than this past this machine's clock "
        "(SDO_MAX_AHEAD; default 300)",
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """The :class:`Settings` the parsed flags describe."""
    kwargs: dict[str, Any] = {}
    for name in ("broker", "topic_prefix", "areas", "rules"):
        value = getattr(args, name, None)
        if value is not None:
            kwargs[name] = value
    ahead = getattr(args, "max_ahead", None)
    if ahead is not None:
        try:
            kwargs["max_ahead_s"] = float(ahead)
        except ValueError:
            raise BadInput(f"--max-ahead {ahead!r}: give a number of seconds") from None
    if hasattr(args, "kafka_security"):
        kwargs["kafka"] = kafka_auth(
            args.kafka_security,
            ca=args.kafka_ca,
            cert=args.kafka_cert,
            key=args.kafka_key,
            mechanism=args.kafka_sasl_mechanism,
            user=args.kafka_user,
            password_file=args.kafka_password_file,
        )
    return Settings(**kwargs)


def _run(target: str) -> Callable[[argparse.Namespace], int]:
    """Defer ``module:function`` until the command actually runs."""

    def call(args: argparse.Namespace) -> int:
        module, _, func = target.partition(":")
        result: int = getattr(importlib.import_module(module), func)(args)
        return result

    return call


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdo",
        description=(
            "Resource awareness and THRIVE+ recommended deployments for a Service Delivery Officer."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="broker + worker + console + simulated feed, all in one")
    _common(p, broker=False)
    p.add_argument("--officers", type=int, default=120, help="simulated officers (default 120)")
    p.add_argument(
        "--speed", type=float, default=30.0, help="simulated time per real second (default 30)"
    )
    p.add_argument("--seed", type=int, default=1, help="simulation seed")
    p.add_argument(
        "--bind", default=env_default("bind"), help="console HOST:PORT (SDO_CONSOLE_BIND)"
    )
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument(
        "--sdo-window",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="wall-clock seconds each new call is left to the SDO before the simulated "
        "dispatcher acts on it (default 60; it never acts on a call an SDO decided)",
    )
    p.add_argument(
        "--users",
        type=Path,
        default=None,
        help="users file, kept across restarts (default: a new one in a temporary directory)",
    )
    p.add_argument(
        "--insecure-http",
        action="store_true",
        help="serve plain HTTP on a non-loopback --bind (only behind a TLS proxy)",
    )
    _observability(p, metrics=False)
    p.set_defaults(func=_run("sdo.demo:cli"))

    p = sub.add_parser("broker", help="the embedded Kafka-compatible broker alone (loopback)")
    p.add_argument(
        "--port", type=int, default=int(env_default("port") or 9092), help="0 = any free port"
    )
    p.add_argument("--topic-prefix", default=env_default("topic_prefix"))
    p.set_defaults(func=_run("sdo.broker:cli"))

    p = sub.add_parser("worker", help="the Faust worker (the stream processor)")
    _common(p)
    p.add_argument(
        "--loglevel", "-l", default="warn", choices=["crit", "error", "warn", "info", "debug"]
    )
    p.add_argument("--data-dir", type=Path, default=None, help="Faust data directory")
    p.add_argument(
        "--app-id",
        default="sdo-worker",
        help="Kafka consumer group and Faust app id (default: sdo-worker)",
    )
    p.add_argument("--web-port", type=int, default=None, help="Faust web port (default: none)")
    p.add_argument(
        "--partitions", type=int, default=4, help="partitions of the input topics (default: 4)"
    )
    p.add_argument(
        "--replication",
        type=int,
        default=1,
        help="replication factor of the topics the worker creates (its table changelogs; "
        "default: 1)",
    )
    p.add_argument(
        "--session-timeout",
        type=float,
        default=6.0,
        help="Kafka consumer session timeout, s (default: 6; the embedded broker lets a "
        "consumer join after half of it)",
    )
    p.add_argument(
        "--order-idle",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="longest an input partition with nothing fetched holds back the others' older "
        "events (event-time order across partitions; default 1)",
    )
    p.add_argument(
        "--no-batch-lane",
        dest="batch_lane",
        action="store_false",
        help="apply every AVL fix the general way, one record at a time (the batch lane "
        "decides the same, faster: for comparison)",
    )
    _admission(p)
    _observability(p)
    p.set_defaults(func=_run("sdo.stream.worker:cli"))

    p = sub.add_parser("console", help="the SDO console server (HTTP page + websocket)")
    _common(p)
    p.add_argument(
        "--users", type=Path, default=env_default("users"), help="users file (SDO_USERS)"
    )
    p.add_argument("--bind", default=env_default("bind"), help="HOST:PORT (SDO_CONSOLE_BIND)")
    p.add_argument("--cert", type=Path, default=None, help="TLS certificate (PEM)")
    p.add_argument("--key", type=Path, default=None, help="TLS private key (PEM)")
    p.add_argument("--origin", action="append", default=None, help="allowed Origin (repeatable)")
    p.add_argument(
        "--insecure-http",
        action="store_true",
        help="serve plain HTTP on a non-loopback address (only behind a TLS proxy)",
    )
    _admission(p)
    _observability(p)
    p.set_defaults(func=_run("sdo.console.server:cli"))

    p = sub.add_parser("users", help="manage console users")
    users = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    q = users.add_parser("add", help="add a user and print a new token once")
    q.add_argument("name")
    q.add_argument("--role", choices=["sdo", "viewer"], required=True)
    q.add_argument(
        "--users", type=Path, default=env_default("users"), help="users file (SDO_USERS)"
    )
    q.set_defaults(func=_run("sdo.console.auth:cli_add"))
    q = users.add_parser("remove", help="remove a user (their open sessions are closed)")
    q.add_argument("name")
    q.add_argument(
        "--users", type=Path, default=env_default("users"), help="users file (SDO_USERS)"
    )
    q.set_defaults(func=_run("sdo.console.auth:cli_remove"))
    q = users.add_parser("list", help="list the users and their roles (never their tokens)")
    q.add_argument(
        "--users", type=Path, default=env_default("users"), help="users file (SDO_USERS)"
    )
    q.set_defaults(func=_run("sdo.console.auth:cli_list"))

    p = sub.add_parser("simulate", help="write a deterministic synthetic pilot event log")
    _common(p, broker=False)
    p.add_argument(
        "--seed", type=int, default=1, help="random seed: same seed and arguments, same bytes"
    )
    p.add_argument(
        "--hours", type=float, default=24.0, help="simulated hours (default 24; 120: five days)"
    )
    p.add_argument(
        "--officers",
        type=int,
        default=120,
        help="officers on duty at once, every shift (default 120: the pilot's two NPUs, "
        "66 of them response; the roster holds about 2.7 times as many)",
    )
    p.add_argument(
        "--start", default="2015-12-01T06:00:00Z", help="simulated start time (RFC 3339)"
    )
    p.add_argument("--out", type=Path, required=True, help="LOG (.jsonl or .jsonl.gz)")
    p.add_argument("--force", action="store_true", help="replace LOG if it exists")
    p.set_defaults(func=_run("sdo.evaluation.simulate:cli"))

    p = sub.add_parser("replay", help="publish an event log to Kafka")
    _common(p, areas=False)
    p.add_argument("log", type=Path, help="event log (JSON lines, .gz allowed)")
    p.add_argument(
        "--speed",
        default="max",
        help="N x real time (60: a simulated day in 24 min), or max: as fast as Kafka takes "
        "it (default)",
    )
    p.set_defaults(func=_run("sdo.evaluation.replay:cli"))

    p = sub.add_parser(
        "evaluate",
        help="offline: run dispatch policies over a log",
        description="Run dispatch policies over an event log, offline (no Kafka), with the "
        "live worker's decision code, and write DIR/report.html, DIR/metrics.json, "
        "DIR/incidents.csv and DIR/recommendations.jsonl. thrive is the product; closest "
        "sends the closest available response officer to the calls the force attended (a "
        "model of the status quo); recorded is what the log's own dispatch did. Closed loop "
        "(the default for a simulated log): each policy's recommendations are carried out "
        "and officers are used up by them; open loop: the log's deployments are applied and "
        "the policies' attendance is estimated. Several LOGs (e.g. simulated days of "
        "different seeds): each in DIR/N-NAME/, and DIR/report.html across them. --areas "
        "must be the area file the log was made for.",
    )
    _common(p, broker=False)
    p.add_argument("log", type=Path, nargs="+", help="event log(s) (JSON lines, .gz allowed)")
    p.add_argument(
        "--policy",
        action="append",
        default=None,
        help="thrive, closest, recorded, or a variant NAME@RULES_FILE run with rules of its "
        "own (repeatable; default: thrive, closest, and recorded if the log has deployments)",
    )
    loop = p.add_mutually_exclusive_group()
    loop.add_argument(
        "--closed-loop",
        dest="closed_loop",
        action="store_const",
        const=True,
        default=None,
        help="carry each policy's recommendations out (default for a simulated log)",
    )
    loop.add_argument(
        "--open-loop",
        dest="closed_loop",
        action="store_const",
        const=False,
        help="apply the log's own deployments; estimate the policies' attendance",
    )
    p.add_argument(
        "--sensitivity",
        action="store_true",
        help="closed loop: run the first two policies again with other travel assumptions "
        "(detour 1.2 and 1.6, speeds -20%% and +20%%) and report how the headline moves",
    )
    p.add_argument(
        "--allow-outside",
        action="store_true",
        help="evaluate a log even if more than 10%% of its incidents fall outside --areas",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output directory (made if missing; its files are replaced once all are written)",
    )
    p.add_argument(
        "--against",
        default=None,
        metavar="POLICY",
        help="the policy the others are compared with, incident by incident (default: "
        "closest if evaluated, else the first)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="policies evaluated at once, a process each (default: one per policy, "
        "up to the number of CPUs)",
    )
    _admission(p)
    p.set_defaults(func=_run("sdo.evaluation.command:cli"))

    p = sub.add_parser("grade", help="grade incidents (JSON lines on stdin)")
    p.add_argument(
        "--rules", type=Path, default=env_default("rules"), help="grading rules (SDO_RULES)"
    )
    p.set_defaults(func=_run("sdo.grade:cli"))

    p = sub.add_parser("schemas", help="write or --check the JSON Schemas")
    p.add_argument("--dir", type=Path, default=Path("schemas"))
    p.add_argument(
        "--check", action="store_true", help="exit 1 if the files differ from the models"
    )
    p.set_defaults(func=_run("sdo.schemas:cli"))

    p = sub.add_parser("areas", help="area files")
    areas = p.add_subparsers(dest="areas_command", required=True, metavar="ACTION")
    q = areas.add_parser("import", help="convert a real boundary GeoJSON into an area file")
    q.add_argument("file", type=Path)
    q.add_argument("--id-prop", required=True, help="property holding the area id (e.g. WD13CD)")
    q.add_argument("--name-prop", required=True, help="property holding the name (e.g. WD13NM)")
    q.add_argument(
        "--npu-map", type=Path, required=True, help="CSV: id,npu,cluster[,typology,named_officer]"
    )
    q.add_argument(
        "--min-cover", action="append", default=[], metavar="CLUSTER=N", help="minimum cover"
    )
    q.add_argument("--default-typology", type=int, default=3)
    q.add_argument("--only-mapped", action="store_true", help="drop features absent from the map")
    q.add_argument("--out", type=Path, required=True)
    q.set_defaults(func=_run("sdo.areas:cli_import"))

    p = sub.add_parser("import", help="convert outside data into an event log")
    imports = p.add_subparsers(dest="import_command", required=True, metavar="SOURCE")
    q = imports.add_parser(
        "police-uk", help="police.uk street-level crime CSV -> incident events (JSONL)"
    )
    q.add_argument("csv", type=Path, help="police.uk street-level CSV")
    q.add_argument(
        "--areas", type=Path, default=env_default("areas"), help="area GeoJSON (SDO_AREAS)"
    )
    q.add_argument("--out", type=Path, required=True, help="LOG (.jsonl or .jsonl.gz)")
    q.add_argument("--force", action="store_true", help="replace LOG if it exists")
    q.add_argument("--seed", type=int, default=1, help="seed for the synthetic times and answers")
    q.add_argument(
        "--officers", type=int, default=None, help="also simulate K officers (roster, AVL)"
    )
    q.add_argument("--since", default=None, help="keep incidents from this date/time on")
    q.add_argument("--until", default=None, help="keep incidents before this date/time")
    q.set_defaults(func=_run("sdo.evaluation.police_uk:cli"))
    return parser


#: Commands whose event loop carries the traffic: they run on uvloop when it is installed.
_UVLOOP_COMMANDS: Final = frozenset({"worker", "console", "replay"})


def _use_uvloop() -> None:
    """Make new event loops uvloop's (C event loop; a Faust worker spends about half its
    time in asyncio's own Python). Must run before Faust or mode are imported: they pick
    their loop on import. Without uvloop (not a Linux/macOS wheel), asyncio's loop."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # The worker's logging is set up by Faust (see sdo.logs.dict_config); others' here.
    if getattr(args, "log_format", None) is not None and args.command != "worker":
        from sdo.logs import configure_logging  # noqa: PLC0415

        configure_logging("warning" if args.command == "demo" else "info", args.log_format)
    if args.command in _UVLOOP_COMMANDS:
        _use_uvloop()
    try:
        code: int = args.func(args)
    except BadInput as exc:
        print(f"sdo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokerError as exc:
        print(f"sdo {args.command}: broker error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sdo {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
