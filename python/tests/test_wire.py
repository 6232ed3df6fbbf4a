"""The golden vectors of doc/rpc-wire.md, from the Python side: the same
bytes the Rust tests check (crates/switchboard/src/rpc/wire.rs)."""

import unittest

from switchboard_rpc import Frame, Kind, decode_frame, encode_frame, pack, unpack
from switchboard_rpc.wire import i128, u128, uuid_bytes

# (value as Python writes it, whether f32, the documented bytes)
GOLDEN = [
    (5, False, "05"),
    (-1, False, "ff"),
    (300, False, "cd 012c"),
    (-200, False, "d1 ff38"),
    (2**64 - 1, False, "cf ffffffffffffffff"),
    (-(2**63), False, "d3 8000000000000000"),
    (1.5, True, "ca 3fc00000"),
    (1.5, False, "cb 3ff8000000000000"),
    (True, False, "c3"),
    ("héllo", False, "a6 68c3a96c6c6f"),
    (None, False, "c0"),
    (7, False, "07"),
    ([1, 2, 3], False, "93 010203"),
    (b"\x01\x02\x03", False, "c4 03 010203"),
    (u128(1), False, "c4 10 00000000000000000000000000000001"),
    (i128(-1), False, "c4 10 ffffffffffffffffffffffffffffffff"),
    ({"x": 1, "y": -2}, False, "82 a178 01 a179 fe"),
    ("Empty", False, "a5 456d707479"),
    ({"Circle": 3}, False, "81 a6 436972636c65 03"),
    ({"Rect": {"w": 2, "h": 3}}, False, "81 a4 52656374 82 a177 02 a168 03"),
    ({"a": 1, "b": 2}, False, "82 a161 01 a162 02"),
    ([2, 3], False, "92 02 03"),
]

CALC = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"


class GoldenVectors(unittest.TestCase):
    def test_rpc_s11_values_are_written_as_documented(self):
        for value, single, want in GOLDEN:
            with self.subTest(value=value):
                got = pack(value, single)
                self.assertEqual(got.hex(), want.replace(" ", ""))
                self.assertEqual(unpack(got), value)

    def test_rpc_s11_a_request_frame_is_written_as_documented(self):
        frame = Frame(Kind.REQUEST, 1, uuid_bytes(CALC), (1, 2), 0, None, [2, 3])
        got = encode_frame(frame)
        want = "0000001e 98 01 02 01 c410 6ba7b8109dad11d180b400c04fd430c8 92 01 02 00 c0 92 02 03"
        self.assertEqual(got.hex(), want.replace(" ", ""))
        self.assertEqual(decode_frame(got[4:]), frame)

    def test_rpc_s12_what_is_not_a_frame_is_refused(self):
        for bad in [pack([1, 2, 3]), pack([2, 2, 1, uuid_bytes(CALC), [1, 0], 0, None, None])]:
            with self.assertRaises(ValueError):
                decode_frame(bad)


if __name__ == "__main__":
    unittest.main()
