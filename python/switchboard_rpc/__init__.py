"""A client of switchboard RPC servers in pure Python, written from the
documented wire (doc/rpc-wire.md) alone. So far: the wire."""

from .wire import Frame, Kind, WIRE_VERSION, decode_frame, encode_frame, pack, unpack

__all__ = ["Frame", "Kind", "WIRE_VERSION", "decode_frame", "encode_frame", "pack", "unpack"]
