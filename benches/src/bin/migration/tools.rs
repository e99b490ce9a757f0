//! The contestants: our `dsync backup`, `doveadm backup -R imapc:`, `mbsync`, and the raw
//! `imapc` FETCH baseline; each run as a child, timed, its destination verified.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use testkit::{Dovecot, MAIL_GID, MAIL_UID};

use crate::measure::{self, Invocation, Sample};
use crate::verify::{self, Truth};
use crate::{PASSWORD, Result, USER};

/// One contestant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    /// `dsync backup`, per-message fsync (the default) or `--no-fsync`.
    Dsync { fsync: bool },
    /// `dsync backup --no-fsync --parallel-folders 4`.
    DsyncParallel,
    /// `dsync backup --no-fsync` of another build (`--compare-dsync`), e.g. before a change.
    DsyncOther,
    /// `dsync backup --no-fsync` from the served Maildir itself to a Maildir (no IMAP):
    /// the many-folders mode's second path.
    DsyncMaildir,
    /// `doveadm backup -R imapc:` with Dovecot's migration settings; `mail_fsync = never`
    /// or Dovecot's default (`optimized`).
    Doveadm { fsync: bool },
    /// `dsync backup --no-fsync` from the server's own `doveadm dsync-server` (the
    /// `remote:` path without ssh), not over IMAP.
    DsyncRemote,
    /// `doveadm backup -R remote:` through the same local `dsync-server`, mail_fsync=never.
    DoveadmRemote,
    /// `dsync backup --no-fsync` into an sdbox store.
    DsyncSdbox,
    /// `doveadm backup -R imapc:` into an sdbox store (`mail_fsync = never`).
    DoveadmSdbox,
    /// `mbsync` (isync), Maildir++ subfolders.
    Mbsync,
    /// One pipelined FETCH per folder, bodies discarded.
    RawDiscard,
    /// One pipelined FETCH per folder, each body written to a file.
    RawWrite,
    /// One pipelined FETCH per folder with FLAGS and INTERNALDATE, each body delivered as a
    /// Maildir file (`tmp/`, LF line ends, mtime, rename into `cur/`): the format's floor.
    RawMaildir,
}

impl Tool {
    pub(crate) const ALL: [Tool; 13] = [
        Tool::Dsync { fsync: true },
        Tool::Dsync { fsync: false },
        Tool::DsyncParallel,
        Tool::DsyncRemote,
        Tool::Doveadm { fsync: false },
        Tool::Doveadm { fsync: true },
        Tool::DoveadmRemote,
        Tool::DsyncSdbox,
        Tool::DoveadmSdbox,
        Tool::Mbsync,
        Tool::RawDiscard,
        Tool::RawWrite,
        Tool::RawMaildir,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Tool::Dsync { fsync: true } => "dsync backup (fsync per message)",
            Tool::Dsync { fsync: false } => "dsync backup --no-fsync",
            Tool::DsyncParallel => "dsync backup --no-fsync --parallel-folders 4",
            Tool::DsyncOther => "other dsync build, --no-fsync",
            Tool::DsyncMaildir => "dsync backup --no-fsync, Maildir → Maildir",
            Tool::Doveadm { fsync: false } => "doveadm backup -R imapc: (mail_fsync=never)",
            Tool::Doveadm { fsync: true } => "doveadm backup -R imapc: (default fsync)",
            Tool::DsyncRemote => "dsync backup --no-fsync from doveadm dsync-server",
            Tool::DoveadmRemote => "doveadm backup -R remote: (dsync-server, mail_fsync=never)",
            Tool::DsyncSdbox => "dsync backup --no-fsync, into sdbox",
            Tool::DoveadmSdbox => "doveadm backup -R imapc: into sdbox (mail_fsync=never)",
            Tool::Mbsync => "mbsync (Maildir++, UIDs not kept)",
            Tool::RawDiscard => "raw FETCH, bodies discarded",
            Tool::RawWrite => "raw FETCH + write files",
            Tool::RawMaildir => "raw FETCH + Maildir delivery (tmp/, LF, mtime, rename)",
        }
    }

    /// Short name for `--skip` and file names.
    pub(crate) fn slug(self) -> &'static str {
        match self {
            Tool::Dsync { fsync: true } => "dsync",
            Tool::Dsync { fsync: false } => "dsync-nofsync",
            Tool::DsyncParallel => "dsync-parallel",
            Tool::DsyncOther => "dsync-other",
            Tool::DsyncMaildir => "dsync-maildir",
            Tool::Doveadm { fsync: false } => "doveadm",
            Tool::Doveadm { fsync: true } => "doveadm-fsync",
            Tool::DsyncRemote => "dsync-remote",
            Tool::DoveadmRemote => "doveadm-remote",
            Tool::DsyncSdbox => "dsync-sdbox",
            Tool::DoveadmSdbox => "doveadm-sdbox",
            Tool::Mbsync => "mbsync",
            Tool::RawDiscard => "raw-discard",
            Tool::RawWrite => "raw-write",
            Tool::RawMaildir => "raw-maildir",
        }
    }

    fn has_noop(self) -> bool {
        !matches!(self, Tool::RawDiscard | Tool::RawWrite | Tool::RawMaildir)
    }
}

/// Everything a run needs.
#[derive(Debug)]
pub(crate) struct Setup<'a> {
    pub(crate) dovecot: &'a Dovecot,
    pub(crate) dsync: &'a Path,
    /// Another dsync build to compare (`--compare-dsync`).
    pub(crate) dsync_other: Option<&'a Path>,
    /// Scratch directory on tmpfs: destinations, configs, logs.
    pub(crate) work: PathBuf,
    /// Where clients connect: Dovecot or the delaying proxy.
    pub(crate) port: u16,
    pub(crate) truth: &'a Truth,
    /// The Maildir the server serves (the source of [`Tool::DsyncMaildir`]).
    pub(crate) source_maildir: PathBuf,
    /// Commands still running after this long are stopped and count as failed.
    pub(crate) time_limit: Option<std::time::Duration>,
}

/// The measurements of one tool over all rounds.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) tool: Tool,
    pub(crate) full: Vec<Sample>,
    pub(crate) noop: Vec<Sample>,
    /// dsync only: a re-run with `--no-state` (every folder listed in full).
    pub(crate) noop_stateless: Vec<Sample>,
    /// Set when a run failed or its result was wrong; the tool is then left out.
    pub(crate) error: Option<String>,
    /// The full run's command line.
    pub(crate) command: String,
}

/// Runs every tool `warmup + rounds` times (interleaved, so load changes hit all alike);
/// warm-up rounds are verified but not recorded.
pub(crate) fn run_all(
    setup: &Setup<'_>,
    tools: &[Tool],
    warmup: usize,
    rounds: usize,
) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = tools
        .iter()
        .map(|&tool| Outcome {
            tool,
            full: Vec::new(),
            noop: Vec::new(),
            noop_stateless: Vec::new(),
            error: None,
            command: String::new(),
        })
        .collect();
    for round in 0..warmup + rounds {
        for outcome in &mut outcomes {
            if outcome.error.is_some() {
                continue;
            }
            let dest = setup.work.join(format!("dest-{}-{round}", outcome.tool.slug()));
            let recorded = round >= warmup;
            eprint!(
                "  round {round}{} {:<46}",
                if recorded { "" } else { " (warm-up)" },
                outcome.tool.label()
            );
            match run_once(setup, outcome, &dest, recorded) {
                Ok(text) => eprintln!("{text}"),
                Err(error) => {
                    eprintln!("FAILED: {error}");
                    outcome.error = Some(error.to_string());
                }
            }
            let _ = fs::remove_dir_all(&dest);
        }
    }
    outcomes
}

fn run_once(
    setup: &Setup<'_>,
    outcome: &mut Outcome,
    dest: &Path,
    recorded: bool,
) -> Result<String> {
    let tool = outcome.tool;
    let _ = fs::remove_dir_all(dest);
    let log = |what: &str| setup.work.join(format!("{}-{what}.log", tool.slug()));
    let invocation = prepare(setup, tool, dest)?.time_limit(setup.time_limit);
    outcome.command = invocation.display();
    let full = measure::run(&invocation, &log("full"), &[0])?;
    check(setup, tool, dest)?;
    let mut text = format!(
        "full {:.3} s (cpu {:.3}) {:>5.1} MiB",
        full.seconds,
        full.cpu_seconds,
        mib(full.max_rss_kib)
    );
    if recorded {
        outcome.full.push(full);
    }
    if tool.has_noop() {
        // A re-run a second later, as a real one would be: mbsync (and any tool that trusts
        // directory mtimes) otherwise waits for the clock to tick past a just-modified dir.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let noop = measure::run(&invocation, &log("noop"), &[0])?;
        let _ = write!(text, "  no-op {:.3} s {:>5.1} MiB", noop.seconds, mib(noop.max_rss_kib));
        if recorded {
            outcome.noop.push(noop);
        }
    }
    if tool == (Tool::Dsync { fsync: false }) {
        let stateless = invocation.clone().arg("--no-state");
        let noop = measure::run(&stateless, &log("noop-stateless"), &[0])?;
        let _ = write!(text, "  no-op w/o state {:.3} s", noop.seconds);
        if recorded {
            outcome.noop_stateless.push(noop);
        }
    }
    Ok(text)
}

#[allow(clippy::cast_precision_loss)]
pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Checks `tool`'s destination `dest` against the source's truth.
pub(crate) fn check(setup: &Setup<'_>, tool: Tool, dest: &Path) -> Result<()> {
    let checked = match tool {
        Tool::Dsync { .. }
        | Tool::DsyncParallel
        | Tool::DsyncOther
        | Tool::DsyncMaildir
        | Tool::DsyncRemote
        | Tool::DoveadmRemote
        | Tool::Doveadm { .. } => verify::same_uids(dest, setup.truth),
        Tool::DsyncSdbox | Tool::DoveadmSdbox => verify::same_uids_sdbox(dest, setup.truth),
        Tool::Mbsync => verify::same_counts(dest, setup.truth),
        Tool::RawWrite | Tool::RawMaildir => verify::same_file_count(dest, setup.truth),
        Tool::RawDiscard => Ok(()),
    };
    checked.map_err(|wrong| format!("wrong result: {wrong}").into())
}

/// The command for `tool` writing to `dest`, with what it needs on disk.
pub(crate) fn prepare(setup: &Setup<'_>, tool: Tool, dest: &Path) -> Result<Invocation> {
    let port = setup.port.to_string();
    Ok(match tool {
        Tool::DsyncOther => Invocation::new(setup.dsync_other.ok_or("no --compare-dsync")?)
            .arg("-q")
            .arg("backup")
            .arg(format!("imap://{USER}@127.0.0.1:{port}?tls=none"))
            .arg(format!("maildir:{}", dest.display()))
            .arg("--no-fsync")
            .env("DSYNC_PASSWORD", PASSWORD),
        Tool::Dsync { fsync } => {
            let mut invocation = Invocation::new(setup.dsync)
                .arg("-q")
                .arg("backup")
                .arg(format!("imap://{USER}@127.0.0.1:{port}?tls=none"))
                .arg(format!("maildir:{}", dest.display()))
                .env("DSYNC_PASSWORD", PASSWORD);
            if !fsync {
                invocation = invocation.arg("--no-fsync");
            }
            invocation
        }
        Tool::DsyncMaildir => Invocation::new(setup.dsync)
            .arg("-q")
            .arg("backup")
            .arg(format!("maildir:{}", setup.source_maildir.display()))
            .arg(format!("maildir:{}", dest.display()))
            .arg("--no-fsync"),
        Tool::DsyncSdbox => Invocation::new(setup.dsync)
            .arg("-q")
            .arg("backup")
            .arg(format!("imap://{USER}@127.0.0.1:{port}?tls=none"))
            .arg(format!("sdbox:{}", dest.display()))
            .arg("--no-fsync")
            .env("DSYNC_PASSWORD", PASSWORD),
        Tool::DsyncParallel => Invocation::new(setup.dsync)
            .arg("-q")
            .arg("backup")
            .arg(format!("imap://{USER}@127.0.0.1:{port}?tls=none"))
            .arg(format!("maildir:{}", dest.display()))
            .arg("--no-fsync")
            .arg("--parallel-folders")
            .arg("4")
            .env("DSYNC_PASSWORD", PASSWORD),
        Tool::Doveadm { .. } | Tool::DoveadmSdbox => {
            let (fsync, driver) = match tool {
                Tool::Doveadm { fsync } => (fsync, "maildir"),
                _ => (false, "sdbox"),
            };
            // doveadm switches to the mail user, who must own the destination.
            fs::create_dir_all(dest)?;
            std::os::unix::fs::chown(dest, Some(MAIL_UID), Some(MAIL_GID))?;
            let config = setup.work.join(format!("doveadm-{port}-{fsync}.conf"));
            let mut text = format!(
                "!include {}\n\
                 imapc_host = 127.0.0.1\n\
                 imapc_port = {port}\n\
                 imapc_user = %u\n\
                 imapc_password = {PASSWORD}\n\
                 imapc_features = rfc822.size fetch-headers modseq\n\
                 imapc_list_prefix =\n\
                 mail_prefetch_count = 20\n",
                setup.dovecot.config_file().display()
            );
            if !fsync {
                text.push_str("mail_fsync = never\n");
            }
            fs::write(&config, text)?;
            Invocation::new("/usr/bin/doveadm")
                .arg("-c")
                .arg(&config)
                .arg("-o")
                .arg(format!("mail_location={driver}:{}", dest.display()))
                .arg("backup")
                .arg("-R")
                .arg("-u")
                .arg(USER)
                .arg("imapc:")
        }
        Tool::DsyncRemote => Invocation::new(setup.dsync)
            .arg("-q")
            .arg("backup")
            .arg(dsync_server_command(setup))
            .arg(format!("maildir:{}", dest.display()))
            .arg("--no-fsync"),
        Tool::DoveadmRemote => {
            fs::create_dir_all(dest)?;
            std::os::unix::fs::chown(dest, Some(MAIL_UID), Some(MAIL_GID))?;
            Invocation::new("/usr/bin/doveadm")
                .arg("-c")
                .arg(setup.dovecot.config_file())
                .arg("-o")
                .arg(format!("mail_location=maildir:{}", dest.display()))
                .arg("-o")
                .arg("mail_fsync=never")
                .arg("-o")
                .arg(format!("dsync_remote_cmd={}", dsync_server_command(setup)))
                .arg("backup")
                .arg("-R")
                .arg("-u")
                .arg(USER)
                .arg("remote:localhost")
        }
        Tool::Mbsync => {
            fs::create_dir_all(dest)?;
            let config = setup.work.join(format!("mbsync-{}.conf", dest_name(dest)));
            fs::write(
                &config,
                format!(
                    "IMAPAccount source\nHost 127.0.0.1\nPort {port}\nUser {USER}\nPass {PASSWORD}\n\
                     SSLType None\nAuthMechs LOGIN\n\n\
                     IMAPStore source\nAccount source\n\n\
                     MaildirStore dest\nInbox {}\nSubFolders Maildir++\n\n\
                     Channel migrate\nFar :source:\nNear :dest:\nPatterns *\nCreate Near\n\
                     Sync Pull\nSyncState *\n",
                    dest.display()
                ),
            )?;
            Invocation::new("/usr/bin/mbsync").arg("-q").arg("-c").arg(&config).arg("-a")
        }
        Tool::RawDiscard | Tool::RawWrite | Tool::RawMaildir => {
            let mut invocation = Invocation::new(measure::self_exe()?)
                .arg("__rawfetch")
                .arg(&port)
                .arg(USER)
                .env("DSYNC_PASSWORD", PASSWORD);
            invocation = match tool {
                Tool::RawWrite | Tool::RawMaildir => {
                    fs::create_dir_all(dest)?;
                    let mode = if tool == Tool::RawWrite { "write" } else { "maildir" };
                    invocation.arg(mode).arg(dest)
                }
                _ => invocation.arg("discard"),
            };
            invocation
        }
    })
}

/// The command line that runs the source server's own `doveadm dsync-server` for the
/// user: what `ssh HOST doveadm dsync-server -u USER` runs, without ssh.
fn dsync_server_command(setup: &Setup<'_>) -> String {
    setup.dovecot.dsync_server_command(USER)
}

fn dest_name(dest: &Path) -> String {
    dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
