"""Kafka over TLS with client certificates, as a force's production cluster would ask:
``sdo replay``, ``sdo worker`` (Faust: consumer, producer, tables, the officer mirror) and
the console (consumer and producer) connect through a real TLS listener with the
``--kafka-*`` flags; a mistake in them is one line that says what failed.

The embedded broker cannot serve TLS itself: :class:`tests.tls_terminator.TlsTerminator`
stands in front of it and the broker advertises the terminator, so every connection the
clients make, the test's own reader's too, is a TLS handshake with a client certificate
(trustme's CA).

SASL is not exercised here: Tansu 0.6 with ``--authentication`` creates users only over
an authenticated connection. ``tests/test_kafka_security.py`` checks what sdo hands the
clients for it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme

from sdo.broker import EmbeddedBroker
from sdo.cli import main
from sdo.config import KafkaAuth, Settings, Topics, kafka_auth
from sdo.console.auth import Users, add_user
from sdo.console.server import Console
from sdo.events import encode
from tests.tls_terminator import TlsTerminator

from .conftest import WorkerProcess
from .kafka import Collector
from .test_console import login, wait_until
from .test_worker import NEAR, emergency, officer

pytestmark = pytest.mark.integration

CONSOLE_READY_S = 60.0
FEED_S = 60.0


@dataclass
class TlsKafka:
    broker: EmbeddedBroker
    terminator: TlsTerminator
    dir: Path

    def auth(self) -> KafkaAuth:
        return kafka_auth(
            "SSL", ca=self.dir / "ca.pem", cert=self.dir / "client.pem", key=self.dir / "client.key"
        )

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.terminator.port}"

    def flags(self, **files: Path | None) -> list[str]:
        """``--broker`` and the ``--kafka-*`` flags (``ca=``, ``cert=``, ``key=`` replace
        the good files; None leaves one out)."""
        chosen = {
            "ca": self.dir / "ca.pem",
            "cert": self.dir / "client.pem",
            "key": self.dir / "client.key",
        }
        chosen.update(files)
        out = ["--broker", self.url, "--kafka-security", "SSL"]
        for name, path in chosen.items():
            if path is not None:
                out += [f"--kafka-{name}", str(path)]
        return out


@pytest.fixture(scope="module")
def tls_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsKafka]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.configure_cert(context)
    ca.configure_trust(context)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: a client certificate or nothing
    client = ca.issue_cert("sdo-client.example")
    directory = tmp_path_factory.mktemp("tls")
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    client.cert_chain_pems[0].write_to_path(str(directory / "client.pem"))
    client.private_key_pem.write_to_path(str(directory / "client.key"))
    terminator = TlsTerminator(context).start()
    broker = EmbeddedBroker(advertised_port=terminator.port).start()
    terminator.target = broker.port
    try:
        yield TlsKafka(broker, terminator, directory)
    finally:
        broker.stop()
        terminator.stop()


def _log(path: Path) -> Path:
    events = [*officer("a", NEAR), emergency("I1", 60)]
    path.write_bytes(b"".join(encode(e) + b"\n" for e in events))
    return path


async def test_replay_worker_and_console_work_over_mutual_tls(
    tls_kafka: TlsKafka,
    topic_prefix: str,
    tmp_path: Path,
    start_worker: Callable[..., WorkerProcess],
) -> None:
    """The worker creates the topics and joins its group over TLS, replay publishes a log
    over TLS, the worker recommends, and the console (over TLS) shows the recommendation
    and publishes the SDO's accept."""
    topics = Topics(topic_prefix)
    before = tls_kafka.terminator.connections
    flags = tls_kafka.flags()
    worker = await asyncio.to_thread(start_worker, None, *flags)
    args = ["replay", str(_log(tmp_path / "log.jsonl")), "--speed", "max"]
    assert await asyncio.to_thread(main, [*args, "--topic-prefix", topic_prefix, *flags]) == 0

    bootstrap = f"127.0.0.1:{tls_kafka.terminator.port}"
    security = tls_kafka.auth().client_options()
    async with Collector(bootstrap, topics.recommendation, topics.deployment, **security) as seen:
        recs = await seen.wait_for(
            lambda c: c.values(topics.recommendation), "a recommendation", FEED_S
        )
        assert recs[-1]["incident_id"] == "I1" and recs[-1]["recommended"] == ["a"]

        users = tmp_path / "users.json"
        token, _ = add_user(users, "sgt.jones", "sdo")
        settings = Settings(broker=tls_kafka.url, topic_prefix=topic_prefix, kafka=tls_kafka.auth())
        async with Console(settings, Users(users), bind="127.0.0.1:0") as console:
            await wait_until(lambda: "I1" in console.view.recommendations, FEED_S, "the console")
            page = await login(console, token)
            rec = console.view.recommendations["I1"]
            action = {
                "type": "accept",
                "incident_id": "I1",
                "recommendation_id": rec.recommendation_id,
                "request_id": "r1",
            }
            await page.ws.send(orjson.dumps(action).decode())
            reply: dict[str, Any] = await page.recv_until(lambda p: p.reply("r1"), FEED_S, "ack")
            assert reply["type"] == "ack", reply
            await page.ws.close()
        deployments = await seen.wait_for(
            lambda c: c.values(topics.deployment), "the deployment", FEED_S
        )
    assert [(d["incident_id"], d["officer_ids"], d["by"]) for d in deployments] == [
        ("I1", ["a"], "sgt.jones")
    ]
    assert worker.proc.poll() is None
    assert tls_kafka.terminator.connections > before


async def test_the_console_says_why_it_cannot_reach_kafka_over_tls(
    tls_kafka: TlsKafka, topic_prefix: str, tmp_path: Path
) -> None:
    """A console whose CA does not vouch for the broker keeps trying, and its feed status
    (on every page, and in its log) says what is wrong, not only that Kafka is down."""
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    auth = kafka_auth("SSL", ca=other)
    settings = Settings(broker=tls_kafka.url, topic_prefix=topic_prefix, kafka=auth)
    users = tmp_path / "users.json"
    add_user(users, "sgt.jones", "sdo")
    async with Console(settings, Users(users), bind="127.0.0.1:0") as console:
        await wait_until(lambda: console.health.state == "down", FEED_S, "the feed to be down")
    assert console.health.detail == (
        f"cannot reach Kafka at 127.0.0.1:{tls_kafka.terminator.port}: TLS with "
        f"127.0.0.1:{tls_kafka.terminator.port} failed: the broker's certificate is not "
        "trusted (self-signed certificate in certificate chain); --kafka-ca names the CA "
        "that signed it"
    )


@pytest.mark.parametrize(
    ("files", "said"),
    [
        ("other-ca", "the broker's certificate is not trusted (self-signed certificate in"),
        # (asyncio's TLS server closes the connection rather than send TLS 1.3's alert)
        ("no-client-cert", "the broker closed the connection after the handshake: does it ask"),
    ],
)
def test_a_tls_mistake_is_one_line_that_names_it(
    tls_kafka: TlsKafka,
    topic_prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: str,
    said: str,
) -> None:
    """A CA that does not vouch for the broker, or no client certificate where the broker
    asks for one: exit 1, one line naming the TLS failure (aiokafka alone says only that
    it could not bootstrap)."""
    if files == "other-ca":
        other = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other))
        flags = tls_kafka.flags(ca=other)
    else:
        flags = tls_kafka.flags(cert=None, key=None)
    log = _log(tmp_path / "log.jsonl")
    args = ["replay", str(log), "--speed", "max", "--topic-prefix", topic_prefix, *flags]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("sdo replay: broker error: cannot reach the broker at ")
    assert f"TLS with 127.0.0.1:{tls_kafka.terminator.port} failed: {said}" in err[0], err[0]


def test_tls_against_a_plaintext_listener_is_one_line_that_says_so(
    tls_kafka: TlsKafka,
    topic_prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--kafka-security SSL`` against the broker's own (plaintext) port: the listener
    never answers the TLS handshake, and the one line says that, not an empty reason."""
    flags = tls_kafka.flags()
    flags[flags.index("--broker") + 1] = f"kafka://127.0.0.1:{tls_kafka.broker.port}"
    log = _log(tmp_path / "log.jsonl")
    args = ["replay", str(log), "--speed", "max", "--topic-prefix", topic_prefix, *flags]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert (
        f"TLS with 127.0.0.1:{tls_kafka.broker.port} failed: no TLS answer within 5 s: the "
        "broker does not speak TLS there (a plaintext listener?)"
    ) in err[0], err[0]
