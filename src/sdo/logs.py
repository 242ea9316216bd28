"""Logging set-up: human text or one JSON object per line (``--log-format text|json``).

A JSON line carries ``ts`` (UTC, RFC 3339 with milliseconds), ``level``, ``logger``,
``message``, the exception text as ``exc_info`` when there is one, and every extra field
given with ``log.info("...", extra={"incident_id": "I1"})``. Values JSON cannot hold are
written with ``str()``, so a log call never fails for its arguments.

The console and ``sdo demo`` call :func:`configure_logging`. The Faust worker configures
logging itself when it starts (``mode.Worker`` clears the root handlers and applies a
``logging.config.dictConfig``), so the worker instead passes
:func:`dict_config` to ``faust.Worker(app, ..., logging_config=dict_config(level, fmt))``.
"""

from __future__ import annotations

import logging
import logging.config
from datetime import UTC, datetime
from typing import IO, Any, Final, Literal

import orjson

__all__ = ["FORMATS", "JsonFormatter", "configure_logging", "dict_config"]

Format = Literal["text", "json"]
FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: Attributes every ``LogRecord`` has; anything else on a record came from ``extra=``.
_RESERVED: Final = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
        "message",
        "asctime",
        "taskName",  # 3.12+: set by logging itself, not by the caller
    }
)
#: The worker's ``--loglevel`` spellings and the stdlib's.
_LEVELS: Final = {"crit": "CRITICAL", "warn": "WARNING"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, extra fields, exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")


def _level(level: str | int) -> int | str:
    if isinstance(level, int):
        return level
    return _LEVELS.get(level.lower(), level.upper())


def dict_config(level: str | int = "info", fmt: Format = "text") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping: one stderr handler in ``fmt`` at ``level``.

    Also what ``faust.Worker(..., logging_config=...)`` takes: Faust (``mode``) applies it
    instead of its own coloured handler.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    formatter: dict[str, Any] = {"()": JsonFormatter} if fmt == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"sdo": formatter},
        "handlers": {
            "sdo": {
                "class": "logging.StreamHandler",
                "formatter": "sdo",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": _level(level), "handlers": ["sdo"]},
    }


def configure_logging(
    level: str | int = "info", fmt: Format = "text", *, stream: IO[str] | None = None
) -> None:
    """Configure the root logger: one handler writing ``fmt`` lines to ``stream``
    (stderr by default) at ``level``. Replaces any handlers configured before."""
    config = dict_config(level, fmt)
    if stream is not None:
        config["handlers"]["sdo"]["stream"] = stream
    logging.config.dictConfig(config)
