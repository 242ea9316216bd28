"""How sdo connects to a production Kafka cluster: several bootstrap brokers, TLS and SASL
settings from flags and environment, checked at start-up, and what the clients get.

TLS is exercised for real in ``tests/integration/test_kafka_tls.py``; SASL cannot be here
(see that module), so what aiokafka and Faust are handed for it is checked below.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from sdo.cli import build_parser, main, settings_from
from sdo.config import KafkaAuth, Settings, broker_hosts, kafka_auth
from sdo.errors import ConfigError
from sdo.stream.app import faust_credentials


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ca = trustme.CA()
    client = ca.issue_cert("sdo-client.example")
    d = tmp_path_factory.mktemp("pems")
    paths = {"ca": d / "ca.pem", "cert": d / "client.pem", "key": d / "client.key"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    client.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    client.private_key_pem.write_to_path(str(paths["key"]))
    return paths


# -- bootstrap brokers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "hosts"),
    [
        ("kafka://k1:9092", [("k1", 9092)]),
        ("k1:9092", [("k1", 9092)]),
        ("kafka://k1:9092,k2:9093,k3:9094", [("k1", 9092), ("k2", 9093), ("k3", 9094)]),
        ("kafka://k1:9092;kafka://k2:9093", [("k1", 9092), ("k2", 9093)]),
        ("kafka://k1:9092, k2:9093/", [("k1", 9092), ("k2", 9093)]),
    ],
)
def test_every_bootstrap_broker_is_used(url: str, hosts: list[tuple[str, int]]) -> None:
    """A cluster's brokers, comma-separated or Faust's ``;``: all of them bootstrap the
    aiokafka clients, so one broker down at start-up does not stop sdo."""
    assert broker_hosts(url) == hosts
    assert Settings(broker=url).bootstrap == ",".join(f"{h}:{p}" for h, p in hosts)


@pytest.mark.parametrize("url", ["kafka://k1", "kafka://k1:9092,", "kafka://:9092", "k1:99999"])
def test_a_bad_broker_url_is_a_clear_error(url: str) -> None:
    with pytest.raises(ConfigError, match="is not of the form kafka://HOST:PORT"):
        broker_hosts(url)


# -- security settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "TLS"}, "Kafka security 'TLS' is not one of PLAINTEXT, SSL, SASL_"),
        ({"protocol": "SASL_SSL", "mechanism": "GSSAPI", "user": "u", "password": "p"}, "GSSAPI"),
        ({"protocol": "SASL_SSL", "user": "sdo"}, "needs a user and a password"),
        ({"protocol": "SASL_PLAINTEXT", "password": "p"}, "needs a user and a password"),
        ({"protocol": "PLAINTEXT", "user": "sdo", "password": "p"}, "are for SASL"),
        ({"protocol": "PLAINTEXT", "ca": Path("ca.pem")}, "is for TLS: Kafka security is PLAIN"),
        ({"protocol": "SSL", "cert": Path("c.pem")}, "give both or neither"),
        ({"protocol": "SSL", "ca": Path("/nonexistent/ca.pem")}, "cannot load the Kafka TLS"),
    ],
)
def test_a_security_mistake_is_caught_at_start_up(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        KafkaAuth(**kwargs)  # type: ignore[arg-type]


def test_a_certificate_and_a_key_that_do_not_match_are_caught(pems: dict[str, Path]) -> None:
    other = trustme.CA().issue_cert("other.example")
    key = pems["key"].with_name("other.key")
    other.private_key_pem.write_to_path(str(key))
    with pytest.raises(ConfigError, match="cannot load the Kafka TLS files"):
        KafkaAuth("SSL", ca=pems["ca"], cert=pems["cert"], key=key)


def test_the_password_is_not_shown() -> None:
    auth = KafkaAuth("SASL_SSL", user="sdo", password="s3cret-pw")
    assert "s3cret-pw" not in repr(auth) and "s3cret-pw" not in repr(Settings(kafka=auth))


def test_sasl_over_tls_is_what_aiokafka_and_faust_are_handed(pems: dict[str, Path]) -> None:
    """Every aiokafka client (replay, console, the worker's topic set-up and mirror) and
    Faust's own get the same protocol, mechanism and credentials."""
    auth = KafkaAuth(
        "SASL_SSL", ca=pems["ca"], mechanism="SCRAM-SHA-256", user="sdo", password="pw"
    )
    options = auth.client_options()
    context = options.pop("ssl_context")
    assert context is not None and context.check_hostname
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "sdo",
        "sasl_plain_password": "pw",
    }
    via_faust = dict(credentials_to_aiokafka_auth(faust_credentials(auth)))
    assert via_faust.pop("ssl_context") is not None
    assert via_faust == options


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (KafkaAuth(), {"security_protocol": "PLAINTEXT"}),
        (
            KafkaAuth("SASL_PLAINTEXT", mechanism="PLAIN", user="u", password="p"),
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_plain_username": "u",
                "sasl_plain_password": "p",
                "ssl_context": None,
            },
        ),
    ],
)
def test_without_tls_no_context_is_made(auth: KafkaAuth, expected: dict[str, object]) -> None:
    via_faust = dict(credentials_to_aiokafka_auth(faust_credentials(auth)))
    assert via_faust == expected
    assert auth.client_options() == {k: v for k, v in expected.items() if k != "ssl_context"}


def test_tls_alone_hands_faust_the_same_context_settings(pems: dict[str, Path]) -> None:
    auth = KafkaAuth("SSL", ca=pems["ca"], cert=pems["cert"], key=pems["key"])
    via_faust = credentials_to_aiokafka_auth(faust_credentials(auth))
    assert via_faust["security_protocol"] == "SSL" and via_faust["ssl_context"] is not None
    assert auth.client_options()["security_protocol"] == "SSL"


# -- flags and environment -----------------------------------------------------------------


def _settings(argv: list[str]) -> Settings:
    return settings_from(build_parser().parse_args(argv))


def test_security_comes_from_the_environment_and_a_flag_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SDO_KAFKA_SECURITY", "sasl_plaintext")
    monkeypatch.setenv("SDO_KAFKA_USER", "sdo-worker")
    monkeypatch.setenv("SDO_KAFKA_PASSWORD", "from-env")
    monkeypatch.setenv("SDO_KAFKA_SASL_MECHANISM", "scram-sha-256")
    kafka = _settings(["worker"]).kafka
    assert (kafka.protocol, kafka.mechanism, kafka.user, kafka.password) == (
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
        "sdo-worker",
        "from-env",
    )
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    kafka = _settings(
        ["console", "--kafka-user", "sdo-console", "--kafka-password-file", str(secret)]
    ).kafka
    assert (kafka.user, kafka.password) == ("sdo-console", "from-file")


def test_commands_without_kafka_take_no_security_flags() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "log.jsonl", "--kafka-security", "SSL"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--kafka-security", "BOGUS"], "Kafka security 'BOGUS' is not one of"),
        (["--kafka-security", "SASL_SSL"], "needs a user and a password"),
        (["--kafka-password-file", "/nonexistent/pw"], "cannot read the Kafka password file"),
    ],
)
def test_a_security_mistake_on_the_command_line_is_one_line(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("")
    assert main(["replay", str(log), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sdo replay: error: ") and message in err[0], err


def test_an_empty_password_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "pw"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        kafka_auth("SASL_SSL", user="u", password_file=empty, environ={})
