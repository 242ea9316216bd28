"""The Faust app takes its settings from sdo's flags, not from Faust's own environment
variables (which would otherwise win over them)."""

from __future__ import annotations

import pytest

from sdo.config import Settings
from sdo.stream.app import WorkerOptions, build_app
from sdo.stream.worker import make_world


def test_faust_environment_variables_do_not_override_sdo_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """BROKER_URL would send the worker to another broker than --broker; WEB_PORT as
    Kubernetes sets it beside a Service called "web" would stop the worker at start."""
    monkeypatch.setenv("BROKER_URL", "kafka://10.9.9.9:1")
    monkeypatch.setenv("WEB_PORT", "tcp://10.0.0.1:80")
    monkeypatch.setenv("TOPIC_REPLICATION_FACTOR", "7")
    monkeypatch.setenv("PRODUCER_MAX_BATCH_SIZE", "16384")
    settings = Settings(broker="kafka://127.0.0.1:19092")
    app, _ = build_app(settings, make_world(settings), WorkerOptions(replication=1))
    assert [str(url) for url in app.conf.broker] == ["kafka://127.0.0.1:19092"]
    assert app.conf.web_port == 6066
    assert app.conf.topic_replication_factor == 1
    # (the officer records of a flush go in batches of this size: see WorkerOptions)
    assert app.conf.producer_max_batch_size == WorkerOptions().producer_batch_bytes == 262_144
