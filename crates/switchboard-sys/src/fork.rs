//! Fork detection for per-thread caches.
//!
//! # Safety
//!
//! `pthread_atfork` registers a handler that only increments an atomic, which
//! is async-signal-safe and therefore safe in a child after `fork`.

#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(1);
static INSTALL: Once = Once::new();

extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Registers the fork handler (first call only).
pub(crate) fn install_once() {
    INSTALL.call_once(|| {
        // SAFETY: the handler is a plain `extern "C" fn()` that only touches
        // an atomic; registering it has no other effect.
        unsafe {
            libc::pthread_atfork(None, None, Some(in_child));
        }
    });
}

/// Changes in a child process after every fork.
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}
