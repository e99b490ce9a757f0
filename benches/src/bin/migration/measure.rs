//! Timing one child process and its peak RSS.
//!
//! Each timed command runs under a tiny wrapper (this binary re-executed as
//! `migration __measure OUT -- PROGRAM ARGS…`) that starts the command, waits for it and
//! then asks the kernel for `getrusage(RUSAGE_CHILDREN).ru_maxrss`: the high-water mark of
//! the resident set of the one child it waited for — what GNU `time -f %M` prints, with no
//! sampling gaps. The wrapper measures the wall time itself, so its own start-up is not
//! counted.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};

use crate::Result;

/// This binary, copied into the work dir (see [`pin`]).
static PINNED: OnceLock<PathBuf> = OnceLock::new();

/// Copies `program` into `dir` and returns the copy: a rebuild of the workspace during a
/// long benchmark then cannot swap or delete what it runs.
pub(crate) fn pin(program: &Path, dir: &Path) -> Result<PathBuf> {
    let name = program.file_name().ok_or("no file name")?;
    let copy = dir.join(name);
    fs::copy(program, &copy)?;
    Ok(copy)
}

/// Pins this binary (for the wrapper and the raw baseline).
pub(crate) fn pin_self(dir: &Path) -> Result<()> {
    let copy = pin(&std::env::current_exe()?, dir)?;
    let _ = PINNED.set(copy);
    Ok(())
}

/// The pinned copy of this binary, else the binary itself.
pub(crate) fn self_exe() -> Result<PathBuf> {
    match PINNED.get() {
        Some(path) => Ok(path.clone()),
        None => Ok(std::env::current_exe()?),
    }
}

/// A command to time.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(String, String)>,
    /// Stop the command after this long (it then counts as failed, "did not finish").
    pub(crate) time_limit: Option<Duration>,
}

impl Invocation {
    pub(crate) fn new(program: impl Into<PathBuf>) -> Invocation {
        Invocation { program: program.into(), args: Vec::new(), env: Vec::new(), time_limit: None }
    }

    pub(crate) fn time_limit(mut self, limit: Option<Duration>) -> Invocation {
        self.time_limit = limit;
        self
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Invocation {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub(crate) fn env(mut self, key: &str, value: &str) -> Invocation {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// The command line, for logs and the results file.
    pub(crate) fn display(&self) -> String {
        let mut text = self.program.display().to_string();
        for arg in &self.args {
            text.push(' ');
            text.push_str(&arg.to_string_lossy());
        }
        text
    }
}

/// What one timed run gave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// Wall-clock seconds.
    pub(crate) seconds: f64,
    /// Peak resident set size in KiB.
    pub(crate) max_rss_kib: u64,
    /// User + system CPU seconds of the child (the server's share is not in it).
    pub(crate) cpu_seconds: f64,
}

/// Runs `invocation` under the wrapper; its output goes to `log`. Fails when the command
/// exits with a status other than `ok_codes`, quoting the log's tail.
pub(crate) fn run(invocation: &Invocation, log: &Path, ok_codes: &[i32]) -> Result<Sample> {
    let out = log.with_extension("measure");
    let log_file = fs::File::create(log)?;
    let limit = invocation.time_limit.map_or(0, |limit| limit.as_secs().max(1));
    let status = Command::new(self_exe()?)
        .arg("__measure")
        .arg(&out)
        .arg(limit.to_string())
        .arg("--")
        .arg(&invocation.program)
        .args(&invocation.args)
        .envs(invocation.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .status()?;
    if !status.success() {
        return Err(
            format!("measuring wrapper failed ({status}) for {}", invocation.display()).into()
        );
    }
    let text = fs::read_to_string(&out)?;
    let mut fields = text.split_whitespace();
    let mut next = || fields.next().ok_or("short measure file");
    let seconds: f64 = next()?.parse()?;
    let max_rss_kib: u64 = next()?.parse()?;
    let code: i32 = next()?.parse()?;
    let cpu_seconds: f64 = next()?.parse()?;
    if code == TIMED_OUT {
        return Err(format!("did not finish within {limit} s: {}", invocation.display()).into());
    }
    if !ok_codes.contains(&code) {
        let log_text = fs::read_to_string(log).unwrap_or_default();
        let tail: String = log_text.lines().rev().take(15).collect::<Vec<_>>().join("\n");
        return Err(format!(
            "{} exited with {code}; last lines of {}:\n{tail}",
            invocation.display(),
            log.display()
        )
        .into());
    }
    Ok(Sample { seconds, max_rss_kib, cpu_seconds })
}

/// The exit code the wrapper records for a command it stopped at its time limit.
const TIMED_OUT: i32 = -2;

/// The wrapper: `__measure OUT LIMIT -- PROGRAM ARGS…` (LIMIT in seconds, 0: none).
/// Writes `seconds max_rss_kib exit_code cpu_seconds`.
pub(crate) fn wrapper_main(args: &[OsString]) -> ExitCode {
    match wrapper(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("migration __measure: {error}");
            ExitCode::FAILURE
        }
    }
}

fn wrapper(args: &[OsString]) -> Result<()> {
    let usage = "usage: __measure OUT LIMIT -- PROGRAM ARGS…";
    let [out, limit, separator, program, rest @ ..] = args else {
        return Err(usage.into());
    };
    if separator != "--" {
        return Err(usage.into());
    }
    let limit: u64 = limit.to_str().and_then(|l| l.parse().ok()).ok_or(usage)?;
    let deadline = (limit > 0).then(|| Instant::now() + Duration::from_secs(limit));
    let started = Instant::now();
    let mut child = Command::new(program).args(rest).spawn()?;
    // Without a limit, a plain wait: the time is exact. With one, polling costs up to
    // 2 ms, nothing next to the seconds such runs take.
    let status = loop {
        if deadline.is_none() {
            break Some(child.wait()?);
        }
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let seconds = started.elapsed().as_secs_f64();
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN)?;
    let code = status.map_or(TIMED_OUT, |status| status.code().unwrap_or(-1));
    let cpu = |t: nix::sys::time::TimeVal| {
        Duration::new(
            u64::try_from(t.tv_sec()).unwrap_or(0),
            u32::try_from(t.tv_usec()).unwrap_or(0) * 1000,
        )
    };
    let cpu_seconds = (cpu(usage.user_time()) + cpu(usage.system_time())).as_secs_f64();
    fs::write(out, format!("{seconds:.6} {} {code} {cpu_seconds:.6}\n", usage.max_rss()))?;
    Ok(())
}
