"""Console users and their bearer tokens.

The users file is JSON::

    {"users": [{"name": "sgt.jones", "role": "sdo", "token_sha256": "<64 hex>"}]}

Only the SHA-256 of each token is stored; the token itself is shown once, when the user is
added. Tokens are 32 random bytes (``secrets.token_urlsafe(32)``), so a fast hash is
enough: there is nothing to brute-force that a salt or a slow KDF would protect. The file
is written atomically (temporary file + ``os.replace``) with mode 0600.

:class:`Users` re-reads the file when it changes (its modification time, inode or size),
so a user added with ``sdo users add`` can log in without restarting the console, and a
user replaced (a new token, another role) or removed (``sdo users remove``) loses what
their open sessions may do: :meth:`Users.holds` tells the console, which checks every
open session twice a second and closes those that no longer hold. Tokens never appear in
logs or error messages.
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
    "Session",
    "User",
    "Users",
    "add_user",
    "cli_add",
    "cli_list",
    "cli_remove",
    "hash_token",
    "load_users",
    "new_token",
    "remove_user",
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


@dataclass(frozen=True, slots=True)
class Session:
    """What an open connection was granted: the user, and the hash of the token it showed
    (so a replaced token ends the session even when name and role stay the same)."""

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
        self._stamp: tuple[int, int, int] | None = None
        self._entries: list[_Entry] = []
        self._reload()

    def _reload(self) -> None:
        try:
            st = self.path.stat()
            # the file is replaced whole (a new inode) on every change; the size and the
            # time catch an edit in place within the file system's time resolution
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_ino, st.st_size)
        except OSError:
            stamp = None
        if stamp is not None and stamp == self._stamp:
            return
        self._entries = _read(self.path)
        self._stamp = stamp

    def refresh(self) -> None:
        """Re-read the file if it changed; an unreadable or broken file keeps the last
        good list (the console logs nothing per check: it is called twice a second)."""
        with contextlib.suppress(ConfigError):
            self._reload()

    def __len__(self) -> int:
        return len(self._entries)

    def login(self, token: object) -> Session | None:
        """The session ``token`` opens, or ``None``.

        Compares against every stored hash with :func:`hmac.compare_digest`, without
        stopping at a match, so timing says nothing about which entry (if any) matched.
        A users file that became unreadable keeps the last good list.
        """
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            return None
        self.refresh()
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found: Session | None = None
        for entry in self._entries:
            if hmac.compare_digest(digest, entry.token_sha256):
                found = Session(entry.user, entry.token_sha256)
        return found

    def authenticate(self, token: object) -> User | None:
        """The user holding ``token``, or ``None`` (see :meth:`login`)."""
        session = self.login(token)
        return None if session is None else session.user

    def holds(self, session: Session) -> bool:
        """Whether ``session`` still stands: its user is in the file with the same role
        and the same token (as last read; call :meth:`refresh` first to see changes)."""
        return any(
            entry.user == session.user
            and hmac.compare_digest(entry.token_sha256, session.token_sha256)
            for entry in self._entries
        )


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


def remove_user(path: Path, name: str) -> bool:
    """Remove ``name`` from the users file; whether it was there. Open sessions of that
    user lose their rights at the console's next check (within a second)."""
    entries = _read(path)
    kept = [e for e in entries if e.user.name != name.strip()]
    if len(kept) == len(entries):
        return False
    records = [
        {"name": e.user.name, "role": e.user.role.value, "token_sha256": e.token_sha256.hex()}
        for e in kept
    ]
    _write_atomic(path, {"users": records})
    return True


def cli_remove(args: argparse.Namespace) -> int:
    """``sdo users remove NAME``: take a user out (their open sessions are closed)."""
    path: Path = args.users
    if not remove_user(path, args.name):
        raise ConfigError(f"no user {args.name!r} in {path}")
    sys.stderr.write(
        f"removed user {args.name!r} from {path}; their open sessions are closed within a second\n"
    )
    return 0


def cli_list(args: argparse.Namespace) -> int:
    """``sdo users list``: one line per user (name and role; tokens are never shown)."""
    path: Path = args.users
    users = load_users(path)
    width = max((len(u.name) for u in users), default=4)
    sys.stdout.write(f"{'name':<{width}}  role\n")
    for user in users:
        sys.stdout.write(f"{user.name:<{width}}  {user.role.value}\n")
    sys.stderr.write(f"{len(users)} user(s) in {path}\n")
    return 0


def cli_add(args: argparse.Namespace) -> int:
    """``sdo users add NAME --role sdo|viewer``: print the new token once, on stdout."""
    path: Path = args.users
    token, replaced = add_user(path, args.name, args.role)
    what = "replaced the token of" if replaced else "added"
    sys.stderr.write(f"{what} {args.role} user {args.name!r} in {path}; the token is shown once:\n")
    sys.stdout.write(token + "\n")
    sys.stdout.flush()
    return 0
