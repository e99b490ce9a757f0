//! Logs through `tracing`: warnings (and with `-v` each mailbox, with `-D` each protocol
//! line) on stderr as `dsync: [user: ]warning: …`, and per user a log file with
//! timestamps. Protocol lines (`C: …` sent, `S: …` received) come from the `imapc` and
//! `pop3c` traces, which mask LOGIN/AUTHENTICATE and PASS/APOP/AUTH arguments and SASL
//! exchanges, so no password or token reaches a log.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use indicatif::MultiProgress;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

/// The target of protocol lines.
pub(crate) const PROTOCOL: &str = "dsync::protocol";

/// How chatty the run is.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Verbosity {
    pub(crate) quiet: bool,
    pub(crate) verbose: bool,
    pub(crate) debug: bool,
}

impl Verbosity {
    fn stderr_level(self) -> LevelFilter {
        if self.debug {
            LevelFilter::DEBUG
        } else if self.verbose {
            LevelFilter::INFO
        } else if self.quiet {
            LevelFilter::ERROR
        } else {
            LevelFilter::WARN
        }
    }

    fn file_level(self) -> LevelFilter {
        if self.debug { LevelFilter::DEBUG } else { LevelFilter::INFO }
    }
}

/// `dsync: [prefix: ]level: message` on one line.
struct StderrFormat {
    prefix: String,
}

impl<S, N> FormatEvent<S, N> for StderrFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "dsync: {}", self.prefix)?;
        match *event.metadata().level() {
            Level::ERROR => write!(writer, "error: ")?,
            Level::WARN => write!(writer, "warning: ")?,
            _ => {}
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Stderr that hides the progress bars while a line is written.
#[derive(Clone)]
pub(crate) struct Stderr {
    bars: Option<MultiProgress>,
}

impl Stderr {
    pub(crate) fn new(bars: Option<MultiProgress>) -> Stderr {
        Stderr { bars }
    }
}

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.bars {
            Some(bars) => bars.suspend(|| io::stderr().write_all(buf)).map(|()| buf.len()),
            None => io::stderr().write_all(buf).map(|()| buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;
    fn make_writer(&'a self) -> Stderr {
        self.clone()
    }
}

fn stderr_layer<S>(verbosity: Verbosity, prefix: String, stderr: Stderr) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(stderr)
        .event_format(StderrFormat { prefix })
        .with_filter(verbosity.stderr_level())
}

/// Installs the process-wide subscriber (stderr only).
pub(crate) fn init(verbosity: Verbosity, stderr: Stderr) {
    let subscriber =
        tracing_subscriber::registry().with(stderr_layer(verbosity, String::new(), stderr));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Runs `work` with this thread's log going to stderr (lines prefixed with `user: `) and,
/// when `file` is given, to that file with timestamps.
pub(crate) fn with_user_log<T>(
    verbosity: Verbosity,
    user: Option<&str>,
    file: Option<File>,
    stderr: Stderr,
    work: impl FnOnce() -> T,
) -> T {
    let prefix = user.map(|u| format!("{u}: ")).unwrap_or_default();
    let file_layer = file.map(|file| {
        tracing_subscriber::fmt::layer()
            .with_writer(Mutex::new(file))
            .with_ansi(false)
            .with_target(false)
            .with_filter(verbosity.file_level())
    });
    let subscriber = tracing_subscriber::registry()
        .with(stderr_layer(verbosity, prefix, stderr))
        .with(file_layer);
    tracing::subscriber::with_default(subscriber, work)
}

/// A file name for `user` in a log directory: path separators and control characters
/// replaced, so that a user name can never point outside the directory.
pub(crate) fn file_name(user: &str, extension: &str) -> String {
    let safe: String = user
        .chars()
        .map(|c| if c == '/' || c == '\\' || c.is_control() || c == '\0' { '_' } else { c })
        .collect();
    let safe = if safe.is_empty() || safe.starts_with('.') { format!("_{safe}") } else { safe };
    format!("{safe}.{extension}")
}

/// Creates `dir` (if needed, 0700) and opens `dir/<user>.<extension>` for appending. Logs
/// tell what is in the mail (raw logs: all of it), so they are never more readable than the
/// mail: only by us (0600; an existing log is narrowed to that).
pub(crate) fn open_in(dir: &Path, user: &str, extension: &str) -> io::Result<(File, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let private = mailstore::Permissions::private();
    private.create_dir_all(dir).map_err(io::Error::other)?;
    let path = dir.join(file_name(user, extension));
    let file = private.open_or_create(&path, true).map_err(io::Error::other)?;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok((file, path))
}

/// A raw protocol log shared by a connection's trace callback.
pub(crate) type RawLog = Arc<Mutex<File>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_only_ours() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let logs = dir.path().join("logs");
        let (_, path) = open_in(&logs, "alice", "log").expect("open");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!((mode(&logs), mode(&path)), (0o700, 0o600));
        // A log someone made readable is narrowed again.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        open_in(&logs, "alice", "log").expect("open");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn user_names_stay_inside_the_log_directory() {
        assert_eq!(file_name("alice@example.com", "log"), "alice@example.com.log");
        assert_eq!(file_name("../../etc/passwd", "log"), "_.._.._etc_passwd.log");
        assert_eq!(file_name("", "log"), "_.log");
        assert_eq!(file_name("a\nb", "rawlog"), "a_b.rawlog");
    }
}
