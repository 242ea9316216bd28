"""One error tree.

``SdoError``
  ``BadInput``: something from outside is wrong. Never our bug; reported with a reason.
    ``InvalidEvent``: an event that fails the contract (goes to the dead-letter topic).
    ``Rejected``: a valid event that cannot apply to current state (e.g. a deployment for
    an unknown incident); also dead-lettered, with the reason.
    ``ConfigError``: a bad flag, file or setting (the CLI prints one line and exits 2).
  ``BrokerError``: the broker could not be started or reached.

Anything else that escapes is a bug in sdo and should surface loudly.
"""

from __future__ import annotations

__all__ = [
    "BadInput",
    "BrokerError",
    "ConfigError",
    "InvalidEvent",
    "Rejected",
    "SdoError",
    "UnknownOfficers",
]


class SdoError(Exception):
    """Base of every error sdo raises on purpose."""


class BadInput(SdoError):
    """Input from outside sdo is wrong; the message says how."""

    def __init__(self, reason: str, *, event_type: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_type = event_type


class InvalidEvent(BadInput):
    """An event that does not satisfy the contract."""


class Rejected(BadInput):
    """A valid event that cannot be applied to the current state."""


class UnknownOfficers(Rejected):
    """A deployment names officers not known (yet): ``officer_ids``, in its order."""

    def __init__(self, reason: str, officer_ids: tuple[str, ...]) -> None:
        super().__init__(reason)
        self.officer_ids = officer_ids


class ConfigError(BadInput):
    """A flag, environment variable or file given to sdo is unusable."""


class BrokerError(SdoError):
    """The Kafka broker could not be started or reached."""
