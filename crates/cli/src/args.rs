//! Command-line arguments (clap). Names follow doveadm where it has them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit status (as doveadm's):
   0  synced
   2  finished, but something changed meanwhile: run again
  64  usage error (bad option or location)
  65  data error (e.g. a mailbox the destination cannot represent)
  67  unknown user
  68  mailbox not found
  73  can't create (disk full, over quota)
  75  temporary failure (connection, timeout): retry later
  77  permission denied, or wrong credentials";

/// Migrate and synchronise mailboxes, preserving UIDs, UIDVALIDITY, flags, keywords,
/// received dates, folders and subscriptions.
#[derive(Debug, Parser)]
#[command(name = "dsync", version, after_help = EXIT_CODES, propagate_version = true)]
pub(crate) struct Cli {
    /// Print protocol-level debug output (passwords are never printed).
    #[arg(short = 'D', long = "debug", global = true)]
    pub(crate) debug: bool,

    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Make DESTINATION identical to SOURCE: copy what is missing, revert what differs,
    /// delete what the source does not have. The source is only read.
    #[command(after_help = "Examples:
  DSYNC_PASSWORD=secret dsync backup imap://alice@mail.example.com maildir:/srv/mail/alice
  dsync backup --password-file pw imaps://alice@old.example.com maildir:~/Maildir
  dsync backup maildir:/backup/alice maildir:/srv/mail/alice")]
    Backup(SyncArgs),
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Where mail is read: imap://user@host[:port][?tls=starttls], imaps://user@host[:port],
    /// or maildir:PATH[:LAYOUT=fs][:UTF-8].
    pub(crate) source: String,

    /// Where mail is written: maildir:PATH[:LAYOUT=fs][:UTF-8].
    pub(crate) destination: String,

    /// Show what would be done without changing anything.
    #[arg(long, short = 'n')]
    pub(crate) dry_run: bool,

    /// Commit after this many saved messages, so an interrupted run resumes where it
    /// stopped (Dovecot's dsync_commit_msgs_interval).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub(crate) commit_interval: u32,

    /// Do not fsync each message; sync everything once at the end (Dovecot's
    /// mail_fsync=never, recommended for migrations). A killed run still leaves a
    /// consistent destination; only a power loss before the end can lose recent writes.
    #[arg(long)]
    pub(crate) no_fsync: bool,

    /// Where to keep what the next run needs to be incremental (default: a file
    /// `dsync-rs-state` in the destination Maildir's root, which Dovecot ignores).
    #[arg(long, value_name = "FILE", conflicts_with = "no_state")]
    pub(crate) state_file: Option<PathBuf>,

    /// Keep no state: every run lists every mailbox in full.
    #[arg(long)]
    pub(crate) no_state: bool,

    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ConnectionArgs {
    /// Read the IMAP password from the first line of FILE (else from $DSYNC_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub(crate) password_file: Option<PathBuf>,

    /// Trust this CA certificate (PEM) in addition to the built-in roots.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,

    /// Log in as USER's master user (Dovecot master-user login with AUTHENTICATE PLAIN).
    #[arg(long, value_name = "MASTER")]
    pub(crate) master_user: Option<String>,

    /// Seconds to wait for a server reply before giving up (connecting waits at most 30).
    /// Servers can think minutes before answering a SELECT of a huge mailbox.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub(crate) timeout: u64,
}
