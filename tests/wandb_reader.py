"""Read back an offline W&B run file (`run-<id>.wandb`) without W&B's own reader.

The file is a 7-byte W&B header followed by a LevelDB-style log: 32 KiB blocks of records,
each `crc32c (4) | length (2, little endian) | type (1: full, 2: first, 3: middle, 4: last)`
followed by a chunk of a serialized `wandb_internal_pb2.Record`."""

from __future__ import annotations

import json
from pathlib import Path

BLOCK, HEADER = 32768, 7


def records(path: Path):
    from wandb.proto.wandb_internal_pb2 import Record

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, chunk = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        if kind == 0:  # zero padding up to the end of the block
            pos += left
            continue
        chunk += data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):
            rec = Record()
            rec.ParseFromString(chunk)
            yield rec
            chunk = b""


def history(path: Path) -> list[dict]:
    """The logged rows (wandb.log calls) of a run file, as dicts."""
    rows = []
    for rec in records(path):
        if rec.WhichOneof("record_type") == "history":
            rows.append({(it.key or "/".join(it.nested_key)): json.loads(it.value_json)
                         for it in rec.history.item})
    return rows
