//! `Calc`, the example service: what `examples/calc.rs`, `switchboard rpc
//! calc`, the tour and the RPC benchmarks serve and call.
//!
//! ```
//! use switchboard::rpc::calc::{Calc, CalcClient, CalcServer, Calculator};
//! use switchboard::rpc::Server;
//!
//! let name = format!("local:calc-doc-{}", std::process::id());
//! let server = Server::builder().serve(CalcServer(Calculator)).build();
//! server.listen(&name)?;
//! let calc = CalcClient::connect(&name)?;
//! assert_eq!(calc.add(2, 3)?, 5);
//! assert_eq!(calc.div(1, 0).unwrap_err().win32(), 87);
//! # Ok::<(), switchboard::Error>(())
//! ```

pub use serde_bytes::ByteBuf;

use crate::error::{Error, Result};
use crate::rpc::interface;

/// Arithmetic, and an echo for measuring.
#[interface(uuid = "b9b6d3a0-1c1e-4a57-9a43-6f0d3c2e5a10", version = "1.0")]
pub trait Calc {
    /// a + b (wrapping).
    #[opnum(0)]
    fn add(&self, a: i64, b: i64) -> Result<i64>;
    /// a - b (wrapping).
    #[opnum(1)]
    fn sub(&self, a: i64, b: i64) -> Result<i64>;
    /// a × b (wrapping).
    #[opnum(2)]
    fn mul(&self, a: i64, b: i64) -> Result<i64>;
    /// a ÷ b; dividing by zero is InvalidParameter (87).
    #[opnum(3)]
    fn div(&self, a: i64, b: i64) -> Result<i64>;
    /// The sum of the values.
    #[opnum(4)]
    fn sum(&self, values: Vec<f64>) -> Result<f64>;
    /// The bytes, back (the benchmarks' call).
    #[opnum(5)]
    fn echo(&self, data: ByteBuf) -> Result<ByteBuf>;
}

/// The example implementation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Calculator;

impl Calc for Calculator {
    fn add(&self, a: i64, b: i64) -> Result<i64> {
        Ok(a.wrapping_add(b))
    }
    fn sub(&self, a: i64, b: i64) -> Result<i64> {
        Ok(a.wrapping_sub(b))
    }
    fn mul(&self, a: i64, b: i64) -> Result<i64> {
        Ok(a.wrapping_mul(b))
    }
    fn div(&self, a: i64, b: i64) -> Result<i64> {
        a.checked_div(b).ok_or(Error::InvalidParameter("division by zero or overflow"))
    }
    fn sum(&self, values: Vec<f64>) -> Result<f64> {
        Ok(values.iter().sum())
    }
    fn echo(&self, data: ByteBuf) -> Result<ByteBuf> {
        Ok(data)
    }
}
