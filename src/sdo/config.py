"""Settings shared by the commands, read once at start-up (CONTRACT §5).

Every setting has a flag and an environment variable of the same meaning; the flag wins.
Nothing else in sdo reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

from sdo.errors import ConfigError

__all__ = [
    "DEFAULT_AREAS",
    "DEFAULT_RULES",
    "ENV",
    "SEQ_HEADER",
    "Settings",
    "Topics",
    "broker_host_port",
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
}


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


def broker_host_port(url: str) -> tuple[str, int]:
    """``kafka://host:port`` (or ``host:port``) -> (host, port), with a clear error."""
    rest = url.split("://", 1)[1] if "://" in url else url
    rest = rest.split(",", 1)[0].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"broker URL {url!r} is not of the form kafka://HOST:PORT")
    return host, int(port)


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names of CONTRACT §1 under one prefix."""

    prefix: str = "sdo."

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
            "deadletter": self.deadletter,
        }[event_type]

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.location, self.status, self.profile, self.incident, self.deployment)

    @property
    def outputs(self) -> tuple[str, ...]:
        return (self.recommendation, self.alert, self.deadletter)


@dataclass(frozen=True, slots=True)
class Settings:
    """What a command needs to know about its surroundings."""

    broker: str = "kafka://127.0.0.1:9092"
    topic_prefix: str = "sdo."
    areas: Path | None = None
    rules: Path | None = None

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
        host, port = broker_host_port(self.broker)
        return f"{host}:{port}"
