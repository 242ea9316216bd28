"""The event-log reader: block reads, line numbers, blank lines, compression, fast fixes."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from sdo.errors import ConfigError
from sdo.evaluation import replay
from sdo.evaluation.replay import read_log
from sdo.events import Fix, OfficerLocation, decode

FIX = {
    "type": "officer.location",
    "event_id": "e",
    "ts": "2015-12-01T09:00:00Z",
    "officer_id": "o1",
    "lat": 52.48,
    "lon": -1.89,
}
STATUS = {
    "type": "officer.status",
    "event_id": "s1",
    "ts": "2015-12-01T09:00:01Z",
    "officer_id": "o1",
    "status": "available",
}


def _lines() -> list[bytes]:
    out = []
    for n in range(40):
        out.append(orjson.dumps({**FIX, "event_id": f"e{n}", "lat": 52.4 + n / 1000}))
        if n % 7 == 0:
            out.append(orjson.dumps({**STATUS, "event_id": f"s{n}"}))
    return out


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("gz", [False, True])
def test_reader_yields_every_line_in_order_whatever_the_block_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int, gz: bool
) -> None:
    """Lines cut across read blocks, CRLF, blank lines and a last line without a newline
    all read as iterating the file line by line would; bad lines keep their numbers."""
    monkeypatch.setattr(replay, "READ_BLOCK", block)
    lines = _lines()
    body = [lines[0], b"", b"  \t", lines[1], b"{not json", *lines[2:-1]]
    text = b"\n".join(body) + b"\r\n\n" + lines[-1]  # CRLF once, no final newline
    path = tmp_path / ("log.jsonl.gz" if gz else "log.jsonl")
    path.write_bytes(gzip.compress(text) if gz else text)
    bad: list[tuple[int, str]] = []
    reader = read_log(path, lambda n, why: bad.append((n, why)))
    got = list(reader)
    reader.close()
    assert got == [decode(line) for line in lines]
    assert [n for n, _ in bad] == [5] and "malformed JSON" in bad[0][1]
    assert reader.skipped == 1


def test_items_gives_plain_fixes_as_fix_tuples(tmp_path: Path) -> None:
    """items() hands plain AVL fixes over unbuilt; iterating gives their models."""
    path = tmp_path / "log.jsonl"
    path.write_bytes(b"\n".join(_lines()) + b"\n")
    reader = read_log(path)
    items = list(reader.items())
    reader.close()
    fixes = [i for i in items if isinstance(i, Fix)]
    assert len(fixes) == 40
    assert not any(isinstance(i, OfficerLocation) for i in items)
    assert [i.model() if isinstance(i, Fix) else i for i in items] == [
        decode(line) for line in _lines()
    ]


def test_one_long_line_is_read_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A line longer than many blocks is joined once, and rejected for its size."""
    monkeypatch.setattr(replay, "READ_BLOCK", 1000)
    big = orjson.dumps({**STATUS, "note": "x" * 100_000})
    path = tmp_path / "log.jsonl"
    path.write_bytes(big + b"\n" + orjson.dumps(FIX) + b"\n")
    bad: list[tuple[int, str]] = []
    reader = read_log(path, lambda n, why: bad.append((n, why)))
    assert [e.event_id for e in reader] == ["e"]
    reader.close()
    assert bad and bad[0][0] == 1 and "larger than" in bad[0][1]


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "header only"])
def test_a_damaged_compressed_log_is_one_clear_error(tmp_path: Path, damage: str) -> None:
    """A cut or corrupted .gz log stops the read with a ConfigError naming the file and
    the last line read, not a decompressor's traceback."""
    data = gzip.compress(b"\n".join(_lines() * 2000) + b"\n")
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "corrupt":
        data = data[:40] + bytes(b ^ 0x5A for b in data[40:200]) + data[200:]
    else:
        data = data[:10]
    path = tmp_path / "log.jsonl.gz"
    path.write_bytes(data)
    reader = read_log(path)
    with pytest.raises(ConfigError, match=r"log\.jsonl\.gz: after line [\d,]+: cannot read"):
        list(reader)
    reader.close()
    if damage == "truncated":
        # the lines read before the cut, also by the evaluator's block reader
        reader = read_log(path)
        with pytest.raises(ConfigError) as err:
            for _ in reader.blocks():
                pass
        reader.close()
        read = int(err.value.args[0].split("after line ")[1].split(":")[0].replace(",", ""))
        assert read > 1000, err.value.args[0]
