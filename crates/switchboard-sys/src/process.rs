//! Process and thread identity, liveness, and taking a handle from another
//! process (`pidfd_getfd`).

use rustix::fd::{AsFd, OwnedFd, RawFd};
use rustix::io::Errno;
use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};

use crate::Result;

/// The calling process's id (cached per thread; see [`tid`]).
pub fn pid() -> u32 {
    ids().1
}

/// The calling thread's id (unique machine-wide among live threads).
///
/// Cached per thread: the hot paths (every mutex acquisition and release)
/// would otherwise make a system call each time. A fork invalidates the
/// cache (a `pthread_atfork` child handler bumps a generation), so a forked
/// child never uses its parent's ids.
pub fn tid() -> u32 {
    ids().0
}

fn ids() -> (u32, u32) {
    crate::fork::install_once();
    let generation = crate::fork::generation();
    IDS.with(|c| {
        let (tid, pid, gen) = c.get();
        if tid != 0 && gen == generation {
            return (tid, pid);
        }
        let fresh = (
            rustix::thread::gettid().as_raw_nonzero().get() as u32,
            rustix::process::getpid().as_raw_nonzero().get() as u32,
        );
        c.set((fresh.0, fresh.1, generation));
        fresh
    })
}

thread_local! {
    static IDS: std::cell::Cell<(u32, u32, u64)> = const { std::cell::Cell::new((0, 0, 0)) };
}

/// The calling process's real uid.
pub fn uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// The calling process's real gid.
pub fn gid() -> u32 {
    rustix::process::getgid().as_raw()
}

/// No pid or tid reaches this (the kernel's `PID_MAX_LIMIT`, 2^22: pids
/// stay below `pid_max`, which cannot be set higher).
pub const PID_MAX_LIMIT: u32 = 1 << 22;

/// Whether a thread or process with this id exists (`kill(id, 0)`; `EPERM`
/// means it exists but belongs to someone else).
///
/// `kill` accepts any thread id, not only a thread-group leader, so this
/// answers for threads too. An id can be reused after its owner died; with
/// the default `pid_max` of 4 million that takes a long time.
pub fn is_alive(id: u32) -> bool {
    // A word from shared memory may hold anything: 0, or a value that as a
    // pid would mean a process group or "every process" (`kill(-1, 0)`
    // answers "alive"), is no thread at all.
    if id == 0 || id >= PID_MAX_LIMIT {
        return false;
    }
    let Some(pid) = Pid::from_raw(id as i32) else { return false };
    !matches!(rustix::process::test_kill_process(pid), Err(Errno::SRCH))
}

/// A descriptor number inside some process, as shown to users ("handle").
///
/// It is only meaningful together with the pid of the process that owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandleValue(pub i32);

impl HandleValue {
    /// The handle value of one of our own descriptors.
    pub fn of<Fd: AsFd>(fd: Fd) -> HandleValue {
        use rustix::fd::AsRawFd;
        HandleValue(fd.as_fd().as_raw_fd())
    }
}

impl std::fmt::Display for HandleValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A pidfd: a stable reference to a process that cannot be confused with a
/// later process reusing the same pid.
#[derive(Debug)]
pub struct Pidfd(OwnedFd);

impl Pidfd {
    /// Opens a pidfd for `pid`.
    ///
    /// # Errors
    /// `ESRCH` when there is no such process.
    pub fn open(pid: u32) -> Result<Pidfd> {
        let pid = Pid::from_raw(pid as i32).ok_or(Errno::SRCH)?;
        pidfd_open(pid, PidfdFlags::empty()).map(Pidfd)
    }

    /// Whether the process is still running (its pidfd is not yet readable).
    pub fn is_alive(&self) -> bool {
        matches!(crate::ready::poll_readable(self.0.as_fd()), Ok(0))
    }

    /// Duplicates descriptor `handle` of the target process into ours
    /// (close-on-exec).
    ///
    /// # Errors
    /// `EPERM` when ptrace policy forbids it (Yama `ptrace_scope`, other
    /// user), `EBADF` when the target has no such descriptor.
    pub fn take(&self, handle: HandleValue) -> Result<OwnedFd> {
        pidfd_getfd(&self.0, handle.0 as RawFd, PidfdGetfdFlags::empty())
    }
}

impl AsFd for Pidfd {
    fn as_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// Lists the pids of every process visible in `/proc`.
pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect()
}

/// The socket inodes that process `pid` holds open (`/proc/PID/fd/* ->
/// socket:[INODE]`); empty when the process is gone or not ours to read.
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    dir.filter_map(|e| {
        let link = std::fs::read_link(e.ok()?.path()).ok()?;
        let s = link.to_str()?;
        s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
    })
    .collect()
}

/// Asks the kernel to `SIGKILL` this process when its parent dies (used by
/// peers that must not outlive the process that started them).
///
/// # Errors
/// The kernel's `prctl` error.
pub fn die_with_parent() -> Result<()> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
}

/// Sends `SIGKILL` to process `pid`.
///
/// # Errors
/// `ESRCH` when it is gone, `EPERM`.
pub fn kill9(pid: u32) -> Result<()> {
    let pid = Pid::from_raw(pid as i32).ok_or(Errno::SRCH)?;
    rustix::process::kill_process(pid, rustix::process::Signal::KILL)
}

/// The machine's online CPUs (`/sys/devices/system/cpu/online`), whatever
/// this process's affinity mask says — a child of a pinned process still
/// learns how many CPUs there are. Falls back to the affinity count.
pub fn online_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_cpu_list(s.trim()))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Counts the CPUs in a kernel CPU list such as `0-3,6,8-9`.
fn parse_cpu_list(list: &str) -> Option<usize> {
    list.split(',').try_fold(0usize, |n, part| {
        Some(
            n + match part.split_once('-') {
                Some((a, b)) => b.parse::<usize>().ok()?.checked_sub(a.parse().ok()?)? + 1,
                None => part.parse::<usize>().map(|_| 1).ok()?,
            },
        )
    })
}

/// Pins the calling thread to one CPU.
///
/// # Errors
/// `EINVAL` for a CPU that does not exist or is not allowed.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
}

/// The CPU the calling thread runs on now (`sched_getcpu`, through the
/// vDSO: no system call). It may have moved by the time the caller looks.
pub fn current_cpu() -> usize {
    rustix::thread::sched_getcpu()
}

/// The CPU time the calling thread has used.
pub fn thread_cpu_time() -> std::time::Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    std::time::Duration::new(t.tv_sec.unsigned_abs(), u32::try_from(t.tv_nsec).unwrap_or(0))
}

/// Changes the *calling thread's* gid and uid (raw `setgid`/`setuid`, not
/// broadcast to other threads as libc does). Sockets it connects and
/// handles it takes then carry the new identity.
///
/// # Errors
/// `EPERM` without the capability to change ids.
pub fn set_thread_ids(uid: u32, gid: u32) -> Result<()> {
    rustix::thread::set_thread_gid(rustix::process::Gid::from_raw(gid))?;
    rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(uid))
}

/// This machine's monotonic clock (`CLOCK_MONOTONIC`) in nanoseconds: the
/// same clock in every process, so a time stored in shared memory means
/// the same to each.
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

/// Raises this process's limit on open descriptors (`RLIMIT_NOFILE`) so
/// that at least `want` fit, as far as the hard limit allows — or beyond
/// it, for a process allowed to raise it (root). Returns the soft limit
/// now in force. Children inherit it.
pub fn raise_fd_limit(want: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let soft = now.current.unwrap_or(u64::MAX);
    if soft >= want {
        return soft;
    }
    let hard = now.maximum.unwrap_or(u64::MAX);
    if hard < want && setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum: Some(want) }).is_ok() {
        return want;
    }
    let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(want.min(hard)), maximum: now.maximum });
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Whether thread `tid` of process `pid` is blocked in `futex(2)` or
/// `futex_waitv(2)` right now (`/proc/PID/task/TID/syscall`): lets a test
/// or benchmark act on a blocked call knowing it is blocked, without
/// sleeping. `false` when it cannot tell.
pub fn blocked_in_futex(pid: u32, tid: u32) -> bool {
    let call = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).unwrap_or_default();
    matches!(call.split(' ').next(), Some("202" | "449"))
}

/// Points this process's standard output and error at `/dev/null`: for a
/// process that detached from whoever started it, so that writing a line
/// after its parent stopped reading neither fails nor kills it.
///
/// # Errors
/// The kernel's `open` or `dup2` error.
pub fn silence_stdio() -> Result<()> {
    use rustix::fs::{open, Mode, OFlags};
    let null = open("/dev/null", OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    rustix::stdio::dup2_stdout(&null)?;
    rustix::stdio::dup2_stderr(&null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("x"), None);
        assert!(online_cpus() >= 1);
    }

    #[test]
    fn cached_ids_are_per_thread_and_match_the_kernel() {
        let main = (tid(), pid());
        assert_eq!(main.0, rustix::thread::gettid().as_raw_nonzero().get() as u32);
        let other = std::thread::spawn(|| (tid(), pid())).join().unwrap();
        assert_ne!(other.0, main.0);
        assert_eq!(other.1, main.1);
    }

    /// Regression: an owner word of 0xffffffff became `kill(-1, 0)`, which
    /// answers "alive" (and a debug build panicked in `Pid::from_raw`).
    #[test]
    fn ids_no_thread_can_have_are_not_alive() {
        for id in [0, PID_MAX_LIMIT, 1 << 31, u32::MAX, u32::MAX - 1] {
            assert!(!is_alive(id), "{id:#x}");
        }
    }

    #[test]
    fn self_is_alive_and_thread_ids_are_alive() {
        assert!(is_alive(pid()));
        assert!(is_alive(tid()));
        assert!(Pidfd::open(pid()).unwrap().is_alive());
    }
}
