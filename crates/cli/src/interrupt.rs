//! Ctrl-C and SIGTERM during `backup`, `sync` and `import`. The first one asks the run to
//! stop after the message being saved: the engine commits it, the state is saved, the
//! progress bars are cleared, and dsync ends with "interrupted; run again to resume"
//! (exit 75). A batch starts no more users and lets the running ones stop that way. A
//! second signal ends the process at once (exit 75 as well: every commit is crash-safe, so
//! that run resumes too). Without the handler (other verbs) a signal ends dsync as usual.

use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dsync_core::Cancel;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use signal_hook::iterator::Signals;

use crate::exit;
use crate::logging::Stderr;

/// Cancelled by the first SIGINT/SIGTERM; runs get it as their [`Cancel`] token.
static REQUESTED: OnceLock<Cancel> = OnceLock::new();

/// True once a stop was asked for.
pub(crate) fn requested() -> bool {
    REQUESTED.get().is_some_and(Cancel::is_cancelled)
}

/// The token the signals cancel, for [`dsync_core::SyncOptions::cancel`] (`None` without
/// the handler).
pub(crate) fn token() -> Option<Cancel> {
    REQUESTED.get().cloned()
}

/// Handles SIGINT and SIGTERM from now on (see the module documentation); `stderr` shows
/// that the first signal was heard. Errors (no signal handling) leave the default, which
/// ends the process.
pub(crate) fn install(stderr: Stderr) -> std::io::Result<()> {
    let cancel = Cancel::new();
    let requested = cancel.flag();
    for signal in [SIGINT, SIGTERM] {
        // In this order: the second signal finds the flag the first one set, and exits.
        flag::register_conditional_shutdown(signal, i32::from(exit::TEMPORARY), requested.clone())?;
        flag::register(signal, requested.clone())?;
    }
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        if signals.forever().next().is_some() {
            let mut stderr = stderr;
            let _ = writeln!(
                stderr,
                "dsync: stopping after the message being saved (again to stop at once)"
            );
        }
    })?;
    let _ = REQUESTED.set(cancel);
    Ok(())
}

/// Sleeps for `duration`, or less when a stop is asked for.
pub(crate) fn sleep(duration: Duration) {
    let until = Instant::now() + duration;
    while !requested() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}
