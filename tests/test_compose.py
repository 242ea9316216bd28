"""``docker-compose.yml`` (and the three-node override) is valid and tells the truth.

Docker does not run on the development machines, so these tests hold the file to what can
be checked without it: the Compose specification's JSON Schema (vendored in
``tests/data/compose-spec.json``, see the README there), every ``sdo`` command parsing
with the real parser using only flags that exist, every environment variable being one sdo
reads, the topics service creating exactly :func:`sdo.broker.topic_specs`, and the wiring
between services (dependencies, health checks, volumes, ports, replicas).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft201909Validator, FormatChecker

from sdo.broker import topic_specs
from sdo.cli import build_parser, settings_from
from sdo.config import ENV, Topics, broker_host_port

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
KAFKA3 = REPO / "docker-compose.kafka3.yml"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
DOCKERFILE = REPO / "docker" / "Dockerfile"
DOCS = REPO / "docs" / "run-on-kafka.md"

#: The environment variables sdo reads (CONTRACT §5), the only SDO_* names allowed.
SDO_VARS = frozenset(var for var, _ in ENV.values())
#: Services that run the sdo image.
SDO_SERVICES = ("worker", "console", "simulate", "replay")
#: Services that run until stopped (and so need a health check).
LONG_RUNNING = ("kafka", "worker", "console")
#: Go duration, as Compose parses it ("10s", "1m30s").
DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
#: Compose interpolation: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, $VAR.
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_]\w*))"
)


# -- helpers ------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def interpolate(value: Any, env: Mapping[str, str], missing: set[str] | None = None) -> Any:
    """What ``docker compose`` makes of ``value`` with ``env`` (recursively); names used
    without a default and not in ``env`` are added to ``missing``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, missing) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["named"]
        if name in env and (env[name] or m["op"] != ":-"):
            return env[name]
        if m["op"] is not None:
            return str(m["default"])
        if missing is not None:
            missing.add(name)
        return ""

    return _INTERPOLATION.sub(sub, value)


def shell_expand(text: str, env: Mapping[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` as the shell expands them (all we use in the script)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env[m.group(1) or m.group(2)], text)


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of an override file, for mappings (enough for these checks)."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return override


def subcommand(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The (sub-)parser that handles ``argv`` (``["users", "add", ...]`` → ``users add``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and argv and argv[0] in action.choices:
            return subcommand(action.choices[argv[0]], argv[1:])
    return parser


def parse_sdo(argv: list[str], env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Parse ``sdo ARGV`` as the container would (its environment set), insisting that each
    ``--flag`` is spelt in full (argparse would also take an abbreviation)."""
    assert argv[0] == "sdo", argv
    for var in SDO_VARS:
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    parser = build_parser()
    try:
        args = parser.parse_args(argv[1:])
    except SystemExit as exc:
        pytest.fail(f"`{shlex.join(argv)}` is not a valid sdo command (exit {exc.code})")
    known = {
        opt for action in subcommand(parser, argv[1:])._actions for opt in action.option_strings
    }
    for token in argv[1:]:
        if token.startswith("-") and not token.lstrip("-").isdigit():
            assert token.split("=", 1)[0] in known, f"{token} is not a flag of `{argv[:3]}`"
    return args


def topic_commands(script: str, env: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """The ``topic ...`` lines of the topics service's script, parsed."""
    for raw in script.splitlines():
        line = raw.strip()
        if not line.startswith("topic "):
            continue
        words = shlex.split(shell_expand(line, env))[1:]
        out: dict[str, Any] = {"configs": {}}
        it = iter(words)
        for flag in it:
            value = next(it)
            if flag == "--config":
                key, _, val = value.partition("=")
                assert key not in out["configs"], f"{key} given twice in {line}"
                out["configs"][key] = val
            else:
                out[flag.lstrip("-")] = value
        yield out


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def resolved(compose: dict[str, Any]) -> dict[str, Any]:
    """The compose file as ``docker compose config`` shows it with no variables set."""
    resolved: dict[str, Any] = interpolate(compose, {})
    return resolved


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    # The file says draft 2019-09 (spelt with a trailing "#", which jsonschema does not
    # recognise, so the draft is named here rather than looked up).
    assert schema["$schema"].startswith("http://json-schema.org/draft/2019-09/schema")
    Draft201909Validator.check_schema(schema)
    formats = FormatChecker()
    formats.checks("duration")(lambda v: not isinstance(v, str) or bool(DURATION.match(v)))
    return Draft201909Validator(schema, format_checker=formats)


# -- the Compose specification ------------------------------------------------------------


@pytest.mark.parametrize("path", [COMPOSE, KAFKA3], ids=lambda p: p.name)
def test_file_is_valid_against_the_compose_specification(path: Path, validator: Any) -> None:
    """The file (before and after interpolation) satisfies the Compose spec's schema."""
    data = load(path)
    for variant in (data, interpolate(data, {})):
        errors = sorted(validator.iter_errors(variant), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
        )


def test_schema_rejects_what_compose_rejects(validator: Any) -> None:
    """The vendored schema is really checking: an unknown key and a bad duration fail."""
    assert not validator.is_valid({"services": {"a": {"image": "x", "replica": 2}}})
    assert not validator.is_valid(
        {"services": {"a": {"image": "x", "healthcheck": {"interval": "10 seconds"}}}}
    )
    assert validator.is_valid(
        {"services": {"a": {"image": "x", "healthcheck": {"interval": "1m30s"}}}}
    )


def test_every_variable_has_a_default(compose: dict[str, Any]) -> None:
    """``docker compose up`` works with no .env file: every ${VAR} has a default."""
    missing: set[str] = set()
    interpolate(compose, {}, missing)
    assert not missing, f"variables without a default: {sorted(missing)}"


# -- sdo commands and settings --------------------------------------------------------------


@pytest.mark.parametrize("name", SDO_SERVICES)
def test_sdo_service_command_is_a_real_sdo_command(
    name: str, resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each sdo service runs `sdo <command>` that the real parser accepts, flags spelt out."""
    service = resolved["services"][name]
    command = service["command"]
    assert isinstance(command, list), "exec form: no shell between Docker and sdo's signals"
    args = parse_sdo(command, environment(service), monkeypatch)
    assert args.command == {"simulate": "simulate", "replay": "replay"}.get(name, name)


@pytest.mark.parametrize("name", SDO_SERVICES)
def test_sdo_services_set_only_variables_sdo_reads(name: str, compose: dict[str, Any]) -> None:
    """Every environment variable given to an sdo container is one of ``sdo.config.ENV``."""
    names = set(environment(compose["services"][name]))
    assert names <= SDO_VARS, f"{name}: unknown variables {sorted(names - SDO_VARS)}"


def test_worker_and_console_reach_the_kafka_service(
    resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SDO_BROKER names the kafka service on a listener Kafka advertises to containers,
    the console listens on all interfaces on the published port, and the users file is on
    the volume that `docker compose run --rm console sdo users add` writes to."""
    services = resolved["services"]
    advertised = environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    for name in ("worker", "console", "replay"):
        service = services[name]
        args = parse_sdo(service["command"], environment(service), monkeypatch)
        host, port = broker_host_port(settings_from(args).broker)
        assert f"//{host}:{port}" in advertised, (name, advertised)
        assert "kafka" in service["depends_on"]
    console = services["console"]
    args = parse_sdo(console["command"], environment(console), monkeypatch)
    assert args.bind == "0.0.0.0:8765"
    assert any(str(p).endswith(":8765") for p in console["ports"])
    users = Path(args.users)
    mounts = {v.split(":")[1]: v.split(":")[0] for v in console["volumes"]}
    assert str(users.parent) in mounts, (users, mounts)
    assert mounts[str(users.parent)] in resolved["volumes"], "a named volume: tokens persist"


def test_worker_runs_replicated_with_metrics(
    resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two or more workers in one consumer group, each serving /metrics where its health
    check and Prometheus look."""
    worker = resolved["services"]["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert "container_name" not in worker, "a fixed name forbids replicas"
    args = parse_sdo(worker["command"], environment(worker), monkeypatch)
    assert args.app_id == "sdo-worker"
    for name in ("worker", "console"):
        service = resolved["services"][name]
        args = parse_sdo(service["command"], environment(service), monkeypatch)
        port = args.metrics_port.rpartition(":")[2]
        assert args.metrics_port.startswith("0.0.0.0:"), "reachable from other containers"
        assert port in [str(p) for p in service["expose"]]
    prometheus = (REPO / "docker" / "prometheus.yml").read_text(encoding="utf-8")
    assert "port: 9100" in prometheus
    assert "console:9100" in prometheus


# -- topics ---------------------------------------------------------------------------------


def test_topics_service_creates_exactly_the_contract_topics(resolved: dict[str, Any]) -> None:
    """Names, partitions and configs (compaction, retention) equal sdo.broker.topic_specs,
    and the worker is told the same partition count (its tables are co-partitioned)."""
    service = resolved["services"]["topics"]
    env = environment(service)
    script = service["command"][0]
    created = {t["topic"]: t for t in topic_commands(script, env)}
    partitions = int(env["PARTITIONS"])
    expected = {s.name: s for s in topic_specs(Topics(env["PREFIX"]), partitions)}
    assert created.keys() == expected.keys()
    for name, spec in expected.items():
        assert int(created[name]["partitions"]) == spec.partitions, name
        assert created[name]["configs"] == spec.configs, name
    worker_cmd = resolved["services"]["worker"]["command"]
    assert worker_cmd[worker_cmd.index("--partitions") + 1] == str(partitions)
    assert env["PREFIX"] == environment(resolved["services"]["worker"])["SDO_TOPIC_PREFIX"]


def test_topics_are_created_idempotently_with_the_replication_factor(
    resolved: dict[str, Any],
) -> None:
    """Re-running the one-shot service is safe, and it uses REPLICATION (1 on one node)."""
    service = resolved["services"]["topics"]
    script = service["command"][0]
    assert "kafka-topics.sh" in script
    assert "--if-not-exists" in script
    assert '--replication-factor "$REPLICATION"' in script
    assert environment(service)["REPLICATION"] == "1"
    assert service["image"] == resolved["services"]["kafka"]["image"]
    assert service["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compacted_topics_are_the_state_topics(resolved: dict[str, Any]) -> None:
    """Profile and recommendation (latest value per key) are compacted; the audit trail
    is kept forever; positions expire; nothing else is compacted."""
    env = environment(resolved["services"]["topics"])
    created = {
        t["topic"]: t["configs"]
        for t in topic_commands(resolved["services"]["topics"]["command"][0], env)
    }
    topics = Topics(env["PREFIX"])
    compacted = {n for n, c in created.items() if c["cleanup.policy"] == "compact"}
    assert compacted == {topics.profile, topics.recommendation}
    assert created[topics.deployment]["retention.ms"] == "-1"
    assert created[topics.location]["retention.ms"] == str(24 * 3600 * 1000)


# -- wiring -----------------------------------------------------------------------------------


def test_dependencies_health_checks_and_volumes_are_consistent(resolved: dict[str, Any]) -> None:
    """Long-running services have health checks; every dependency exists and waits for the
    right thing; one-shot services do not restart; every named volume is declared."""
    services = resolved["services"]
    for name in LONG_RUNNING:
        test = services[name]["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"}, name
    assert "kafka-topics.sh" in " ".join(services["kafka"]["healthcheck"]["test"])
    for name in ("worker", "console"):  # healthy = ready, from the probe beside /metrics
        assert "127.0.0.1:9100/readyz" in " ".join(services[name]["healthcheck"]["test"])
        assert "0.0.0.0:9100" in services[name]["command"]
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            condition = cond["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no health check"
            if condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is not one-shot"
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in resolved["volumes"], f"{name}: undeclared volume {source}"
            else:
                assert (REPO / source).exists(), f"{name}: {source} does not exist"
    for name in ("simulate", "replay", "prometheus"):
        assert services[name]["profiles"], f"{name} is optional"
    assert all("profiles" not in services[n] for n in ("kafka", "topics", *LONG_RUNNING))


def test_kafka_is_a_kraft_node_of_the_official_image(resolved: dict[str, Any]) -> None:
    kafka = resolved["services"]["kafka"]
    env = environment(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    listeners = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    for listener in env["KAFKA_LISTENERS"].split(","):
        assert listener.split("://")[0] in listeners
    assert len(env["CLUSTER_ID"]) == 22, "a base64 UUID"


def test_image_builds_the_package_from_this_repository(compose: dict[str, Any]) -> None:
    """The Dockerfile installs sdo on python:3.11-slim; its context is this repository."""
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert "python:3.11-slim" in dockerfile
    assert "pip install" in dockerfile and " sdo" in dockerfile
    assert re.search(r"^USER sdo$", dockerfile, re.M), "not root"
    for var in re.findall(r"\b(SDO_\w+)=", dockerfile):
        assert var in SDO_VARS
    build = compose["x-sdo"]["build"]
    assert (REPO / build["context"] / build["dockerfile"]) == DOCKERFILE
    ignore = (REPO / "docker" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    for needed in ("!pyproject.toml", "!README.md", "!src/"):
        assert needed in ignore.splitlines()


# -- three nodes ------------------------------------------------------------------------------


def test_three_node_override_forms_one_quorum(compose: dict[str, Any]) -> None:
    """With the override: three voters, unique node ids and host ports, replication 3 with
    min.insync.replicas 2, and the topics service waiting for every node."""
    merged = interpolate(merge(compose, load(KAFKA3)), {})
    services = merged["services"]
    nodes = {n: environment(services[n]) for n in ("kafka", "kafka-2", "kafka-3")}
    voters = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in nodes.values()}
    assert len(voters) == 1
    ids = {f"{env['KAFKA_NODE_ID']}@{name}:9093" for name, env in nodes.items()}
    assert ids == set(voters.pop().split(","))
    assert len({env["CLUSTER_ID"] for env in nodes.values()}) == 1
    assert nodes["kafka"]["CLUSTER_ID"] == environment(compose["services"]["kafka"])["CLUSTER_ID"]
    ports = [p for n in nodes for p in services[n].get("ports", [])]
    assert len(ports) == len(set(ports)) == 3
    for env in nodes.values():
        assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == 3
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2
    topics = services["topics"]
    assert environment(topics)["REPLICATION"] == "3"
    assert set(topics["depends_on"]) == set(nodes)
    # the workers' changelog topics: --replication from SDO_REPLICATION, which the
    # override's own usage line sets (at 1 they would refuse writes: min ISR 2)
    with_three = interpolate(merge(compose, load(KAFKA3)), {"SDO_REPLICATION": "3"})
    worker = with_three["services"]["worker"]["command"]
    assert worker[worker.index("--replication") + 1] == "3"
    assert (
        "SDO_REPLICATION=3 docker compose -f docker-compose.yml -f docker-compose.kafka3.yml"
        in (KAFKA3.read_text())
    )


# -- the documentation ------------------------------------------------------------------------


def test_documented_sdo_commands_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `docker compose run SERVICE sdo ...` line in docs/run-on-kafka.md is a real
    command in that service's environment."""
    services = load(COMPOSE)["services"]
    lines = [
        line.strip()
        for line in DOCS.read_text(encoding="utf-8").splitlines()
        if re.match(r"docker compose (\S+ )*run .*\bsdo ", line.strip())
    ]
    assert lines, "the walk-through shows how to add a user"
    for line in lines:
        words = shlex.split(line.split("#", 1)[0])
        at = words.index("sdo")
        parse_sdo(words[at:], environment(services[words[at - 1]]), monkeypatch)
