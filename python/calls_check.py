"""The Python side of spec 08-S11, run by the Rust test
`rpc_s11_a_python_client_gets_the_same_results_as_the_rust_one`
(crates/switchboard/tests/rpc.rs) against its `Probe` server:

    python calls_check.py BINDING

makes the same calls the Rust client makes there, checks each result
against the same values, and prints `ok NAME` per check (any failure is an
exception and a non-zero exit)."""

import sys

from switchboard_rpc import Client, RpcError, UnknownInterface
from switchboard_rpc.wire import i128, u128

PROBE = "5b0c1a7e-3f2d-4c8a-9e61-7a2b8c4d9e10"
V = (1, 2)

EVERYTHING = {
    "small": 200,
    "big": 2**64 - 2,
    "negative": -300,
    "wide": i128(-(2**127) + 7),
    "huge": u128((2**128 - 1) // 3),
    "ratio": 0.5,
    "precise": -1.0e-300,
    "flag": True,
    "letter": "ß",
    "text": "héllo, wörld ✓",
    "bytes": b"\x00\x01\x02\xff",
    "maybe": 42,
    "nothing": None,
    "list": [-1, 0, 1, 2**31 - 1],
    "map": {"a": 1, "b": 65535},
    "shapes": ["Dot", {"Circle": 1.5}, {"Line": [-2, 3]}, {"Rect": {"w": 4, "h": 5}}],
    "pair": [7, "seven"],
}


def ok(name: str, got, want) -> None:
    if got != want:
        raise AssertionError(f"{name}: got {got!r}, want {want!r}")
    print(f"ok {name}", flush=True)


def fault(name: str, call, code: int, space: int, message: str) -> None:
    try:
        call()
    except RpcError as e:
        ok(name, (e.code, e.space, e.message), (code, space, message))
        return
    raise AssertionError(f"{name}: no fault")


def main(binding: str) -> None:
    with Client(binding, timeout=60) as c:
        ok("bind", c.bind(PROBE, V), V)
        ok("add", c.call(PROBE, V, 0, 2, 3), 5)
        ok("add_wraps", c.call(PROBE, V, 0, -(2**63), -1), 2**63 - 1)
        ok("echo", c.call(PROBE, V, 2, EVERYTHING), EVERYTHING)
        ok("divide", c.call(PROBE, V, 1, 7, 2), 3)
        fault("divide_by_zero", lambda: c.call(PROBE, V, 1, 1, 0), 0xE0000001, 0, "divide by zero")
        fault("fail", lambda: c.call(PROBE, V, 3, 5, "not you"), 5, 0, "not you")
        fault("no_such_method", lambda: c.call(PROBE, V, 99), 1745, 3,
              "the interface has no method with opnum 99")
        total = c.call(PROBE, V, 5, 10)
        ok("context_handle", (type(total), len(total)), (bytes, 16))
        ok("accumulate", c.call(PROBE, V, 6, total, 5), 15)
        ok("close", c.call(PROBE, V, 7, total), None)
        ok("nothing", c.call(PROBE, V, 11), None)
        calls = [(i, c.start(PROBE, V, 0, i, 1000)) for i in range(200)]
        ok("pipelined", [c.finish(call) for _, call in reversed(calls)], [i + 1000 for i in reversed(range(200))])
        try:
            c.bind(PROBE, (1, 3))
            raise AssertionError("a newer minor was bound")
        except UnknownInterface as e:
            ok("newer_minor", (e.code, e.space), (1717, 3))
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
