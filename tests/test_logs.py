"""``sdo.logs``: text or one JSON object per line, for the console, demo and worker."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import datetime

import orjson
import pytest

from sdo.logs import JsonFormatter, configure_logging, dict_config


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger back as it was (configure_logging replaces its handlers)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("sdo.test", logging.WARNING, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


def test_json_line_has_the_fields_and_extras() -> None:
    """ts (UTC, Z), level, logger, the formatted message, and every extra= field."""
    line = JsonFormatter().format(record("dead letter from %s", "sdo.incident", incident_id="I1"))
    assert "\n" not in line
    out = orjson.loads(line)
    assert out["level"] == "WARNING"
    assert out["logger"] == "sdo.test"
    assert out["message"] == "dead letter from sdo.incident"
    assert out["incident_id"] == "I1"
    assert out["ts"].endswith("Z")
    datetime.fromisoformat(out["ts"].replace("Z", "+00:00"))
    assert "args" not in out and "msg" not in out


def test_json_survives_values_json_cannot_hold_and_exceptions() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys  # noqa: PLC0415

        rec = record("x", thing=object())
        rec.exc_info = sys.exc_info()
    out = orjson.loads(JsonFormatter().format(rec))
    assert out["thing"].startswith("<object")
    assert "ValueError: boom" in out["exc_info"]


def test_configure_logging_json_writes_one_object_per_line(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    log = logging.getLogger("sdo.console.server")
    log.info("console: %s connected", "sgt.jones", extra={"role": "sdo"})
    log.debug("not shown")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    out = orjson.loads(lines[0])
    assert (out["message"], out["role"], out["level"]) == (
        "console: sgt.jones connected",
        "sdo",
        "INFO",
    )


def test_configure_logging_text(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("warn", "text", stream=stream)
    logging.getLogger("sdo.x").warning("careful")
    logging.getLogger("sdo.x").info("quiet")
    assert stream.getvalue().rstrip().endswith("WARNING sdo.x: careful")
    assert "quiet" not in stream.getvalue()


def test_dict_config_is_what_faust_takes() -> None:
    """A complete dictConfig (version 1, root handler) in the worker's level spellings."""
    config = dict_config("crit", "json")
    assert config["version"] == 1
    assert config["root"] == {"level": "CRITICAL", "handlers": ["sdo"]}
    assert config["formatters"]["sdo"]["()"] is JsonFormatter
    assert config["disable_existing_loggers"] is False
    with pytest.raises(ValueError, match="log format"):
        dict_config("info", "xml")  # type: ignore[arg-type]


def test_faust_applies_the_config(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """mode (Faust's worker base) applies our dictConfig instead of its coloured handler."""
    from mode.utils.logging import setup_logging  # noqa: PLC0415

    setup_logging(loglevel="info", logging_config=dict_config("info", "json"))
    logging.getLogger("faust.worker").info("starting")
    err = capsys.readouterr().err.splitlines()
    assert orjson.loads(err[-1])["message"] == "starting"


@pytest.mark.usefixtures("restore_logging")
def test_worker_root_logger_stays_at_the_requested_level() -> None:
    """Faust's spinner would set the root logger to DEBUG at WARN (so every aiokafka frame
    builds a record); the sdo worker has no spinner, so the root keeps the level."""
    import faust  # noqa: PLC0415  (heavy; only this test)

    from sdo.stream.worker import faust_worker  # noqa: PLC0415

    app = faust.App("sdo-test-logs", broker="kafka://127.0.0.1:9", autodiscover=False)
    root = logging.getLogger()
    handlers = len(root.handlers)
    if not handlers:  # the spinner set-up retunes the first handler
        root.addHandler(logging.NullHandler())
        handlers = 1
    first_level = root.handlers[0].level
    try:
        root.setLevel(logging.WARNING)
        plain = faust.Worker(app, loglevel="warning", quiet=True)
        plain.on_setup_root_logger(root, logging.WARNING)  # the reference: Faust as shipped
        assert root.level == logging.DEBUG
        root.handlers[handlers:] = []
        root.setLevel(logging.WARNING)
        faust_worker(app, "warning").on_setup_root_logger(root, logging.WARNING)
        assert root.level == logging.WARNING
        assert len(root.handlers) == handlers
    finally:
        root.handlers[0].setLevel(first_level)
