//! The RPC wire (spec 08-S04, S11, S12), as `doc/rpc-wire.md` sets it down
//! for implementations in any language: a frame is a 4-byte big-endian
//! length, then one MessagePack array of eight elements:
//!
//! ```text
//! [wire_version, kind, call_id, interface, [major, minor], opnum, context, body]
//! ```
//!
//! The header is written and read field by field (so a frame's body is
//! never decoded twice); the body is one MessagePack value written by
//! `rmp_serde::to_vec_named` (structs as maps keyed by field name, enums
//! externally tagged by variant name, `u128` as 16 big-endian bytes).
//!
//! Everything read here may come from a hostile peer: [`Frame::decode`]
//! checks every length against the bytes there are and the frame's limit,
//! and never panics.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// The wire's version: the first element of every frame.
pub const WIRE_VERSION: u64 = 1;
/// The length prefix's size.
pub const PREFIX: usize = 4;
/// A frame's largest size (after the prefix) unless a binding sets another.
pub const DEFAULT_MAX_FRAME: usize = 16 << 20;
/// How deep a body's values may nest.
const MAX_DEPTH: usize = 256;

/// What a frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Client → server: bind to (interface, version) before any call (S02).
    Bind = 0,
    /// Server → client: the bind is accepted; `version` is the server's.
    BindAck = 1,
    /// Client → server: call `opnum` with the arguments in `body`.
    Request = 2,
    /// Server → client: the result of call `call_id`, in `body`.
    Response = 3,
    /// Server → client: call (or bind) `call_id` failed; `body` is a
    /// [`FaultBody`].
    Fault = 4,
    /// Client → server: the client no longer waits for call `call_id`.
    Cancel = 5,
}

impl Kind {
    fn from_wire(v: u64) -> Option<Kind> {
        Some(match v {
            0 => Kind::Bind,
            1 => Kind::BindAck,
            2 => Kind::Request,
            3 => Kind::Response,
            4 => Kind::Fault,
            5 => Kind::Cancel,
            _ => return None,
        })
    }
}

/// An interface's identity: its UUID's 16 bytes, in the order the UUID
/// is written (RFC 9562: `00112233-4455-…` is `[0x00, 0x11, 0x22, …]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InterfaceId(pub [u8; 16]);

impl InterfaceId {
    /// Parses the usual text form (`8-4-4-4-12` hex digits, any case).
    ///
    /// # Errors
    /// `InvalidParameter` for anything else.
    pub fn parse(text: &str) -> Result<InterfaceId> {
        let bad = || Error::InvalidParameter("an interface id is a UUID: 8-4-4-4-12 hex digits");
        let groups: Vec<&str> = text.split('-').collect();
        if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
            return Err(bad());
        }
        let hex: String = groups.concat();
        let mut id = [0u8; 16];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
        }
        Ok(InterfaceId(id))
    }
}

impl std::fmt::Display for InterfaceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// One frame; its body is kept as the MessagePack bytes it arrived as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// What it is.
    pub kind: Kind,
    /// The call it belongs to (the client numbers its calls).
    pub call_id: u64,
    /// The interface.
    pub interface: InterfaceId,
    /// The interface version `(major, minor)`.
    pub version: (u16, u16),
    /// The method's number (requests; 0 otherwise).
    pub opnum: u32,
    /// A context handle or object the call is on, if any.
    pub context: Option<[u8; 16]>,
    /// One MessagePack value: the arguments as an array (requests), the
    /// result (responses), a [`FaultBody`] (faults), nil (the others).
    pub body: &'a [u8],
}

/// A fault's body: `{"code": …, "space": …, "message": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FaultBody {
    /// The classic code.
    pub code: u32,
    /// Its space: 0 Win32, 1 HRESULT, 2 DDE, 3 RPC status (see `Code`).
    pub space: u8,
    /// What went wrong, for people.
    pub message: String,
}

/// The MessagePack nil: the body of frames that carry none.
pub const NIL: &[u8] = &[0xc0];

fn malformed(what: impl std::fmt::Display) -> Error {
    Error::Malformed(format!("an RPC frame: {what}"))
}

impl Frame<'_> {
    /// Appends the frame, length prefix first, to `out`.
    ///
    /// # Errors
    /// `InvalidParameter` when it would be larger than `max`.
    pub fn encode_into(&self, out: &mut Vec<u8>, max: usize) -> Result<()> {
        let start = out.len();
        out.extend_from_slice(&[0; PREFIX]);
        self.encode_payload(out, max).inspect_err(|_| out.truncate(start))?;
        let len = u32::try_from(out.len() - start - PREFIX).map_err(|_| {
            out.truncate(start);
            Error::InvalidParameter("an RPC frame over 4 GiB")
        })?;
        out[start..start + PREFIX].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Appends the frame without its length prefix: what a link carries
    /// (a link keeps message boundaries; a stream binding writes the prefix).
    ///
    /// # Errors
    /// `InvalidParameter` when it would be larger than `max` (nothing appended).
    pub fn encode_payload(&self, out: &mut Vec<u8>, max: usize) -> Result<()> {
        let start = out.len();
        write_header(self, out);
        out.extend_from_slice(self.body);
        if out.len() - start > max {
            out.truncate(start);
            return Err(Error::InvalidParameter("an RPC frame is larger than the binding's maximum"));
        }
        Ok(())
    }

    /// The frame's bytes, length prefix first.
    ///
    /// # Errors
    /// As [`Frame::encode_into`].
    pub fn encode(&self, max: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(PREFIX + 48 + self.body.len());
        self.encode_into(&mut out, max)?;
        Ok(out)
    }

    /// Appends the frame's header alone (its `body` is not written): the
    /// body written after it, with [`write_body`], completes the frame
    /// without an intermediate buffer.
    pub fn encode_header(&self, out: &mut Vec<u8>) {
        write_header(self, out);
    }

    /// Reads a frame from `payload`, the bytes after its length prefix.
    ///
    /// # Errors
    /// `Malformed` for anything that is not a frame of this wire version:
    /// a wrong element count, an unknown kind, an out-of-range number, a
    /// body that is not exactly one MessagePack value, nesting deeper
    /// than 256.
    pub fn decode(payload: &[u8]) -> Result<Frame<'_>> {
        let frame = Frame::decode_lazy(payload)?;
        check_one_value(frame.body)?;
        Ok(frame)
    }

    /// As [`Frame::decode`], but the body is only checked when it is read
    /// ([`from_body`] refuses anything but exactly one value of its type):
    /// a call's path parses its body once.
    ///
    /// # Errors
    /// `Malformed`, as [`Frame::decode`], for the header.
    pub fn decode_lazy(payload: &[u8]) -> Result<Frame<'_>> {
        let mut rd = payload;
        let n = rmp::decode::read_array_len(&mut rd).map_err(|e| malformed(format!("not an array ({e})")))?;
        if n != 8 {
            return Err(malformed(format!("{n} elements, not 8")));
        }
        let version = read_uint(&mut rd, "the wire version")?;
        if version != WIRE_VERSION {
            return Err(malformed(format!("wire version {version}, this side speaks {WIRE_VERSION}")));
        }
        let kind = read_uint(&mut rd, "the kind")?;
        let kind = Kind::from_wire(kind).ok_or_else(|| malformed(format!("unknown kind {kind}")))?;
        let call_id = read_uint(&mut rd, "the call id")?;
        let interface = InterfaceId(read_bin16(&mut rd, "the interface")?);
        if rmp::decode::read_array_len(&mut rd).map_err(|e| malformed(format!("the version ({e})")))? != 2 {
            return Err(malformed("the version is not [major, minor]"));
        }
        let major = narrow(read_uint(&mut rd, "the major version")?, "the major version")?;
        let minor = narrow(read_uint(&mut rd, "the minor version")?, "the minor version")?;
        let opnum = narrow(read_uint(&mut rd, "the opnum")?, "the opnum")?;
        let context = match rd.first() {
            Some(0xc0) => {
                rd = &rd[1..];
                None
            }
            _ => Some(read_bin16(&mut rd, "the context")?),
        };
        if rd.is_empty() {
            return Err(malformed("no body"));
        }
        Ok(Frame { kind, call_id, interface, version: (major, minor), opnum, context, body: rd })
    }
}

fn write_header(f: &Frame<'_>, out: &mut Vec<u8>) {
    // Writes to a Vec cannot fail.
    let _ = rmp::encode::write_array_len(out, 8);
    let _ = rmp::encode::write_uint(out, WIRE_VERSION);
    let _ = rmp::encode::write_uint(out, f.kind as u64);
    let _ = rmp::encode::write_uint(out, f.call_id);
    let _ = rmp::encode::write_bin(out, &f.interface.0);
    let _ = rmp::encode::write_array_len(out, 2);
    let _ = rmp::encode::write_uint(out, u64::from(f.version.0));
    let _ = rmp::encode::write_uint(out, u64::from(f.version.1));
    let _ = rmp::encode::write_uint(out, u64::from(f.opnum));
    let _ = match f.context {
        None => rmp::encode::write_nil(out).map_err(|_| ()),
        Some(c) => rmp::encode::write_bin(out, &c).map_err(|_| ()),
    };
}

fn read_uint(rd: &mut &[u8], what: &str) -> Result<u64> {
    rmp::decode::read_int::<u64, _>(rd).map_err(|e| malformed(format!("{what} ({e})")))
}

fn narrow<T: TryFrom<u64>>(v: u64, what: &str) -> Result<T> {
    T::try_from(v).map_err(|_| malformed(format!("{what} {v} is out of range")))
}

fn read_bin16(rd: &mut &[u8], what: &str) -> Result<[u8; 16]> {
    let len = rmp::decode::read_bin_len(rd).map_err(|e| malformed(format!("{what} ({e})")))?;
    if len != 16 || rd.len() < 16 {
        return Err(malformed(format!("{what} is {len} bytes, not 16")));
    }
    let (bytes, rest) = rd.split_at(16);
    *rd = rest;
    Ok(bytes.try_into().expect("16 bytes"))
}

/// Whether `body` is exactly one MessagePack value (nesting at most
/// [`MAX_DEPTH`]).
fn check_one_value(body: &[u8]) -> Result<()> {
    let mut rd = body;
    let mut de = rmp_serde::Deserializer::new(&mut rd);
    de.set_max_depth(MAX_DEPTH);
    <serde::de::IgnoredAny as serde::Deserialize>::deserialize(&mut de)
        .map_err(|e| malformed(format!("the body ({e})")))?;
    match rd.is_empty() {
        true => Ok(()),
        false => Err(malformed(format!("{} bytes after the body", rd.len()))),
    }
}

/// A value as a body: MessagePack, structs as maps by field name.
///
/// # Errors
/// `InvalidParameter` for a value MessagePack cannot hold (a map key that
/// is not a value, a sequence of unknown length over 4 Gi elements).
pub fn to_body<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(value).map_err(|_| Error::InvalidParameter("a value MessagePack cannot hold"))
}

/// Appends `value` as a body (as [`to_body`] writes it).
///
/// # Errors
/// As [`to_body`]; `out` may then hold part of the value.
pub fn write_body<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    rmp_serde::encode::write_named(out, value).map_err(|_| Error::InvalidParameter("a value MessagePack cannot hold"))
}

/// A body as a value of type `T`.
///
/// # Errors
/// `Malformed` when it is not exactly one (bytes left over included).
pub fn from_body<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    match value_len(body) {
        Some(n) if n == body.len() => {}
        Some(n) => return Err(malformed(format!("{} bytes after the body", body.len() - n))),
        None => return Err(malformed("the body is cut short, or is not MessagePack")),
    }
    // Read in place: byte strings are borrowed, and copied once into
    // the value.
    let mut de = rmp_serde::Deserializer::from_read_ref(body);
    de.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut de).map_err(|e| malformed(format!("the body is not the type expected ({e})")))
}

/// The length of the one MessagePack value `bytes` starts with, by its
/// markers alone (nothing decoded, nothing allocated); `None` when it is
/// cut short or holds a marker MessagePack does not have.
fn value_len(bytes: &[u8]) -> Option<usize> {
    // A big-endian length of `n` bytes at `at`.
    let len = |at: usize, n: usize| -> Option<usize> {
        let b = bytes.get(at..at + n)?;
        Some(b.iter().fold(0usize, |acc, x| (acc << 8) | usize::from(*x)))
    };
    let (mut pos, mut values) = (0usize, 1u64);
    while values > 0 {
        values -= 1;
        let marker = *bytes.get(pos)?;
        pos += 1;
        // (bytes after the marker to skip, values inside it)
        let (skip, inside) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (usize::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (1 + len(pos, 1)?, 0),
            0xc5 | 0xda => (2 + len(pos, 2)?, 0),
            0xc6 | 0xdb => (4 + len(pos, 4)?, 0),
            0xc7 => (2 + len(pos, 1)?, 0),
            0xc8 => (3 + len(pos, 2)?, 0),
            0xc9 => (5 + len(pos, 4)?, 0),
            0xca | 0xce | 0xd2 => (4, 0),
            0xcb | 0xcf | 0xd3 => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, len(pos, 2)? as u64),
            0xdd => (4, len(pos, 4)? as u64),
            0xde => (2, 2 * len(pos, 2)? as u64),
            0xdf => (4, 2 * len(pos, 4)? as u64),
            0xc1 => return None,
        };
        pos = pos.checked_add(skip).filter(|p| *p <= bytes.len())?;
        values += inside;
        // Every value takes a byte at least: more than there are is a lie.
        if values > (bytes.len() - pos) as u64 {
            return None;
        }
    }
    Some(pos)
}

/// Asserts that the marker walk and a full parse agree on whether `bytes`
/// is exactly one value (for the fuzz targets).
#[cfg(feature = "fuzz")]
pub(crate) fn check_extent(bytes: &[u8]) {
    let deep = bytes.iter().filter(|b| matches!(**b, 0x80..=0x9f | 0xdc..=0xdf)).count() > MAX_DEPTH;
    if !deep {
        assert_eq!(value_len(bytes) == Some(bytes.len()), check_one_value(bytes).is_ok(), "{bytes:02x?}");
    }
}

/// The length a prefix announces, checked against `max`.
///
/// # Errors
/// `Malformed` for a length over `max` (the connection should close: the
/// stream cannot be resynchronised).
pub fn announced_len(prefix: [u8; PREFIX], max: usize) -> Result<usize> {
    let len = u32::from_be_bytes(prefix) as usize;
    match len <= max {
        true => Ok(len),
        false => Err(malformed(format!("{len} bytes announced, over the maximum of {max}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Point {
        x: i32,
        y: i32,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Empty,
        Circle(u32),
        Rect { w: u16, h: u16 },
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Encodes `value`, compares with the documented bytes, and decodes
    /// them back to `value`.
    fn golden<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: T, want: &str) {
        let got = to_body(&value).unwrap();
        assert_eq!(hex(&got), want.replace(' ', ""), "{value:?}");
        assert_eq!(from_body::<T>(&got).unwrap(), value);
    }

    /// The golden vectors of `doc/rpc-wire.md` (the Python client checks
    /// the same list).
    #[test]
    fn rpc_s04_values_are_written_as_documented() {
        golden(5u8, "05");
        golden(-1i8, "ff");
        golden(300u16, "cd 012c");
        golden(-200i32, "d1 ff38");
        golden(u64::MAX, "cf ffffffffffffffff");
        golden(i64::MIN, "d3 8000000000000000");
        golden(1.5f32, "ca 3fc00000");
        golden(1.5f64, "cb 3ff8000000000000");
        golden(true, "c3");
        golden("héllo".to_owned(), "a6 68c3a96c6c6f");
        golden(None::<u8>, "c0");
        golden(Some(7u8), "07");
        golden(vec![1u8, 2, 3], "93 010203");
        golden(serde_bytes::ByteBuf::from(vec![1u8, 2, 3]), "c4 03 010203");
        golden(1u128, "c4 10 00000000000000000000000000000001");
        golden(-1i128, "c4 10 ffffffffffffffffffffffffffffffff");
        golden(Point { x: 1, y: -2 }, "82 a178 01 a179 fe");
        golden(Shape::Empty, "a5 456d707479");
        golden(Shape::Circle(3), "81 a6 436972636c65 03");
        golden(Shape::Rect { w: 2, h: 3 }, "81 a4 52656374 82 a177 02 a168 03");
        golden(BTreeMap::from([("a".to_owned(), 1u8), ("b".to_owned(), 2)]), "82 a161 01 a162 02");
        golden((2u32, 3u32), "92 02 03");
        golden((), "c0");
    }

    const CALC: &str = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";

    #[test]
    fn rpc_s04_a_request_frame_is_written_as_documented() {
        let body = to_body(&(2i32, 3i32)).unwrap();
        let frame = Frame {
            kind: Kind::Request,
            call_id: 1,
            interface: InterfaceId::parse(CALC).unwrap(),
            version: (1, 2),
            opnum: 0,
            context: None,
            body: &body,
        };
        let bytes = frame.encode(DEFAULT_MAX_FRAME).unwrap();
        let want = "0000001e 98 01 02 01 c410 6ba7b8109dad11d180b400c04fd430c8 92 01 02 00 c0 92 02 03";
        assert_eq!(hex(&bytes), want.replace(' ', ""));
        let len = announced_len(bytes[..PREFIX].try_into().unwrap(), DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(len, bytes.len() - PREFIX);
        assert_eq!(Frame::decode(&bytes[PREFIX..]).unwrap(), frame);
        assert_eq!(InterfaceId::parse(CALC).unwrap().to_string(), CALC);
    }

    /// S12: what a hostile peer may send is refused, never a panic.
    #[test]
    fn rpc_s12_malformed_frames_are_refused() {
        let body = to_body(&(2i32, 3i32)).unwrap();
        let good = Frame {
            kind: Kind::Fault,
            call_id: 9,
            interface: InterfaceId([7; 16]),
            version: (1, 0),
            opnum: 3,
            context: Some([1; 16]),
            body: &body,
        }
        .encode(DEFAULT_MAX_FRAME)
        .unwrap();
        let payload = &good[PREFIX..];
        assert!(Frame::decode(payload).is_ok());
        // Every truncation, and trailing garbage.
        for cut in 0..payload.len() {
            assert!(matches!(Frame::decode(&payload[..cut]), Err(Error::Malformed(_))), "cut at {cut}");
        }
        let mut longer = payload.to_vec();
        longer.push(0xc0);
        assert!(Frame::decode(&longer).is_err());
        // A wrong version, an unknown kind, an opnum out of range.
        let mut v2 = payload.to_vec();
        v2[1] = 2;
        assert!(Frame::decode(&v2).is_err());
        let mut kind = payload.to_vec();
        kind[2] = 9;
        assert!(Frame::decode(&kind).is_err());
        // A body nested deeper than the limit.
        let deep: Vec<u8> = std::iter::repeat_n(0x91, 300).chain([0xc0]).collect();
        let frame = Frame { body: &deep, ..Frame::decode(payload).unwrap() };
        let deep_frame = frame.encode(DEFAULT_MAX_FRAME).unwrap();
        assert!(Frame::decode(&deep_frame[PREFIX..]).is_err());
        // Lengths over the maximum, on both sides.
        assert!(announced_len([0xff; 4], DEFAULT_MAX_FRAME).is_err());
        assert!(frame.encode(8).is_err());
        // Random bytes.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let len = (rng % 64) as usize;
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    rng as u8
                })
                .collect();
            let _ = Frame::decode(&junk);
        }
    }

    /// The marker walk `from_body` checks a body's extent with agrees with
    /// a full parse: on every golden value, every cut of them, and random
    /// bytes (a body deeper than the parse's limit aside).
    #[test]
    fn rpc_s12_a_bodys_extent_is_found_by_its_markers_alone() {
        let agrees = |bytes: &[u8]| {
            let parsed = check_one_value(bytes).is_ok();
            assert_eq!(value_len(bytes) == Some(bytes.len()), parsed, "{bytes:02x?}");
        };
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let everything = to_body(&(
            (5u8, -200i32, u64::MAX, 1.5f32, 1.5f64, "héllo", serde_bytes::ByteBuf::from(vec![1, 2, 3])),
            (u128::MAX, i128::MIN, Some(7u8), None::<u8>, vec![Point { x: 1, y: -2 }], BTreeMap::from([("a", 1u8)])),
            (Shape::Empty, Shape::Circle(3), Shape::Rect { w: 2, h: 3 }, (), "x".repeat(300), vec![0u16; 70_000]),
        ))
        .unwrap();
        for cut in 0..=everything.len().min(4096) {
            agrees(&everything[..cut]);
        }
        agrees(&everything);
        let mut extra = everything.clone();
        extra.push(0xc0);
        assert_eq!(value_len(&extra), Some(everything.len()));
        for _ in 0..20_000 {
            let len = (next() % 48) as usize;
            let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            agrees(&junk);
        }
        // A count larger than the bytes left is refused at once.
        assert_eq!(value_len(&[0xdd, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(from_body::<Vec<u8>>(&[0xdd, 0xff, 0xff, 0xff, 0xff]).ok(), None);
        assert_eq!(from_body::<(u8, u8)>(&[0x92, 1, 2, 0xc0]).ok(), None, "bytes left over");
    }
}
