//! Ctrl-C, SIGTERM and SIGHUP. Outside a critical section they end the process and its
//! children at once (exit 130), as usual: nothing it changed on a host serves yet, and
//! the lock it leaves is stale at once for the next command from this machine. Inside
//! one (from starting a release until it, or the release it replaces, is recorded) the
//! first signal only raises a flag the release engine checks, so the host ends up as
//! recorded; a second signal ends the process anyway.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Signals received in critical sections: the second ends the process.
static RECEIVED: AtomicUsize = AtomicUsize::new(0);
static CRITICAL: AtomicUsize = AtomicUsize::new(0);
static INSTALL: Once = Once::new();

#[cfg(test)]
thread_local! {
    /// Lets a test interrupt the code it runs on its own thread only.
    static FORCED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs the handling, once per process (a thread waits for the signals: nothing
/// runs in signal context).
pub fn install() {
    INSTALL.call_once(|| {
        let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            eprintln!("warning: could not install the Ctrl-C handler: an interrupted deploy ends at once");
            return;
        };
        std::thread::spawn(move || {
            for signal in signals.forever() {
                let name = match signal {
                    SIGINT => "SIGINT",
                    SIGTERM => "SIGTERM",
                    _ => "SIGHUP",
                };
                if CRITICAL.load(Ordering::SeqCst) == 0 || RECEIVED.fetch_add(1, Ordering::SeqCst) > 0 {
                    eprintln!("\n{name}: stopping now");
                    stop_children();
                    std::process::exit(130);
                }
                INTERRUPTED.store(true, Ordering::SeqCst);
                eprintln!(
                    "\n{name}: a release is starting; putting the host back in a recorded state first \
                     (send it again to stop at once)"
                );
            }
        });
    });
}

/// Stops this process's children (a transfer's `docker save` and `ssh`), which a
/// `kill` of this process alone would leave running.
fn stop_children() {
    let _ = std::process::Command::new("pkill")
        .args(["-TERM", "-P", &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Whether a signal arrived during a critical section.
pub fn interrupted() -> bool {
    #[cfg(test)]
    if FORCED.with(std::cell::Cell::get) {
        return true;
    }
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Forgets an interruption once it has been acted on (the restore that follows it
/// must not stop for it).
pub fn acknowledge() {
    #[cfg(test)]
    FORCED.with(|f| f.set(false));
    INTERRUPTED.store(false, Ordering::SeqCst);
}

/// Makes the current thread's [`interrupted`] true, for tests.
#[cfg(test)]
pub fn force_for_this_thread() {
    FORCED.with(|f| f.set(true));
}

/// A critical section, held until dropped.
pub struct Critical(());

impl Critical {
    pub fn enter() -> Critical {
        CRITICAL.fetch_add(1, Ordering::SeqCst);
        Critical(())
    }
}

impl Drop for Critical {
    fn drop(&mut self) {
        CRITICAL.fetch_sub(1, Ordering::SeqCst);
    }
}
