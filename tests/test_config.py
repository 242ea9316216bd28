"""``sdo.config``: settings checked before anything reaches Kafka."""

from __future__ import annotations

import pytest

from sdo.cli import main
from sdo.config import Settings, Topics
from sdo.errors import ConfigError


@pytest.mark.parametrize("prefix", ["sdo.", "t1a2b3c4d.", "force_a-", "", "x" * 233])
def test_a_prefix_kafka_takes(prefix: str) -> None:
    assert Topics(prefix).incident == f"{prefix}incident"
    assert Settings(topic_prefix=prefix).topics.location == f"{prefix}officer.location"


@pytest.mark.parametrize(
    ("prefix", "said"),
    [
        ("bad prefix/", "a topic name takes only letters, digits"),
        ("sdö.", "a topic name takes only letters, digits"),
        ("x" * 234, "topic names are at most 249"),
    ],
)
def test_a_prefix_kafka_would_refuse_is_one_line(
    prefix: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before any topic is created (the embedded broker would take some of these,
    a Kafka cluster not): the worker, the console and replay stop with one line."""
    with pytest.raises(ConfigError, match="--topic-prefix"):
        Settings(topic_prefix=prefix)
    assert main(["replay", "nothing.jsonl", "--topic-prefix", prefix]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0], err
