"""A client of switchboard RPC servers in pure Python, written from the
documented wire (doc/rpc-wire.md) alone: the wire, and calls over the
`tcp:` and `unix:` bindings."""

from .client import CallTimeout, Client, RpcError, ServerUnavailable, UnknownInterface
from .wire import Frame, Kind, WIRE_VERSION, decode_frame, encode_frame, pack, unpack

__all__ = [
    "CallTimeout",
    "Client",
    "Frame",
    "Kind",
    "RpcError",
    "ServerUnavailable",
    "UnknownInterface",
    "WIRE_VERSION",
    "decode_frame",
    "encode_frame",
    "pack",
    "unpack",
]
