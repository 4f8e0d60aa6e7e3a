//! Removing temporary files when the process is killed by SIGINT, SIGTERM or SIGHUP.
//!
//! A table of path slots is read by an async-signal-safe handler that `unlink`s every
//! registered path and then re-raises the signal with its default action, so the
//! process still dies of the signal (exit status and shell behaviour unchanged).
//! The handler is installed on the first registration, and only for signals whose
//! disposition is still the default: a program (or a shell's `nohup`) that handles or
//! ignores a signal keeps its choice.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

/// How many temporary files can be registered at once; beyond that a file is simply
/// not removed on a signal (it still is on drop).
const SLOTS: usize = 64;

static PATHS: [AtomicPtr<libc::c_char>; SLOTS] = [const { AtomicPtr::new(null_mut()) }; SLOTS];
static INSTALL: Once = Once::new();

/// The signals that remove registered files.
pub const CLEANUP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// A registered path; dropping it unregisters the path.
#[derive(Debug)]
pub struct Registration(usize);

impl Drop for Registration {
    fn drop(&mut self) {
        // The string is leaked, not freed: a handler running on another thread may
        // still be reading it. One path per temporary file is a few bytes.
        PATHS[self.0].store(null_mut(), Ordering::SeqCst);
    }
}

/// Registers `path` to be unlinked if the process is killed by one of
/// [`CLEANUP_SIGNALS`]; `None` when the table is full or the path holds a NUL byte.
pub fn register(path: &Path) -> Option<Registration> {
    install();
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let raw = c.into_raw();
    for (i, slot) in PATHS.iter().enumerate() {
        if slot
            .compare_exchange(null_mut(), raw, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return Some(Registration(i));
        }
    }
    // SAFETY: `raw` came from `CString::into_raw` above and was never shared.
    drop(unsafe { CString::from_raw(raw) });
    None
}

extern "C" fn on_signal(sig: libc::c_int) {
    for slot in &PATHS {
        let p = slot.load(Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: registered strings are never freed; unlink is async-signal-safe.
            unsafe { libc::unlink(p) };
        }
    }
    // SAFETY: signal and raise are async-signal-safe; the default action then ends
    // the process as if this handler had never been installed.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Installs the handler for each of [`CLEANUP_SIGNALS`] still at its default action.
/// Idempotent; called by [`register`], so programs need not call it.
pub fn install() {
    INSTALL.call_once(|| {
        for sig in CLEANUP_SIGNALS {
            // SAFETY: zeroed sigaction structs are valid; the calls only read and
            // write these locals and the process's signal table.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction != libc::SIG_DFL
                {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut new.sa_mask);
                libc::sigaction(sig, &new, std::ptr::null_mut());
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_freed_on_drop() {
        let regs: Vec<Registration> = (0..SLOTS)
            .map_while(|i| register(Path::new(&format!("/nonexistent/{i}"))))
            .collect();
        // Other tests may hold a slot or two at the same time.
        assert!(regs.len() >= SLOTS - 8);
        assert!(register(Path::new("/nonexistent/full")).is_none() || regs.len() < SLOTS);
        drop(regs);
        assert!(register(Path::new("/nonexistent/again")).is_some());
    }
}
