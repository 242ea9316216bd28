"""Console users and their bearer tokens.

The users file is JSON::

    {"users": [{"name": "sgt.jones", "role": "sdo", "token_sha256": "<64 hex>"}]}

Only the SHA-256 of each token is stored; the token itself is shown once, when the user is
added. Tokens are 32 random bytes (``secrets.token_urlsafe(32)``), so a fast hash is
enough: there is nothing to brute-force that a salt or a slow KDF would protect. The file
is written atomically (temporary file + ``os.replace``) with mode 0600.

:class:`Users` re-reads the file when its modification time changes, so a user added with
``sdo users add`` can log in without restarting the console. Tokens never appear in logs
or error messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sys
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from sdo.errors import ConfigError

if TYPE_CHECKING:
    import argparse

__all__ = [
    "MAX_TOKEN_CHARS",
    "Role",
    "User",
    "Users",
    "add_user",
    "cli_add",
    "hash_token",
    "load_users",
    "new_token",
]

#: Longest token accepted for checking; anything longer is refused without hashing.
MAX_TOKEN_CHARS: Final = 256
_HEX64: Final = frozenset("0123456789abcdef")


class Role(StrEnum):
    """What a console user may do: an ``sdo`` decides, a ``viewer`` only watches."""

    SDO = "sdo"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role

    @property
    def can_decide(self) -> bool:
        return self.role is Role.SDO


@dataclass(frozen=True, slots=True)
class _Entry:
    user: User
    token_sha256: bytes


def new_token() -> str:
    """A fresh random bearer token (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, as stored in the users file."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _parse(path: Path, raw: bytes) -> list[_Entry]:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"users file {path}: not JSON ({exc})") from None
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, list):
        raise ConfigError(f'users file {path}: expected {{"users": [...]}}')
    entries: list[_Entry] = []
    seen: set[str] = set()
    for pos, item in enumerate(users):
        where = f"users file {path}: entry {pos}"
        if not isinstance(item, dict) or set(item) != {"name", "role", "token_sha256"}:
            raise ConfigError(f"{where}: needs exactly name, role and token_sha256")
        name, role, digest = item["name"], item["role"], item["token_sha256"]
        if not isinstance(name, str) or not name.strip() or name in seen:
            raise ConfigError(f"{where}: name must be a unique, non-empty string")
        if role not in {r.value for r in Role}:
            raise ConfigError(f"{where}: role must be 'sdo' or 'viewer'")
        if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX64:
            raise ConfigError(f"{where}: token_sha256 must be 64 lowercase hex digits")
        seen.add(name)
        entries.append(_Entry(User(name, Role(role)), bytes.fromhex(digest)))
    return entries


def load_users(path: Path) -> list[User]:
    """The users in ``path`` (raises :class:`ConfigError` when missing or malformed)."""
    return [e.user for e in _read(path)]


def _read(path: Path) -> list[_Entry]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"users file {path} does not exist; create a user with "
            f"'sdo users add NAME --role sdo --users {path}'"
        ) from None
    except OSError as exc:
        raise ConfigError(f"users file {path}: {exc.strerror}") from None
    return _parse(path, raw)


class Users:
    """Token checking against a users file, reloaded when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: int | None = None
        self._entries: list[_Entry] = []
        self._reload()

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except OSError:
            mtime = None
        if mtime is not None and mtime == self._mtime:
            return
        self._entries = _read(self.path)
        self._mtime = mtime

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: object) -> User | None:
        """The user holding ``token``, or ``None``.

        Compares against every stored hash with :func:`hmac.compare_digest`, without
        stopping at a match, so timing says nothing about which entry (if any) matched.
        A users file that became unreadable keeps the last good list.
        """
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            return None
        with contextlib.suppress(ConfigError):
            self._reload()
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found: User | None = None
        for entry in self._entries:
            if hmac.compare_digest(digest, entry.token_sha256):
                found = entry.user
        return found


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    payload = orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(tmp).unlink()
        raise


def add_user(path: Path, name: str, role: Role | str) -> tuple[str, bool]:
    """Add ``name`` with ``role`` to the users file (created if missing).

    Returns ``(token, replaced)``: the new token, to be shown once, and whether an
    existing user of that name had their token (and role) replaced.
    """
    name = name.strip()
    if not name or len(name) > 128:
        raise ConfigError("a user name must be 1 to 128 characters")
    try:
        role = Role(role)
    except ValueError:
        raise ConfigError(f"role must be 'sdo' or 'viewer', not {role!r}") from None
    entries = _read(path) if path.exists() else []
    token = new_token()
    replaced = any(e.user.name == name for e in entries)
    kept = [e for e in entries if e.user.name != name]
    records = [
        {"name": e.user.name, "role": e.user.role.value, "token_sha256": e.token_sha256.hex()}
        for e in kept
    ]
    records.append({"name": name, "role": role.value, "token_sha256": hash_token(token)})
    _write_atomic(path, {"users": records})
    return token, replaced


def cli_add(args: argparse.Namespace) -> int:
    """``sdo users add NAME --role sdo|viewer``: print the new token once, on stdout."""
    path: Path = args.users
    token, replaced = add_user(path, args.name, args.role)
    what = "replaced the token of" if replaced else "added"
    sys.stderr.write(f"{what} {args.role} user {args.name!r} in {path}; the token is shown once:\n")
    sys.stdout.write(token + "\n")
    sys.stdout.flush()
    return 0
