//! One round-trip transport per floor and path, behind one [`Echo`] trait:
//! the timing loop is written once, in `mod.rs`.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use switchboard::link::{Link, ShmLink};
use switchboard::mailslot::{Mailslot, MailslotClient};
use switchboard::mapping::View;
use switchboard::pipe::named::{PipeClient, PipeServer};
use switchboard::port::Port;

/// How long a side waits for its peer before declaring it lost.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// One side of a ping-pong of `payload`-byte messages.
pub trait Echo {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()>;
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()>;
    /// Whether the bytes themselves travel (ports carry only a length).
    fn carries_content(&self) -> bool {
        true
    }
}

/// Shared-memory layout of the spin and futex floors: a sequence word per
/// direction (each on its own cache line), then a data area per direction.
pub const SEQ: [usize; 2] = [0, 64];
pub const DATA: usize = 4096;

/// Spin floor: copy into shared memory, publish a sequence number (Release),
/// the peer spins on it (Acquire) and copies out.
pub struct Spin {
    pub view: View,
    pub me: usize,
    pub sent: u64,
    pub seen: u64,
    pub max: usize,
}

impl Spin {
    fn seq(&self, side: usize) -> anyhow::Result<&AtomicU64> {
        Ok(self.view.atomic_u64(SEQ[side])?)
    }
}

impl Echo for Spin {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        self.view.write_bulk(DATA + self.me * self.max, msg)?;
        self.sent += 1;
        self.seq(self.me)?.store(self.sent, Ordering::Release);
        Ok(())
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        let word = self.seq(1 - self.me)?;
        let start = Instant::now();
        let mut n = 0u32;
        while word.load(Ordering::Acquire) == self.seen {
            n = n.wrapping_add(1);
            if n % 4096 == 0 && start.elapsed() > PATIENCE {
                bail!("the peer stopped answering");
            }
            std::hint::spin_loop();
        }
        self.seen += 1;
        buf.resize(len, 0);
        self.view.read_bulk(DATA + (1 - self.me) * self.max, buf)?;
        Ok(())
    }
}

/// Futex floor: the same, but the receiver sleeps in the kernel and the
/// sender always wakes it (one `futex_wake` per message, as raw futex
/// ping-pong does).
pub struct Futex(pub Spin);

impl Futex {
    fn word(&self, side: usize) -> anyhow::Result<&AtomicU32> {
        Ok(self.0.view.atomic_u32(SEQ[side])?)
    }
}

impl Echo for Futex {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        let s = &mut self.0;
        s.view.write_bulk(DATA + s.me * s.max, msg)?;
        s.sent += 1;
        let word = self.word(self.0.me)?;
        word.store(self.0.sent as u32, Ordering::Release);
        switchboard::raw::futex_wake(word, 1);
        Ok(())
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        let word = self.word(1 - self.0.me)?;
        let deadline = Instant::now() + PATIENCE;
        while word.load(Ordering::Acquire) == self.0.seen as u32 {
            if !switchboard::raw::futex_wait(word, self.0.seen as u32, Some(deadline)) {
                bail!("the peer stopped answering");
            }
        }
        self.0.seen += 1;
        buf.resize(len, 0);
        self.0.view.read_bulk(DATA + (1 - self.0.me) * self.0.max, buf)?;
        Ok(())
    }
}

/// Raw byte streams (pipe, Unix stream, TCP): write the bytes, read them back.
pub struct Bytes<R: Read, W: Write> {
    pub reader: R,
    pub writer: W,
}

impl<R: Read, W: Write> Echo for Bytes<R, W> {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        Ok(self.writer.write_all(msg)?)
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        buf.resize(len, 0);
        Ok(self.reader.read_exact(buf)?)
    }
}

/// Any switchboard link.
pub struct Linked(pub Box<dyn Link>);

impl Echo for Linked {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        Ok(self.0.send(msg)?)
    }
    fn recv(&mut self, buf: &mut Vec<u8>, _len: usize) -> anyhow::Result<()> {
        Ok(self.0.recv_timeout(buf, PATIENCE)?)
    }
}

/// Zero-copy samples over a shared-memory link: each message is a fresh
/// loan, sent untouched (what is measured is handing memory over, which
/// costs the same at any size), and read where it was written.
pub struct Loaned(pub ShmLink);

impl Echo for Loaned {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        let loan = self.0.loan(msg.len())?;
        Ok(self.0.send_loan(loan)?)
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        let sample = self.0.recv_borrowed(PATIENCE)?;
        anyhow::ensure!(sample.is_shared() && sample.len() == len, "a loan of {len} B came as {} B", sample.len());
        // The echo answers with a loan of the same length (a no-op after
        // the first round).
        buf.resize(len, 0);
        Ok(())
    }
    fn carries_content(&self) -> bool {
        false
    }
}

/// Completion ports: post a packet to the peer's port, get one from ours.
/// Packets are fixed-size; the payload's length travels as `bytes`.
pub struct Ported {
    pub there: Port,
    pub back: Port,
}

impl Echo for Ported {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        Ok(self.there.post(msg.len() as u32, 1, 2)?)
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        let p = self.back.get(Some(PATIENCE)).context("port get")?;
        buf.resize(p.bytes as usize, 0);
        anyhow::ensure!(p.bytes as usize == len, "packet carried {} not {len}", p.bytes);
        Ok(())
    }
    fn carries_content(&self) -> bool {
        false
    }
}

/// Named pipe, client side: one `transact` (write a message, read the
/// reply message) per round trip.
pub struct Transact {
    pub client: PipeClient,
    pub request: Vec<u8>,
}

impl Echo for Transact {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        self.request.clear();
        self.request.extend_from_slice(msg);
        Ok(())
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        buf.resize(len.max(1), 0);
        let n = self.client.transact(&self.request, buf)?;
        buf.truncate(n);
        Ok(())
    }
}

/// An echo that keeps something alive as long as it runs (a gateway).
#[cfg(feature = "gateway")]
pub struct Kept<E> {
    pub echo: E,
    pub _alive: Box<dyn std::any::Any>,
}

#[cfg(feature = "gateway")]
impl<E: Echo> Echo for Kept<E> {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        self.echo.send(msg)
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        self.echo.recv(buf, len)
    }
}

/// Named pipe, server side: read a message, write it back.
pub struct Serving(pub PipeServer);

impl Echo for Serving {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        Ok(self.0.write(msg)?)
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        buf.resize(len.max(1), 0);
        let n = self.0.read(buf)?;
        buf.truncate(n);
        Ok(())
    }
}

/// Mailslots: write to the peer's mailslot, read from our own. One way is
/// one write and one read; a round trip goes through two mailslots.
pub struct Slotted {
    pub inbox: Mailslot,
    pub out: MailslotClient,
}

impl Echo for Slotted {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        Ok(self.out.write(msg)?)
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        buf.resize(len.max(1), 0);
        let n = self.inbox.read(buf)?;
        buf.truncate(n);
        Ok(())
    }
}

/// Window messages, sender side: one send (`message_send`: a message whose
/// result is its wparam) or one data copy (`copydata`: the result is the
/// byte count) per round trip; the result stands in for the echo.
pub struct Messaged {
    pub to: switchboard::message::ReceiverHandle,
    pub copy: bool,
    pub result: i64,
}

impl Echo for Messaged {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        self.result = match self.copy {
            true => self.to.send_copydata(None, 0, msg)?,
            false => self.to.send(switchboard::message::WM_USER, msg.len() as u64, 0)?,
        };
        Ok(())
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.result == len as i64, "the receiver returned {} for {len} bytes", self.result);
        buf.resize(len, 0);
        Ok(())
    }
    fn carries_content(&self) -> bool {
        false
    }
}

/// Window messages, receiver side: runs the sends as they come (its
/// procedure answers them); nothing to send back. One wait may run
/// several sends (the next one came while it answered): they count as
/// rounds already done.
pub struct Answering {
    pub rx: switchboard::message::Receiver,
    pub ran: usize,
}

impl Echo for Answering {
    fn send(&mut self, _: &[u8]) -> anyhow::Result<()> {
        Ok(())
    }
    fn recv(&mut self, _: &mut Vec<u8>, _: usize) -> anyhow::Result<()> {
        if self.ran == 0 {
            self.ran = self.rx.serve_sent(PATIENCE)?;
            anyhow::ensure!(self.ran > 0, "a posted message where a send was expected");
        }
        self.ran -= 1;
        Ok(())
    }
}

/// `message_post`: a post to the peer's receiver, answered by a post to ours.
pub struct Posting {
    pub to: switchboard::message::ReceiverHandle,
    pub inbox: switchboard::message::Receiver,
}

impl Echo for Posting {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        Ok(self.to.post(switchboard::message::WM_USER, msg.len() as u64, 0)?)
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        let p = self.inbox.get(PATIENCE)?;
        buf.resize(p.wparam as usize, 0);
        anyhow::ensure!(p.wparam as usize == len, "the post carried {} not {len}", p.wparam);
        Ok(())
    }
    fn carries_content(&self) -> bool {
        false
    }
}

/// DDE, client side: `dde_request` requests an item whose value is the
/// payload's size in bytes; `dde_advise` pokes the payload into an item
/// the client keeps a hot link on, and the round trip ends when the
/// update arrives.
pub struct DdeClient {
    pub dde: switchboard::dde::Dde,
    pub conv: switchboard::dde::Conversation,
    pub advise: bool,
    /// The length of the last update (advise) or request's data.
    pub got: std::rc::Rc<std::cell::Cell<Option<usize>>>,
}

impl Echo for DdeClient {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        use switchboard::clipboard::CF_TEXT;
        match self.advise {
            true => self.conv.poke(DDE_ITEM, CF_TEXT, msg, PATIENCE)?,
            false => self.got.set(Some(self.conv.request(&msg.len().to_string(), CF_TEXT, PATIENCE)?.len())),
        }
        Ok(())
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        let until = Instant::now() + PATIENCE;
        // The update comes before the poke's ack: it is here already.
        while self.got.get().is_none() {
            anyhow::ensure!(Instant::now() < until, "no update came");
            self.dde.pump(PATIENCE)?;
        }
        let got = self.got.take();
        anyhow::ensure!(got == Some(len), "{got:?} bytes came for {len}");
        buf.resize(len, 0);
        Ok(())
    }
    fn carries_content(&self) -> bool {
        false
    }
}

/// The item a DDE bench client pokes and advises on.
pub const DDE_ITEM: &str = "v";

/// DDE, server side: runs its loop until the next transaction was served.
pub struct DdeServing {
    pub dde: switchboard::dde::Dde,
    pub served: std::rc::Rc<std::cell::Cell<usize>>,
}

impl Echo for DdeServing {
    fn send(&mut self, _: &[u8]) -> anyhow::Result<()> {
        Ok(())
    }
    fn recv(&mut self, _: &mut Vec<u8>, _: usize) -> anyhow::Result<()> {
        let until = Instant::now() + PATIENCE;
        while self.served.get() == 0 {
            anyhow::ensure!(Instant::now() < until, "no transaction came");
            self.dde.pump(PATIENCE)?;
        }
        self.served.set(self.served.get() - 1);
        Ok(())
    }
}

/// The parent's side of the RPC paths: each echo is one call.
pub struct Called {
    pub calc: switchboard::rpc::calc::CalcClient,
    pub got: switchboard::rpc::calc::ByteBuf,
}

impl Echo for Called {
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        use switchboard::rpc::calc::Calc;
        self.got = self.calc.echo(msg.to_vec().into())?;
        Ok(())
    }
    fn recv(&mut self, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.got.len() == len, "{} bytes came back for {len}", self.got.len());
        buf.clear();
        buf.extend_from_slice(&self.got);
        Ok(())
    }
}

/// The child's side of the RPC paths: the server answers on its own
/// threads; the child's loop only waits, once, for the parent's client to
/// have called and gone.
pub struct RpcServing {
    pub server: switchboard::rpc::Server,
    pub done: bool,
}

impl Echo for RpcServing {
    fn send(&mut self, _: &[u8]) -> anyhow::Result<()> {
        Ok(())
    }
    fn recv(&mut self, _: &mut Vec<u8>, _: usize) -> anyhow::Result<()> {
        if !self.done {
            self.done = self.server.wait_idle(PATIENCE * 10);
            anyhow::ensure!(self.done, "the client never finished");
        }
        Ok(())
    }
}
