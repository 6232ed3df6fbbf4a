//! File mapping: named shared memory, memory-backed or file-backed (spec 01, S01–S10).
//!
//! A [`Mapping`] is the section object; a [`View`] is a mapped window of it.
//! Memory-backed mappings are sealed memfds (their size cannot change, so a
//! view can never fault); file-backed mappings map the file's descriptor.
//!
//! Decisions where the classic API leaves room:
//! - A view extending past the mapping's size is `AccessDenied`, as
//!   `MapViewOfFile` reports it.
//! - A view's bytes are reached through [`View::read`] and [`View::write`]
//!   (copies made of atomic word accesses: an aligned 8-byte word is never
//!   seen torn), [`View::read_bulk`]/[`View::write_bulk`] (full-speed copies
//!   for bytes nobody writes meanwhile), or [`View::atomic_u64`], never as a
//!   `&mut [u8]`, because another process may write the same memory at any
//!   time (S09).
//! - If a file under a view is truncated by someone else, the access that
//!   touches the lost page returns [`Error::ViewFault`] instead of the
//!   process dying of `SIGBUS`, and the view is unusable from then on (S10).
//! - Access is enforced by switchboard when views are made; every holder that
//!   the ACL admits receives the same descriptor.
//!
//! ```
//! use switchboard::mapping::{Access, Mapping};
//! let m = Mapping::create(None, 4096).unwrap();
//! let v = m.map_view(Access::Write, 0, 0).unwrap();
//! v.write(10, b"hello").unwrap();
//! let mut buf = [0u8; 5];
//! v.read(10, &mut buf).unwrap();
//! assert_eq!(&buf, b"hello");
//! ```

use std::fs::File;
use std::sync::Arc;

use switchboard_sys::mmap::{AccessError, Region};
use switchboard_sys::process::HandleValue;
use switchboard_sys::socket::Conn;
use switchboard_sys::{memfd, OwnedFd};

use crate::error::{Error, Result};
use crate::namespace::{self, Acl, Endpoint, Kind};

/// View offsets must be multiples of this (the classic allocation granularity).
pub const ALLOCATION_GRANULARITY: u64 = 64 * 1024;

/// The allocation granularity (64 KiB), as `GetSystemInfo` reports it.
pub fn allocation_granularity() -> u64 {
    ALLOCATION_GRANULARITY
}

/// The protection a mapping is created with (`PAGE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection {
    /// `PAGE_READONLY`: views may read (or copy-on-write).
    ReadOnly = 1,
    /// `PAGE_READWRITE`: views may read, write or copy-on-write.
    ReadWrite = 2,
    /// `PAGE_WRITECOPY`: views may read or copy-on-write.
    WriteCopy = 3,
}

impl Protection {
    fn from_wire(p: u8) -> Result<Protection> {
        match p {
            1 => Ok(Protection::ReadOnly),
            2 => Ok(Protection::ReadWrite),
            3 => Ok(Protection::WriteCopy),
            _ => Err(Error::Malformed(format!("mapping protection {p}"))),
        }
    }

    fn allows(self, access: Access) -> bool {
        !matches!((self, access), (Protection::ReadOnly | Protection::WriteCopy, Access::Write | Access::All))
    }
}

/// The access a handle or view asks for (`FILE_MAP_*`).
///
/// As on Windows, a handle's access is a set of rights, not a level: a
/// handle opened with `Write` maps write views (which read too) but not
/// read views; one opened with `Read` maps read and copy views. `All`
/// (`FILE_MAP_ALL_ACCESS`, what a creator's handle has) maps any view the
/// mapping's protection allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `FILE_MAP_READ`.
    Read,
    /// `FILE_MAP_WRITE` (a view that reads and writes).
    Write,
    /// `FILE_MAP_COPY`: writes stay private to the view.
    Copy,
    /// `FILE_MAP_ALL_ACCESS`: a handle that maps any view; as a view, the
    /// same as `Write`.
    All,
}

/// The largest size the kernel can give a file (`MAX_LFS_FILESIZE`).
const MAX_MAPPING_SIZE: u64 = i64::MAX as u64;

impl Access {
    /// Whether a handle with `handle` access may map a view with this
    /// access (Wine's `virtual.c`: a `FILE_MAP_WRITE` handle cannot map a
    /// `FILE_MAP_READ` view; a `FILE_MAP_READ` one cannot map a write view).
    fn within(self, handle: Access) -> bool {
        matches!(
            (self, handle),
            (_, Access::All)
                | (Access::Write | Access::All, Access::Write)
                | (Access::Read | Access::Copy, Access::Read | Access::Copy)
        )
    }
}

/// How to create a mapping. Finish with [`MappingBuilder::create`].
#[derive(Debug)]
pub struct MappingBuilder<'a> {
    name: Option<&'a str>,
    size: u64,
    protection: Protection,
    acl: Acl,
    file: Option<&'a File>,
    trust_owner: Option<u32>,
}

impl<'a> MappingBuilder<'a> {
    /// The mapping's name (`None`: unnamed, shareable only by handle).
    pub fn name(mut self, name: impl Into<Option<&'a str>>) -> Self {
        self.name = name.into();
        self
    }
    /// The size in bytes (for a file: 0 means the file's current size).
    pub fn size(mut self, size: u64) -> Self {
        self.size = size;
        self
    }
    /// The protection (default `ReadWrite`).
    pub fn protection(mut self, p: Protection) -> Self {
        self.protection = p;
        self
    }
    /// Who besides this user may open it (default: nobody).
    pub fn acl(mut self, acl: Acl) -> Self {
        self.acl = acl;
        self
    }
    /// When the `Global\` name exists already, also believe it if user
    /// `uid` created it (by default only the caller's user or root).
    pub fn trust_owner(mut self, uid: u32) -> Self {
        self.trust_owner = Some(uid);
        self
    }
    /// Backs the mapping with `file` instead of memory (S04).
    pub fn file(mut self, file: &'a File) -> Self {
        self.file = Some(file);
        self
    }

    /// Creates the mapping, or opens the existing one of that name (S02).
    ///
    /// # Errors
    /// `InvalidParameter` for size 0 (memory-backed) or one over
    /// 2^63 - 1 bytes (what the kernel can size a file to), `FileInvalid` for an
    /// empty file with size 0, `AccessDenied` when the file's open mode does
    /// not allow the protection or it must grow but is read-only,
    /// `InvalidHandle` when the name holds another kind, `InvalidName`.
    pub fn create(self) -> Result<Mapping> {
        let addr = namespace::address_for(Kind::Mapping, self.name)?.trusting(self.trust_owner);
        let mut make = || self.make();
        let endpoint = namespace::create_or_open(Kind::Mapping, &addr, &self.acl, &mut make)?;
        Mapping::from_endpoint(endpoint, Access::All.min_for(self.protection))
    }

    fn make(&self) -> Result<(Vec<OwnedFd>, namespace::ObjectInfo)> {
        if self.size > MAX_MAPPING_SIZE {
            return Err(Error::InvalidParameter("the size is over the largest a mapping can have (2^63 - 1 bytes)"));
        }
        let (fd, size) = match self.file {
            None if self.size == 0 => return Err(Error::InvalidParameter("a memory-backed mapping needs a size")),
            None => (memfd::create_sealed("switchboard-mapping", self.size)?, self.size),
            Some(file) => self.prepare_file(file)?,
        };
        Ok((vec![fd], namespace::describe(Kind::Mapping, size, self.protection as u8)))
    }

    fn prepare_file(&self, file: &File) -> Result<(OwnedFd, u64)> {
        let fd = memfd::duplicate(file)?;
        let writable = memfd::is_writable(&fd);
        if self.protection == Protection::ReadWrite && !writable {
            return Err(Error::AccessDenied("the file is not open for writing".into()));
        }
        let current = memfd::size(&fd)?;
        let size = match self.size {
            0 if current == 0 => return Err(Error::FileInvalid),
            0 => current,
            s => s,
        };
        if size > current {
            if !writable || self.protection != Protection::ReadWrite {
                return Err(Error::AccessDenied("the file must grow but the mapping is not writable".into()));
            }
            memfd::set_size(&fd, size)?;
        }
        Ok((fd, size))
    }
}

impl Access {
    /// The widest handle access a creator gets for `p`.
    fn min_for(self, p: Protection) -> Access {
        if p.allows(self) {
            self
        } else {
            Access::Read
        }
    }
}

#[derive(Debug)]
struct Inner {
    endpoint: Endpoint,
    size: u64,
    protection: Protection,
}

/// A file-mapping object: named (or unnamed) shared memory.
#[derive(Debug)]
pub struct Mapping {
    inner: Arc<Inner>,
    access: Access,
    existed: bool,
}

impl Mapping {
    /// Starts building a mapping.
    pub fn builder<'a>() -> MappingBuilder<'a> {
        MappingBuilder {
            name: None,
            size: 0,
            protection: Protection::ReadWrite,
            acl: Acl::default(),
            file: None,
            trust_owner: None,
        }
    }

    /// Creates zero-filled, memory-backed shared memory of `size` bytes, or
    /// opens the existing mapping of that name with *its* size (S01, S02).
    ///
    /// # Errors
    /// As [`MappingBuilder::create`].
    pub fn create<'a>(name: impl Into<Option<&'a str>>, size: u64) -> Result<Mapping> {
        Mapping::builder().name(name).size(size).create()
    }

    /// Maps `file`; `size` 0 means the file's current size (S04).
    ///
    /// # Errors
    /// As [`MappingBuilder::create`].
    pub fn from_file<'a>(file: &'a File, size: u64, name: impl Into<Option<&'a str>>) -> Result<Mapping> {
        Mapping::builder().file(file).size(size).name(name).create()
    }

    /// Opens an existing mapping with the given access (S03).
    ///
    /// # Errors
    /// `NotFound`, `AccessDenied` when `access` exceeds the mapping's
    /// protection or the ACL refuses, `InvalidHandle` for another kind.
    pub fn open(name: &str, access: Access) -> Result<Mapping> {
        Mapping::open_as(name, access, None)
    }

    /// Opens an existing `Global\` mapping whose creator is user
    /// `owner_uid`. A plain [`Mapping::open`] believes only mappings
    /// created by the caller's user or root, so that another user cannot
    /// squat a name and receive what the caller writes.
    ///
    /// # Errors
    /// As [`Mapping::open`].
    pub fn open_trusting(name: &str, access: Access, owner_uid: u32) -> Result<Mapping> {
        Mapping::open_as(name, access, Some(owner_uid))
    }

    fn open_as(name: &str, access: Access, owner: Option<u32>) -> Result<Mapping> {
        let addr = namespace::address_for(Kind::Mapping, Some(name))?.trusting(owner);
        Mapping::from_endpoint(namespace::open(Kind::Mapping, &addr)?, access)
    }

    /// The uid of the user who created the mapping.
    pub fn owner_uid(&self) -> u32 {
        self.inner.endpoint.owner_uid()
    }

    /// Takes handle `handle` of process `pid` (00-S08).
    ///
    /// # Errors
    /// `HandleTakingRefused` when the OS forbids it — send the mapping over
    /// a connection instead.
    pub fn from_process(pid: u32, handle: HandleValue, access: Access) -> Result<Mapping> {
        Mapping::from_endpoint(namespace::take_from_process(Kind::Mapping, pid, handle)?, access)
    }

    /// Receives a mapping sent with [`Mapping::send`] (00-S08).
    ///
    /// # Errors
    /// `Timeout`, `InvalidHandle` when another kind was sent, `Malformed`.
    pub fn receive(conn: &Conn, access: Access, timeout: impl Into<crate::time::Deadline>) -> Result<Mapping> {
        Mapping::from_endpoint(namespace::receive(Kind::Mapping, conn, timeout)?, access)
    }

    fn from_endpoint(endpoint: Endpoint, access: Access) -> Result<Mapping> {
        let protection = Protection::from_wire(endpoint.info().protection)?;
        if !protection.allows(access) {
            return Err(Error::AccessDenied("the mapping's protection does not allow this access".into()));
        }
        let size = endpoint.info().size;
        let fd = endpoint.fd(0).ok_or_else(|| Error::Malformed("a mapping without its memory".into()))?;
        // Memory-backed mappings are size-sealed: one smaller than it says
        // is a lie, not a truncated file (which views report as ViewFault).
        if memfd::is_size_sealed(fd) && memfd::size(fd)? < size {
            return Err(Error::Malformed("the mapping's memory is smaller than its stated size".into()));
        }
        let existed = endpoint.existed;
        Ok(Mapping { inner: Arc::new(Inner { endpoint, size, protection }), access, existed })
    }

    /// Sends this mapping over a connection (00-S08).
    ///
    /// # Errors
    /// `EPIPE` when the peer is gone.
    pub fn send(&self, conn: &Conn) -> Result<()> {
        self.inner.endpoint.send(conn)
    }

    /// The mapping's size in bytes (fixed at creation).
    pub fn size(&self) -> u64 {
        self.inner.size
    }

    /// The mapping's protection.
    pub fn protection(&self) -> Protection {
        self.inner.protection
    }

    /// Whether the name already existed (classic `ERROR_ALREADY_EXISTS`).
    pub fn already_existed(&self) -> bool {
        self.existed
    }

    /// The handle value another process can take with [`Mapping::from_process`].
    pub fn handle(&self) -> HandleValue {
        self.inner.endpoint.handle()
    }

    /// Maps a view of `len` bytes at `offset`; `len` 0 maps to the end (S06).
    ///
    /// # Errors
    /// `MappedAlignment` for an offset that is not a multiple of
    /// [`ALLOCATION_GRANULARITY`], `AccessDenied` for more access than the
    /// handle has or a range past the mapping's end.
    pub fn map_view(&self, access: Access, offset: u64, len: usize) -> Result<View> {
        if offset % ALLOCATION_GRANULARITY != 0 {
            return Err(Error::MappedAlignment(offset));
        }
        if !access.within(self.access) {
            return Err(Error::AccessDenied("the view asks for more access than the handle has".into()));
        }
        let len = if len == 0 { self.size().saturating_sub(offset) } else { len as u64 };
        if len == 0 || offset.checked_add(len).is_none_or(|end| end > self.size()) {
            return Err(Error::AccessDenied("the view extends past the end of the mapping".into()));
        }
        if !self.inner.protection.allows(access) {
            return Err(Error::AccessDenied("the mapping's protection does not allow this view".into()));
        }
        let prot = match access {
            Access::Read => switchboard_sys::mmap::Protection::Read,
            Access::Write | Access::All => switchboard_sys::mmap::Protection::ReadWrite,
            Access::Copy => switchboard_sys::mmap::Protection::CopyOnWrite,
        };
        let fd = self.inner.endpoint.fd(0).ok_or_else(|| Error::Malformed("mapping without memory".into()))?;
        let len = usize::try_from(len).map_err(|_| Error::InvalidParameter("view too large"))?;
        let region = Region::map(fd, offset, len, prot).map_err(|e| match e {
            switchboard_sys::Errno::ACCESS => {
                Error::AccessDenied("the backing descriptor does not allow this access".into())
            }
            other => Error::sys(other),
        })?;
        Ok(View { region, offset, _mapping: self.inner.clone() })
    }
}

/// A mapped view of a [`Mapping`]. Keeps the mapping alive (S08).
#[derive(Debug)]
pub struct View {
    region: Region,
    offset: u64,
    _mapping: Arc<Inner>,
}

fn access_error(e: AccessError) -> Error {
    match e {
        AccessError::OutOfBounds => Error::InvalidParameter("range outside the view"),
        AccessError::ReadOnly => Error::AccessDenied("the view is read-only".into()),
        AccessError::Fault => Error::ViewFault,
    }
}

impl View {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Whether the view is empty (never: views have at least one byte).
    pub fn is_empty(&self) -> bool {
        self.region.is_empty()
    }

    /// Offset of the view within the mapping.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Copies bytes out of the view.
    ///
    /// # Errors
    /// `InvalidParameter` for a range outside the view, `ViewFault` when the
    /// backing file was truncated (S10).
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.region.read(offset, buf).map_err(access_error)
    }

    /// Copies bytes out at full speed (`rep movsb` from 256 bytes on).
    /// Unlike [`View::read`], an aligned word a peer writes during the copy
    /// may be seen half old, half new — never undefined behaviour. Use it for
    /// bytes your protocol says nobody is writing (after an event or a
    /// sequence number said they are ready).
    ///
    /// # Errors
    /// As [`View::read`].
    pub fn read_bulk(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        self.region.read_bulk(offset, buf).map_err(access_error)
    }

    /// Copies bytes in at full speed (see [`View::read_bulk`]).
    ///
    /// # Errors
    /// As [`View::write`].
    pub fn write_bulk(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.region.write_bulk(offset, data).map_err(access_error)
    }

    /// Copies `len` bytes out of the view into a new vector.
    ///
    /// # Errors
    /// As [`View::read`].
    pub fn read_vec(&self, offset: usize, len: usize) -> Result<Vec<u8>> {
        let mut v = vec![0; len];
        self.read(offset, &mut v)?;
        Ok(v)
    }

    /// The 4-byte word at `offset` as an atomic (for flags, counters and
    /// futex words shared with other processes; the classic `Interlocked*`
    /// on shared memory).
    ///
    /// # Errors
    /// `InvalidParameter` when out of range or not 4-aligned, `AccessDenied`
    /// for a read-only view.
    pub fn atomic_u32(&self, offset: usize) -> Result<&std::sync::atomic::AtomicU32> {
        self.word_check()?;
        self.region.atomic_u32(offset).ok_or(Error::InvalidParameter("offset out of range or not 4-aligned"))
    }

    /// The 8-byte word at `offset` as an atomic (see [`View::atomic_u32`]).
    ///
    /// # Errors
    /// As [`View::atomic_u32`], with 8-alignment.
    pub fn atomic_u64(&self, offset: usize) -> Result<&std::sync::atomic::AtomicU64> {
        self.word_check()?;
        self.region.atomic_u64(offset).ok_or(Error::InvalidParameter("offset out of range or not 8-aligned"))
    }

    fn word_check(&self) -> Result<()> {
        if self.region.protection() == switchboard_sys::mmap::Protection::Read {
            return Err(Error::AccessDenied("the view is read-only".into()));
        }
        Ok(())
    }

    /// Copies bytes into the view.
    ///
    /// # Errors
    /// `AccessDenied` for a read-only view, otherwise as [`View::read`].
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.region.write(offset, data).map_err(access_error)
    }

    /// Writes the dirty pages of a file-backed view in `offset..offset+len`
    /// (`len` 0: to the end) to the file before returning (S07).
    ///
    /// # Errors
    /// `InvalidParameter` for a range outside the view, I/O errors.
    pub fn flush(&self, offset: usize, len: usize) -> Result<()> {
        let len = if len == 0 { self.len().saturating_sub(offset) } else { len };
        self.region.flush(offset, len).map_err(|e| match e {
            switchboard_sys::Errno::INVAL => Error::InvalidParameter("range outside the view"),
            other => Error::sys(other),
        })
    }
}
