"""Console users: tokens shown once, only hashes stored, constant-time checks."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import orjson
import pytest

from sdo.cli import main
from sdo.console.auth import Role, User, Users, add_user, hash_token, load_users, remove_user
from sdo.errors import ConfigError


def test_add_user_stores_only_the_hash_in_a_private_file(tmp_path: Path) -> None:
    """The users file holds the SHA-256 of the token, never the token, and is mode 0600."""
    path = tmp_path / "users.json"
    token, replaced = add_user(path, "sgt.jones", "sdo")
    assert not replaced
    text = path.read_text()
    assert token not in text
    data = orjson.loads(text)
    assert data == {
        "users": [
            {
                "name": "sgt.jones",
                "role": "sdo",
                "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
            }
        ]
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 43


def test_authenticate_finds_the_user_by_token(tmp_path: Path) -> None:
    """Each token maps to its own user and role; wrong, empty or absurd tokens map to none."""
    path = tmp_path / "users.json"
    t1, _ = add_user(path, "sdo1", Role.SDO)
    t2, _ = add_user(path, "watcher", Role.VIEWER)
    users = Users(path)
    assert users.authenticate(t1) == User("sdo1", Role.SDO)
    assert users.authenticate(t2) == User("watcher", Role.VIEWER)
    assert users.authenticate(t2).can_decide is False  # type: ignore[union-attr]
    for bad in ["", "nope", t1 + "x", None, 42, "x" * 10_000]:
        assert users.authenticate(bad) is None


def test_users_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    """A user added while the console runs can log in without a restart."""
    path = tmp_path / "users.json"
    add_user(path, "first", "sdo")
    users = Users(path)
    token, _ = add_user(path, "second", "viewer")
    assert users.authenticate(token) == User("second", Role.VIEWER)


def test_adding_an_existing_user_rotates_the_token(tmp_path: Path) -> None:
    """Re-adding a name replaces its token: the old one stops working."""
    path = tmp_path / "users.json"
    old, _ = add_user(path, "sdo1", "sdo")
    new, replaced = add_user(path, "sdo1", "viewer")
    assert replaced
    users = Users(path)
    assert users.authenticate(old) is None
    assert users.authenticate(new) == User("sdo1", Role.VIEWER)
    assert [u.name for u in load_users(path)] == ["sdo1"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("not json", "not JSON"),
        ('{"people": []}', "expected"),
        ('{"users": [{"name": "a", "role": "boss", "token_sha256": "' + "0" * 64 + '"}]}', "role"),
        ('{"users": [{"name": "a", "role": "sdo", "token_sha256": "xyz"}]}', "token_sha256"),
        (
            '{"users": [{"name": "a", "role": "sdo", "token_sha256": "'
            + "0" * 64
            + '", "token": "t"}]}',
            "exactly",
        ),
    ],
)
def test_malformed_users_file_is_a_config_error(
    tmp_path: Path, content: str, fragment: str
) -> None:
    """A broken users file is reported with the file and what is wrong, never a traceback."""
    path = tmp_path / "users.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=fragment):
        Users(path)


def test_missing_users_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sdo users add"):
        Users(tmp_path / "absent.json")


def test_cli_prints_the_token_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``sdo users add`` prints the token alone on stdout; the file holds its hash."""
    path = tmp_path / "u.json"
    assert main(["users", "add", "sgt.jones", "--role", "sdo", "--users", str(path)]) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert "sgt.jones" in err and token not in err
    assert Users(path).authenticate(token) == User("sgt.jones", Role.SDO)
    assert orjson.loads(path.read_bytes())["users"][0]["token_sha256"] == hash_token(token)


def test_cli_bad_role_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["users", "add", "x", "--role", "admin", "--users", str(tmp_path / "u.json")])
    assert not (tmp_path / "u.json").exists()


def test_cli_lists_and_removes_users(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``sdo users list`` prints each user's name and role, never a token or its hash;
    ``sdo users remove`` takes one out (their token then opens nothing); removing a user
    who is not there is one line and exit 2."""
    path = tmp_path / "u.json"
    jones, _ = add_user(path, "sgt.jones", "sdo")
    add_user(path, "pc.watch", "viewer")
    capsys.readouterr()
    assert main(["users", "list", "--users", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["name       role", "sgt.jones  sdo", "pc.watch   viewer"]
    assert jones not in out + err and hash_token(jones) not in out + err
    assert main(["users", "remove", "sgt.jones", "--users", str(path)]) == 0
    assert "removed user 'sgt.jones'" in capsys.readouterr().err
    assert [u.name for u in load_users(path)] == ["pc.watch"]
    assert Users(path).authenticate(jones) is None
    assert main(["users", "remove", "sgt.jones", "--users", str(path)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"no user 'sgt.jones' in {path}")


def test_a_session_holds_until_its_user_changes(tmp_path: Path) -> None:
    """A session holds while its user keeps the same token and role in the file; a new
    token (even with the same role) or a removal ends it."""
    path = tmp_path / "u.json"
    token, _ = add_user(path, "sgt.jones", "sdo")
    users = Users(path)
    session = users.login(token)
    assert session is not None and users.holds(session)
    add_user(path, "other", "viewer")
    users.refresh()
    assert users.holds(session)
    add_user(path, "sgt.jones", "sdo")  # the token replaced, the role kept
    users.refresh()
    assert not users.holds(session)
    again = users.login(add_user(path, "sgt.jones", "sdo")[0])
    assert again is not None
    remove_user(path, "sgt.jones")
    users.refresh()
    assert not users.holds(again)
