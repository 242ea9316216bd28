"""A TLS listener on loopback in front of the plaintext embedded broker.

The embedded broker (Tansu 0.6) cannot serve TLS itself, so a test that needs a real TLS
connection puts this in front of it, as a production cluster's TLS listener is to its
clients: the broker advertises this port (``EmbeddedBroker(advertised_port=...)``), so
every connection a client makes, bootstrap and partition leaders alike, is a TLS
handshake here (with a client certificate, if the context asks for one) and then Kafka
bytes passed on unchanged. It runs its own event loop in a thread, so it serves the test's
clients and subprocesses alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading

_HOST = "127.0.0.1"


class TlsTerminator:
    """``start()`` listens (``.port``); ``target`` is the plaintext port to pass to."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.target: int | None = None
        self.port = 0
        #: connections whose TLS handshake completed, and that were passed on
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> TlsTerminator:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._handle, _HOST, 0, ssl=self.context))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._call(self._server.wait_closed())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coro: object) -> asyncio.Server:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.target is None:
            writer.close()
            return
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(_HOST, self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, ssl.SSLError, RuntimeError):
            writer.close()
