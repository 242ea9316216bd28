"""Settings shared by the commands, read once at start-up (CONTRACT §5).

Every setting has a flag and an environment variable of the same meaning; the flag wins.
Nothing else in sdo reads ``os.environ``.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

from sdo.errors import ConfigError

__all__ = [
    "DEFAULT_AREAS",
    "DEFAULT_RULES",
    "ENV",
    "KAFKA_PASSWORD_ENV",
    "SEQ_HEADER",
    "KafkaAuth",
    "Settings",
    "Topics",
    "broker_host_port",
    "broker_hosts",
    "kafka_auth",
    "package_data",
]

#: flag name -> (environment variable, default)
ENV: Final[dict[str, tuple[str, str | None]]] = {
    "broker": ("SDO_BROKER", "kafka://127.0.0.1:9092"),
    "topic_prefix": ("SDO_TOPIC_PREFIX", "sdo."),
    "areas": ("SDO_AREAS", None),
    "rules": ("SDO_RULES", None),
    "users": ("SDO_USERS", "./sdo-users.json"),
    "bind": ("SDO_CONSOLE_BIND", "127.0.0.1:8765"),
    "port": ("SDO_BROKER_PORT", "9092"),
    # how far past the admitting process's clock an event time may be (the admission rule,
    # sdo.admission; seconds)
    "max_ahead": ("SDO_MAX_AHEAD", "300"),
    # how the Kafka clients connect (a production cluster's TLS and SASL; not in CONTRACT
    # §5's table, which names the rest: docs/run-on-kafka.md)
    "kafka_security": ("SDO_KAFKA_SECURITY", "PLAINTEXT"),
    "kafka_ca": ("SDO_KAFKA_CA", None),
    "kafka_cert": ("SDO_KAFKA_CERT", None),
    "kafka_key": ("SDO_KAFKA_KEY", None),
    "kafka_sasl_mechanism": ("SDO_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
    "kafka_user": ("SDO_KAFKA_USER", None),
    "kafka_password_file": ("SDO_KAFKA_PASSWORD_FILE", None),
}

#: The SASL password, when not in a file: an environment variable with no flag (a password
#: on a command line is visible to every user of the machine).
KAFKA_PASSWORD_ENV: Final = "SDO_KAFKA_PASSWORD"  # noqa: S105 (its name, not a password)


def package_data(name: str) -> Path:
    """Path of a file shipped in ``sdo/data``."""
    return Path(str(resources.files("sdo") / "data" / name))


#: Kafka record header carrying a sender's sequence number (ASCII digits): ``sdo replay``
#: sets it to the event's position in the log, so equal timestamps keep log order.
SEQ_HEADER: Final = "sdo-seq"

DEFAULT_AREAS: Final = "areas_pilot.geojson"
DEFAULT_RULES: Final = "rules.json"


def env_default(key: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The default of a flag: its environment variable if set, else the contract default."""
    var, default = ENV[key]
    env = os.environ if environ is None else environ
    return env.get(var) or default


def broker_hosts(url: str) -> list[tuple[str, int]]:
    """The brokers of a broker URL, as (host, port), with a clear error:
    ``kafka://host:port``, ``host:port``, or several to bootstrap from
    (``kafka://k1:9092,k2:9092`` or Faust's ``kafka://k1:9092;kafka://k2:9092``)."""
    hosts = []
    for part in url.replace(";", ",").split(","):
        rest = part.strip()
        rest = (rest.split("://", 1)[1] if "://" in rest else rest).rstrip("/")
        host, sep, port = rest.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(
                f"broker URL {url!r} is not of the form kafka://HOST:PORT[,HOST:PORT]"
            )
        hosts.append((host, int(port)))
    return hosts


def broker_host_port(url: str) -> tuple[str, int]:
    """The first broker of a broker URL (see :func:`broker_hosts`)."""
    return broker_hosts(url)[0]


#: Kafka security protocols and SASL mechanisms the clients (aiokafka, Faust) speak.
_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS: Final = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True, slots=True)
class KafkaAuth:
    """How the Kafka clients connect: the security protocol, TLS files (the CA to trust,
    and a client certificate for mutual TLS) and SASL credentials. Checked when built, so
    a mistake is one line at start-up, not a failed handshake later."""

    protocol: str = "PLAINTEXT"
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    mechanism: str = "SCRAM-SHA-512"
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.protocol not in _PROTOCOLS:
            raise ConfigError(
                f"Kafka security {self.protocol!r} is not one of {', '.join(_PROTOCOLS)}"
            )
        if self.mechanism not in _MECHANISMS:
            raise ConfigError(
                f"SASL mechanism {self.mechanism!r} is not one of {', '.join(_MECHANISMS)}"
            )
        if not self.tls and (self.ca or self.cert or self.key):
            raise ConfigError(
                f"a CA, certificate or key is for TLS: Kafka security is {self.protocol}, "
                "not SSL or SASL_SSL"
            )
        if (self.cert is None) != (self.key is None):
            raise ConfigError("a client certificate and its key go together: give both or neither")
        if self.sasl and not (self.user and self.password):
            raise ConfigError(
                f"Kafka security {self.protocol} needs a user and a password (--kafka-user, "
                f"and --kafka-password-file or {KAFKA_PASSWORD_ENV})"
            )
        if not self.sasl and (self.user or self.password):
            raise ConfigError(
                f"a Kafka user and password are for SASL: Kafka security is {self.protocol}, "
                "not SASL_PLAINTEXT or SASL_SSL"
            )
        if self.tls:
            self.ssl_context()  # unreadable or mismatched files fail here

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (None without TLS): the system's CAs, or only ``ca``; the
        broker's name is checked against its certificate."""
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=self.ca)
            if self.cert is not None:
                context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as exc:
            files = ", ".join(str(f) for f in (self.ca, self.cert, self.key) if f is not None)
            raise ConfigError(f"cannot load the Kafka TLS files ({files}): {exc}") from None
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for an aiokafka client (producer, consumer, admin)."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl:
            options.update(
                sasl_mechanism=self.mechanism,
                sasl_plain_username=self.user,
                sasl_plain_password=self.password,
            )
        return options


def kafka_auth(
    protocol: str | None,
    *,
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
    mechanism: str | None = None,
    user: str | None = None,
    password_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> KafkaAuth:
    """A :class:`KafkaAuth` from flags: the password from ``password_file`` (its first
    line) or else :data:`KAFKA_PASSWORD_ENV`."""
    env = os.environ if environ is None else environ
    password = env.get(KAFKA_PASSWORD_ENV) or None
    if password_file is not None:
        try:
            lines = password_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read the Kafka password file {password_file}: {exc}"
            ) from None
        password = lines[0] if lines and lines[0] else None
        if password is None:
            raise ConfigError(f"the Kafka password file {password_file} is empty")
    return KafkaAuth(
        protocol=(protocol or "PLAINTEXT").upper(),
        ca=ca,
        cert=cert,
        key=key,
        mechanism=(mechanism or "SCRAM-SHA-512").upper(),
        user=user or None,
        password=password,
    )


#: A Kafka topic name: these characters, at most 249 of them.
_TOPIC_CHARS: Final = re.compile(r"[A-Za-z0-9._-]*")
_TOPIC_MAX = 249
#: The longest name a prefix is put before (a Faust changelog's name adds the app id).
_LONGEST_SUFFIX = len("officer.location")


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names of CONTRACT §1 under one prefix.

    The prefix is checked here, before any topic is created: a name the broker would
    refuse (Kafka takes letters, digits, ``.``, ``_`` and ``-``) is a one-line error."""

    prefix: str = "sdo."

    def __post_init__(self) -> None:
        if not _TOPIC_CHARS.fullmatch(self.prefix):
            raise ConfigError(
                f"--topic-prefix {self.prefix!r}: a topic name takes only letters, digits, "
                "'.', '_' and '-'"
            )
        if len(self.prefix) + _LONGEST_SUFFIX > _TOPIC_MAX:
            raise ConfigError(
                f"--topic-prefix is {len(self.prefix)} characters long: topic names are at "
                f"most {_TOPIC_MAX}"
            )

    @property
    def location(self) -> str:
        return f"{self.prefix}officer.location"

    @property
    def status(self) -> str:
        return f"{self.prefix}officer.status"

    @property
    def profile(self) -> str:
        return f"{self.prefix}officer.profile"

    @property
    def incident(self) -> str:
        return f"{self.prefix}incident"

    @property
    def deployment(self) -> str:
        return f"{self.prefix}deployment"

    @property
    def recommendation(self) -> str:
        return f"{self.prefix}recommendation"

    @property
    def alert(self) -> str:
        return f"{self.prefix}alert"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}deadletter"

    @property
    def note(self) -> str:
        """SDOs' notes on incidents (from the console)."""
        return f"{self.prefix}incident.note"

    @property
    def alert_ack(self) -> str:
        """SDOs' acknowledgements of alerts (from the console)."""
        return f"{self.prefix}alert.ack"

    def for_type(self, event_type: str) -> str:
        """The topic an event of ``event_type`` is published to."""
        return {
            "officer.location": self.location,
            "officer.status": self.status,
            "officer.profile": self.profile,
            "incident": self.incident,
            "deployment": self.deployment,
            "recommendation": self.recommendation,
            "alert": self.alert,
            "incident.note": self.note,
            "alert.ack": self.alert_ack,
            "deadletter": self.deadletter,
        }[event_type]

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.location, self.status, self.profile, self.incident, self.deployment)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.recommendation, self.alert, self.deadletter)

    @property
    def console(self) -> tuple[str, ...]:
        """What the console writes beside the deployments, and only consoles read."""
        return (self.note, self.alert_ack)


@dataclass(frozen=True, slots=True)
class Settings:
    """What a command needs to know about its surroundings."""

    broker: str = "kafka://127.0.0.1:9092"
    topic_prefix: str = "sdo."
    areas: Path | None = None
    rules: Path | None = None
    kafka: KafkaAuth = field(default_factory=KafkaAuth)
    #: how far past this process's clock an event time may be (sdo.admission), seconds
    max_ahead_s: float = 300.0

    def __post_init__(self) -> None:
        Topics(self.topic_prefix)  # a prefix Kafka would refuse: one line, before anything
        if not (self.max_ahead_s >= 0 and self.max_ahead_s < 10 * 365 * 86_400):
            raise ConfigError(
                f"--max-ahead {self.max_ahead_s:g}: give seconds, from 0 to under ten years"
            )

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def areas_path(self) -> Path:
        return self.areas if self.areas is not None else package_data(DEFAULT_AREAS)

    @property
    def rules_path(self) -> Path:
        return self.rules if self.rules is not None else package_data(DEFAULT_RULES)

    @property
    def bootstrap(self) -> str:
        """``host:port[,host:port…]``, for an aiokafka client's ``bootstrap_servers``."""
        return ",".join(f"{host}:{port}" for host, port in broker_hosts(self.broker))

    def client_options(self) -> dict[str, Any]:
        """``bootstrap_servers`` and the security options, for an aiokafka client."""
        return {"bootstrap_servers": self.bootstrap, **self.kafka.client_options()}
