"""The SDO console: websocket hub, users and tokens, the folded view, and the static page.

``auth`` (users file, tokens) · ``view`` (pure picture from events) · ``hub`` (fan-out with
bounded queues) · ``server`` (``sdo console``: HTTP + ``/ws`` + Kafka feed). The wire protocol
is documented in ``docs/console-protocol.md``.
"""
