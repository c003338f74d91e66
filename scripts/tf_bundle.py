"""Pure-Python reader for TensorFlow tensor-bundle checkpoints (``.index`` + ``.data-*``).

The ``.index`` file is a LevelDB SSTable whose values are ``BundleEntryProto`` messages; the
``.data-00000-of-00001`` shard holds the raw little-endian tensor bytes at the recorded offsets.
Only what TF1 ``Saver`` writes is supported: uncompressed blocks, a single shard, unsliced tensors.
This keeps the conversion free of a TensorFlow dependency.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_TABLE_MAGIC = 0xDB4775248B80FB57
# tensorflow/core/framework/types.proto -> numpy little-endian dtype
_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 6: "i1", 9: "<i8", 10: "?", 19: "<f2"}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one protobuf message into (field number, value) pairs (no schema needed)."""
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value = buf[pos : pos + length]
            pos += length
        elif wire == 5:
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append((number, value))
    return fields


def _block(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """Read one SSTable block (prefix-compressed keys) into (key, value) pairs."""
    if data[offset + size] != 0:  # trailer byte: compression type
        raise ValueError("compressed SSTable blocks are not supported")
    block = data[offset : offset + size]
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    entries: list[tuple[bytes, bytes]] = []
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + vlen]))
        pos += vlen
    return entries


def read_index(index_path: Path) -> dict[str, dict]:
    """Map tensor name -> {dtype, shape, offset, size, shard} from a bundle ``.index`` file."""
    data = Path(index_path).read_bytes()
    (magic,) = struct.unpack_from("<Q", data, len(data) - 8)
    if magic != _TABLE_MAGIC:
        raise ValueError(f"{index_path}: not a LevelDB table (bad magic)")
    footer = data[-48:]
    _, pos = _varint(footer, 0)  # metaindex offset
    _, pos = _varint(footer, pos)  # metaindex size
    idx_off, pos = _varint(footer, pos)
    idx_size, pos = _varint(footer, pos)
    entries: dict[str, dict] = {}
    for _, handle in _block(data, idx_off, idx_size):
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        for key, value in _block(data, off, size):
            if not key:  # the empty key holds the BundleHeaderProto
                continue
            entry: dict = {"shape": [], "offset": 0, "size": 0, "shard": 0}
            for number, field in _proto_fields(value):
                if number == 1:
                    entry["dtype"] = _DTYPES[int(field)]  # type: ignore[index]
                elif number == 2:
                    for dn, dim in _proto_fields(field):  # type: ignore[arg-type]
                        if dn == 2:
                            entry["shape"].append(
                                next((int(v) for n, v in _proto_fields(dim) if n == 1), 0)  # type: ignore[arg-type]
                            )
                elif number == 3:
                    entry["shard"] = int(field)  # type: ignore[arg-type]
                elif number == 4:
                    entry["offset"] = int(field)  # type: ignore[arg-type]
                elif number == 5:
                    entry["size"] = int(field)  # type: ignore[arg-type]
                elif number == 7:
                    raise ValueError(f"{key!r}: sliced tensors are not supported")
            entries[key.decode()] = entry
    return entries


def read_bundle(prefix: str | Path) -> dict[str, np.ndarray]:
    """Read every tensor of the checkpoint ``prefix`` (``prefix.index``, ``prefix.data-*``)."""
    prefix = str(prefix)
    index = read_index(Path(prefix + ".index"))
    shards: dict[int, bytes] = {}
    tensors: dict[str, np.ndarray] = {}
    for name, e in index.items():
        if e["shard"] not in shards:
            shards[e["shard"]] = Path(f"{prefix}.data-{e['shard']:05d}-of-00001").read_bytes()
        raw = shards[e["shard"]][e["offset"] : e["offset"] + e["size"]]
        tensors[name] = np.frombuffer(raw, dtype=e["dtype"]).reshape(e["shape"]).copy()
    return tensors


if __name__ == "__main__":
    import sys

    for k, v in sorted(read_bundle(sys.argv[1]).items()):
        print(k, v.dtype, v.shape)
