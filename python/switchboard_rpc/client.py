"""Calls to a switchboard RPC server over a stream binding, from the
documented wire alone (doc/rpc-wire.md).

    from switchboard_rpc import Client
    with Client("tcp:127.0.0.1[4747]") as c:
        c.bind("5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10", (1, 0))
        c.call("5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10", (1, 0), 0, 2, 3)  # -> 5

Bindings: `tcp:HOST[PORT]` and `unix:NAME` (the abstract Unix socket a
switchboard server listens on for `unix:NAME`). `local:` (shared memory)
and `pipe:` need the Rust library.
"""

import socket
import struct
from typing import Any, Dict, Optional, Tuple, Union

from .wire import DEFAULT_MAX_FRAME, PREFIX, Frame, Kind, decode_frame, encode_frame, uuid_bytes

# RPC status codes (space 3) a client meets.
UNKNOWN_IF = 1717
SERVER_UNAVAILABLE = 1722
CALL_CANCELLED = 1818


class RpcError(Exception):
    """A fault from the server: its code, the code's space (0 Win32, 1
    HRESULT, 2 DDE, 3 RPC status) and message."""

    def __init__(self, code: int, space: int, message: str):
        super().__init__(f"{message} (code {code}, space {space})")
        self.code, self.space, self.message = code, space, message


class UnknownInterface(RpcError):
    """The server does not serve the interface at a compatible version (1717)."""


class ServerUnavailable(Exception):
    """Nothing answers at the binding, or the connection broke (1722)."""


class CallTimeout(Exception):
    """The server did not answer within the timeout (1818)."""


def _connect(binding: str, timeout: float) -> socket.socket:
    scheme, _, rest = binding.partition(":")
    try:
        if scheme == "tcp":
            host, _, port = rest.rpartition("[")
            host = host.strip("[]")
            s = socket.create_connection((host, int(port.rstrip("]"))), timeout=timeout)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return s
        if scheme == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect("\0sb1/stream/" + rest)
            return s
    except OSError as e:
        raise ServerUnavailable(f"{binding}: {e}") from e
    raise ValueError(f"{binding}: a Python client speaks tcp:HOST[PORT] and unix:NAME")


def _iface(interface: Union[str, bytes]) -> bytes:
    return interface if isinstance(interface, bytes) else uuid_bytes(interface)


class Client:
    """One connection. Calls may be pipelined: `start` sends, `finish`
    waits for that call's answer (answers are matched by call id)."""

    def __init__(self, binding: str, timeout: float = 60.0):
        self.binding, self.timeout = binding, timeout
        self._sock: Optional[socket.socket] = _connect(binding, timeout)
        self._next = 1
        self._answers: Dict[int, Frame] = {}
        self._buf = b""

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def bind(self, interface: Union[str, bytes], version: Tuple[int, int]) -> Tuple[int, int]:
        """Binds an interface; the server's version. UnknownInterface
        unless the majors match and ours is no newer a minor."""
        frame = self._wait(self._send(Kind.BIND, _iface(interface), version, 0, None))
        return frame.version

    def start(self, interface: Union[str, bytes], version: Tuple[int, int], opnum: int, *args: Any) -> int:
        """Sends a call; its id, for `finish`."""
        return self._send(Kind.REQUEST, _iface(interface), version, opnum, list(args))

    def finish(self, call_id: int) -> Any:
        """The result of call `call_id`; RpcError for a fault."""
        return self._wait(call_id).body

    def call(self, interface: Union[str, bytes], version: Tuple[int, int], opnum: int, *args: Any) -> Any:
        """Calls method `opnum` with `args`; its result."""
        return self.finish(self.start(interface, version, opnum, *args))

    def _send(self, kind: Kind, interface: bytes, version: Tuple[int, int], opnum: int, body: Any) -> int:
        if self._sock is None:
            raise ServerUnavailable(f"{self.binding}: closed")
        call_id, self._next = self._next, self._next + 1
        try:
            self._sock.sendall(encode_frame(Frame(kind, call_id, interface, version, opnum, None, body)))
        except OSError as e:
            self.close()
            raise ServerUnavailable(f"{self.binding}: {e}") from e
        return call_id

    def _wait(self, call_id: int) -> Frame:
        while call_id not in self._answers:
            frame = decode_frame(self._read_frame())
            if frame.kind not in (Kind.RESPONSE, Kind.BIND_ACK, Kind.FAULT):
                self.close()
                raise ServerUnavailable(f"{self.binding}: the server sent a {frame.kind.name} frame")
            self._answers[frame.call_id] = frame
        frame = self._answers.pop(call_id)
        if frame.kind == Kind.FAULT:
            f = frame.body
            error = UnknownInterface if (f["space"], f["code"]) == (3, UNKNOWN_IF) else RpcError
            raise error(f["code"], f["space"], f["message"])
        return frame

    def _read_frame(self) -> bytes:
        head = self._read_exact(PREFIX)
        (length,) = struct.unpack(">I", head)
        if length > DEFAULT_MAX_FRAME:
            self.close()
            raise ServerUnavailable(f"{self.binding}: a frame of {length} bytes announced")
        return self._read_exact(length)

    def _read_exact(self, n: int) -> bytes:
        if self._sock is None:
            raise ServerUnavailable(f"{self.binding}: closed")
        while len(self._buf) < n:
            try:
                chunk = self._sock.recv(max(65536, n - len(self._buf)))
            except socket.timeout as e:
                raise CallTimeout(f"{self.binding}: no answer within {self.timeout} s") from e
            except OSError as e:
                self.close()
                raise ServerUnavailable(f"{self.binding}: {e}") from e
            if not chunk:
                self.close()
                raise ServerUnavailable(f"{self.binding}: the server closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out
