//! Device-control strings (classic `BuildCommDCB`,
//! `BuildCommDCBAndTimeouts`, and the `mode` command): the settings a
//! string names, on top of the ones given.
//!
//! Two forms, as Windows reads them (Wine's `kernel32/tests/comm.c` pins
//! the details):
//! - **`key=value` pairs** separated by spaces, keys and values in any
//!   case: `baud=` any number; `parity=` `n`, `o`, `e`, `m` or `s`;
//!   `data=` 5 to 8; `stop=` 1, 1.5 or 2; `xon=`, `octs=`, `odsr=`,
//!   `idsr=` and `to=` `on` or `off`; `dtr=` `on`, `off` or `hs`; `rts=`
//!   `on`, `off`, `hs` or `tg`. No space may lead or follow an `=`, and no
//!   comma may join pairs.
//! - **The old form** `baud,parity,data,stop[,x|p]`, with spaces around
//!   the commas: two-digit rates as `mode` takes them (`96` is 9600, `19`
//!   19200, `11` 110 …, others as written); `x` is XON/XOFF, `p` hardware
//!   handshaking.
//!
//! What the string does not name keeps its value. `xon=on`, `octs=on`
//! (or `rts=hs`) and `odsr=on` choose XON/XOFF, RTS/CTS and DSR/DTR flow
//! control, and `off` takes that one back; `dtr=` and `idsr=` are checked
//! and otherwise have nothing to set here. `to=on` sets a write timeout of
//! 60 s, `to=off` no timeouts at all. The string is only read: whether a
//! port takes the settings is [`super::SerialPort::set_settings`]'s to say
//! (a baud rate of 0 parses, as on Windows, and is refused there).

use super::{FlowControl, LineSettings, Parity, StopBits, Timeouts};
use crate::error::{Error, Result};

/// What a string sets: the line settings, and the timeouts when it names
/// `to=` (classic `BuildCommDCBAndTimeouts`).
///
/// # Errors
/// `InvalidParameter` (87) for a string Windows refuses: an unknown key or
/// value, data bits outside 5–8, stop bits other than 1, 1.5 and 2, a
/// space before or after `=`, a comma between pairs, an old form with
/// fewer or more fields.
///
/// ```
/// use switchboard::serial::{build_dcb, LineSettings, Parity, Timeouts};
///
/// let (s, _) = build_dcb("baud=19200 parity=e data=7 stop=1", &LineSettings::default(), &Timeouts::default())?;
/// assert_eq!((s.baud, s.parity, s.data_bits), (19_200, Parity::Even, 7));
/// let (s, _) = build_dcb("96,n,8,1,x", &LineSettings::default(), &Timeouts::default())?;
/// assert_eq!(s.baud, 9600);
/// assert!(build_dcb("data=9", &LineSettings::default(), &Timeouts::default()).is_err());
/// # Ok::<(), switchboard::Error>(())
/// ```
pub fn build_dcb(text: &str, base: &LineSettings, timeouts: &Timeouts) -> Result<(LineSettings, Timeouts)> {
    let bad = || Error::InvalidParameter("not a device-control string (see serial::build_dcb)");
    let mut s = *base;
    let mut t = *timeouts;
    if text.contains('=') {
        if text.starts_with(char::is_whitespace) {
            return Err(bad());
        }
        for pair in text.split(' ').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(bad)?;
            let value = value.to_ascii_lowercase();
            key_value(&mut s, &mut t, &key.to_ascii_lowercase(), &value).ok_or_else(bad)?;
        }
        return Ok((s, t));
    }
    let fields: Vec<&str> = text.split(',').map(str::trim).collect();
    if !(4..=5).contains(&fields.len()) {
        return Err(bad());
    }
    s.baud = old_baud(fields[0]).ok_or_else(bad)?;
    s.parity = parity(&fields[1].to_ascii_lowercase()).ok_or_else(bad)?;
    s.data_bits = data_bits(fields[2]).ok_or_else(bad)?;
    s.stop_bits = stop_bits(fields[3]).ok_or_else(bad)?;
    s.flow = match fields.get(4).map(|f| f.to_ascii_lowercase()).as_deref() {
        None => FlowControl::None,
        Some("x") => FlowControl::XonXoff,
        Some("p") => FlowControl::RtsCts,
        Some(_) => return Err(bad()),
    };
    Ok((s, t))
}

/// Applies one `key=value`; `None` for what Windows refuses.
fn key_value(s: &mut LineSettings, t: &mut Timeouts, key: &str, value: &str) -> Option<()> {
    match key {
        "baud" => s.baud = digits(value)?,
        "parity" => s.parity = parity(value)?,
        "data" => s.data_bits = data_bits(value)?,
        "stop" => s.stop_bits = stop_bits(value)?,
        "xon" => flow(s, FlowControl::XonXoff, on_off(value)?),
        "octs" => flow(s, FlowControl::RtsCts, on_off(value)?),
        "odsr" => flow(s, FlowControl::DtrDsr, on_off(value)?),
        "idsr" => drop(on_off(value)?),
        "dtr" => drop(matches!(value, "on" | "off" | "hs").then_some(())?),
        "rts" => match value {
            "hs" => flow(s, FlowControl::RtsCts, true),
            "on" | "off" | "tg" => {}
            _ => return None,
        },
        "to" => {
            *t = match on_off(value)? {
                true => Timeouts { write_total_constant: 60_000, ..Timeouts::default() },
                false => Timeouts::default(),
            }
        }
        _ => return None,
    }
    Some(())
}

/// Turns flow control `kind` on, or off if it is the one chosen.
fn flow(s: &mut LineSettings, kind: FlowControl, on: bool) {
    if on {
        s.flow = kind;
    } else if s.flow == kind {
        s.flow = FlowControl::None;
    }
}

fn digits(v: &str) -> Option<u32> {
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())).then(|| v.parse().ok()).flatten()
}

/// The old form's rate: `mode`'s two-digit abbreviations, else as written.
fn old_baud(v: &str) -> Option<u32> {
    Some(match digits(v)? {
        11 => 110,
        15 => 150,
        30 => 300,
        60 => 600,
        12 => 1200,
        24 => 2400,
        48 => 4800,
        96 => 9600,
        19 => 19_200,
        other => other,
    })
}

fn parity(v: &str) -> Option<Parity> {
    Some(match v {
        "n" => Parity::None,
        "o" => Parity::Odd,
        "e" => Parity::Even,
        "m" => Parity::Mark,
        "s" => Parity::Space,
        _ => return None,
    })
}

fn data_bits(v: &str) -> Option<u8> {
    digits(v).filter(|d| (5..=8).contains(d)).map(|d| d as u8)
}

fn stop_bits(v: &str) -> Option<StopBits> {
    Some(match v {
        "1" => StopBits::One,
        "1.5" => StopBits::OnePointFive,
        "2" => StopBits::Two,
        _ => return None,
    })
}

fn on_off(v: &str) -> Option<bool> {
    match v {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}
