//! Standard output that a closed pipe ends quietly: `dsync completions bash | head -1`,
//! `dsync mailbox list … | head` or a summary read by a reader that went away are a normal
//! end, not a panic (Rust's `println!` panics on `EPIPE`). After the first failed write
//! nothing more is written; a failure other than a closed pipe (a full disk under a
//! redirect) is reported once on stderr. The crate's `print!` and `println!` come here.

use std::fmt;
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stdout failed: the rest of the output is dropped.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `args` to stdout unless it is closed; Ok when written or dropped because the
/// reader went away, the error otherwise.
pub(crate) fn write(args: fmt::Arguments<'_>) -> io::Result<()> {
    write_bytes(args.to_string().as_bytes())
}

/// [`write`] for bytes (a man page, a completion script).
pub(crate) fn write_bytes(bytes: &[u8]) -> io::Result<()> {
    if CLOSED.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut stdout = io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(error) => {
            CLOSED.store(true, Ordering::SeqCst);
            if error.kind() == io::ErrorKind::BrokenPipe { Ok(()) } else { Err(error) }
        }
    }
}

/// What `print!` does here: [`write`], with a failure reported on stderr once.
pub(crate) fn print(args: fmt::Arguments<'_>) {
    if let Err(error) = write(args) {
        eprintln!("dsync: cannot write to standard output: {error}");
    }
}
