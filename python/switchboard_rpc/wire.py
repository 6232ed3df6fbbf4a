"""The switchboard RPC wire, version 1 (doc/rpc-wire.md).

A frame is a 4-byte big-endian length, then one MessagePack array of eight
elements: [wire_version, kind, call_id, interface, [major, minor], opnum,
context, body].
"""

import enum
import struct
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import msgpack

WIRE_VERSION = 1
PREFIX = 4
DEFAULT_MAX_FRAME = 16 << 20


class Kind(enum.IntEnum):
    BIND = 0
    BIND_ACK = 1
    REQUEST = 2
    RESPONSE = 3
    FAULT = 4
    CANCEL = 5


@dataclass(frozen=True)
class Frame:
    kind: Kind
    call_id: int
    interface: bytes  # 16 bytes, in the order the UUID is written
    version: Tuple[int, int]
    opnum: int
    context: Optional[bytes]  # 16 bytes, or None
    body: Any  # a value, as unpack returns it


def pack(value: Any, single_float: bool = False) -> bytes:
    """A value as switchboard writes it: str as str, bytes as bin, the
    smallest integer form; floats as float64 unless single_float."""
    return msgpack.packb(value, use_bin_type=True, use_single_float=single_float)


def unpack(data: bytes) -> Any:
    """One value; lists for arrays, dicts for maps (keys in wire order)."""
    if len(data) > DEFAULT_MAX_FRAME:
        raise ValueError("over the maximum frame size")
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def u128(value: int) -> bytes:
    """A u128 as the wire holds it: 16 bytes, big-endian."""
    return value.to_bytes(16, "big", signed=False)


def i128(value: int) -> bytes:
    """An i128 as the wire holds it: 16 bytes, big-endian, two's complement."""
    return value.to_bytes(16, "big", signed=True)


def uuid_bytes(text: str) -> bytes:
    """An interface id's bytes from its usual text form."""
    return bytes.fromhex(text.replace("-", ""))


def encode_frame(frame: Frame, single_float: bool = False) -> bytes:
    """The frame's bytes, length prefix first."""
    payload = pack(
        [
            WIRE_VERSION,
            int(frame.kind),
            frame.call_id,
            frame.interface,
            list(frame.version),
            frame.opnum,
            frame.context,
            frame.body,
        ],
        single_float,
    )
    return struct.pack(">I", len(payload)) + payload


def decode_frame(payload: bytes) -> Frame:
    """A frame from the bytes after its length prefix; ValueError when it
    is not one."""
    items = unpack(payload)
    if not isinstance(items, list) or len(items) != 8:
        raise ValueError("an RPC frame is an array of 8 elements")
    version, kind, call_id, interface, iface_version, opnum, context, body = items
    if version != WIRE_VERSION:
        raise ValueError(f"wire version {version}")
    if not isinstance(interface, bytes) or len(interface) != 16:
        raise ValueError("the interface is 16 bytes")
    if context is not None and (not isinstance(context, bytes) or len(context) != 16):
        raise ValueError("the context is nil or 16 bytes")
    if not isinstance(iface_version, list) or len(iface_version) != 2:
        raise ValueError("the version is [major, minor]")
    return Frame(Kind(kind), call_id, interface, (iface_version[0], iface_version[1]), opnum, context, body)
