//! Command-line arguments (clap). Verbs, option letters and their meanings follow doveadm
//! where it has them (Dovecot's `src/doveadm/doveadm-dsync.c`), so operators feel at home.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub(crate) const EXIT_CODES: &str = "\
Exit status (as doveadm's):
   0  synced (verify: no difference)
   1  verify and backup --verify: differences found
   2  finished, but something changed meanwhile: run again
  64  usage error (bad option or location)
  65  data error (e.g. a mailbox the destination cannot represent, an entry skipped)
  67  unknown user
  68  mailbox, location or host not found; verify: a -m that matches no mailbox, or
      filters that leave nothing to compare
  73  can't create (disk full, over quota, not a directory)
  75  temporary failure (connection lost, timeout, server busy, destination in use by
      another dsync, interrupted by Ctrl-C or SIGTERM): run again later; wins over the others
  77  permission denied, or wrong credentials
  78  configuration error (config file, untrusted certificate, a port that speaks TLS
      or another protocol than the location says, STARTTLS refused)";

const LOCATIONS: &str = "\
Locations:
  maildir:PATH[:LAYOUT=fs][:UTF-8]     a Maildir as Dovecot keeps it; as a source, read
                                       only beneath PATH: symlinks leading out of it,
                                       FIFOs and unreadable files are skipped, named
                                       (dsync: skipped: …) and make the run exit 65
  imaps://USER@HOST[:PORT]             IMAP over TLS (port 993)
  imap://USER@HOST[:PORT]              IMAP with STARTTLS (port 143): TLS and the certificate
                                       checked before the password is sent; a server
                                       without STARTTLS is refused
  imap://USER@HOST[:PORT]?tls=none     IMAP in clear text, password included: only on a
                                       network you trust
  pop3s://…, pop3://…, pop3://…?tls=none
                                       the same for POP3 (STLS; ports 995, 110): INBOX,
                                       keeping UIDLs and their order
  imaps://USER@HOST,pop3s://USER@HOST  IMAP + POP3 pair: IMAP's folders, UIDs and flags,
                                       and each INBOX message's POP3 UIDL and position
                                       (Dovecot's pop3-migration matching)
  imapc:, pop3c:                       server from -o imapc_host=… imapc_port=… imapc_ssl=…
                                       (imaps, starttls (the default) or no: clear text)
  sdbox:PATH[:INDEX=DIR][:ALT=DIR][:UTF-8]
                                       single-dbox as Dovecot 2.3 keeps it: one u.<uid> file
                                       per message, the rest in Dovecot's index
                                       (dovecot.index.log appended under Dovecot's lock, so
                                       a Dovecot may use it meanwhile); read and written
  remote:[LOGIN@]HOST                  a Dovecot through its own dsync protocol, as a source
                                       (backup, sync -1) or the destination of a backup from
                                       maildir:/sdbox: (push): runs -o dsync_remote_cmd (default
                                       `ssh -l%{login} %{host} doveadm dsync-server -u%u -U`,
                                       split on spaces as doveadm does; %u is -u USER), and
                                       keeps Dovecot's mailbox and message GUIDs, UIDs,
                                       flags and keywords; needs no IMAP master user
  'CMD ARG…'                           a location with a space is the command line that
                                       runs doveadm dsync-server (e.g. 'ssh mx doveadm
                                       dsync-server -u alice'); the command's stderr is
                                       shown, its exit code kept (67 unknown user)
An IMAP server can be the DESTINATION of backup and sync -1, and either side of a two-way
sync (the destination's password: --destination-password-file, else the source's); the
state is then kept in ~/.local/state/dsync-rs/ unless --state-file says where. With an IMAP
side, a two-way sync pairs messages through that state: expunges and folder deletes travel
only for what the state knows (a folder holding unpaired mail is kept), and flags merge per
flag against what both sides had after the last run (each side's change wins; without a
state, the union), with UNCHANGEDSINCE under CONDSTORE so a client's concurrent change is
kept.
In batches (-u, -A, -F) %u, %n (user without domain) and %d (domain) are replaced, and
`~` (or %h) in maildir:~/Maildir or sdbox:~/sdbox is that user's home: -o home=DIR (a
template such as /srv/mail/%d/%n), home in the config, or the system's passwd entry; an
unknown user is refused (67). Without a user, `~` is $HOME.
Passwords never go on the command line: --password-file, --password-command,
--oauth2-token-file or the DSYNC_PASSWORD environment variable.

Certificates: the built-in (Mozilla) roots, plus --ca-file/--ca-dir (ssl_client_ca_file,
ssl_client_ca_dir): a private CA, or the server's own self-signed certificate, trusted as
exactly that certificate for the host names it carries (its common name when it has no DNS
subjectAltName). --fingerprint sha256:HEX trusts the one certificate with that SHA-256
fingerprint under any host name, whatever its issuer and dates. -o imapc_ssl_verify=no
turns all checking off (anyone on the way can then read the password).";

const SETTINGS: &str = "\
Dovecot settings (-o), as the migration docs use them:
  imapc_master_user, pop3c_master_user  the master user of IMAP / POP3 logins, for
      imapc:, pop3c: and URL locations alike; --master-user wins over both, and both win
      over master_user in the config.
  imapc_list_prefix=INBOX  for servers that keep every folder below INBOX. (Courier,
      Cyrus): only what is below the prefix is seen, without it (INBOX.Sent -> Sent);
      INBOX is always INBOX; the prefix folder itself is left out (as by Dovecot).
      Applies to every IMAP location of the run.
  imapc_features  accepted when dsync always behaves so: rfc822.size (sizes come from
      RFC822.SIZE), fetch-headers (header hashes come from two fetched header fields),
      modseq (CONDSTORE is used when offered), search, delay-login, fetch-bodystructure
      (dsync never searches, logs in at once, never asks for BODYSTRUCTURE), and 2.4's
      no-search, no-delay-login, no-fetch-bodystructure, no-acl. Every other feature
      (gmail-migration, guid-forced, no-examine, acl, throttle:…, …) is refused by name with
      the reason. $imapc_features stands for the value set before.
  sieve=file:~/sieve;active=~/.dovecot.sieve  where the Maildir/sdbox side keeps its
      Sieve scripts (~ is the user's home): the destination's when it is local, else the
      source's; --sieve-to/--sieve-from win over it, and the other side still needs one.
  Settings dsync does not implement (imapc_max_idle_time, …) are refused, never ignored.";

const RUNS: &str = "\
Runs (backup, sync, import):
  Before anything is read from the source, the destination is locked (a second dsync on it
  exits 75, or waits with -l SECS) or, not existing yet, shown creatable; a source and a
  destination inside each other are refused (64). A batch whose users would share a
  destination or state file, or a user list naming nobody, is refused before any work.
  Ctrl-C or SIGTERM stops after the message being saved: it is committed, the state saved,
  and dsync exits 75 (\"interrupted; run again to resume\"); a batch starts no more users.
  A second Ctrl-C stops at once (still safe to resume). Files a killed run left in a
  Maildir's tmp/ are removed by the next run.";

const IMPORT_HELP: &str = "\
Search query (doveadm-search-query(7), one word per key or value, keys case-insensitive;
keys in a row must all match):
  ALL                              every message
  SEEN ANSWERED FLAGGED DELETED DRAFT, UNSEEN UNANSWERED …
  KEYWORD k, UNKEYWORD k           a keyword set / not set
  SINCE d, BEFORE d, ON d          received date: 2024-01-31 or 31-Jan-2024 (a day in the
                                   local time zone), a UNIX time, or 30d, 12h, 2w, 90mins ago
  OLDER n, YOUNGER n               received at least / less than n seconds ago
  LARGER n, SMALLER n              size above / below n: 500, 10k, 5M, 1G
  UID 1:100,200:*, or 1:10         UIDs, or sequence numbers (`*`: the last message; in a
                                   UID set `*` is the highest possible UID, as in doveadm)
  MAILBOX name                     a source mailbox; * and % wildcards; levels separated by
                                   / or . (as doveadm shows a maildir source)
  MAILBOX-GUID g, GUID g           a mailbox / message GUID (sources that report them)
  NOT k, k OR k, ( … )             negation, alternatives, grouping (quote the parentheses)
An OR makes its whole list alternatives, as in doveadm: `MAILBOX INBOX SEEN OR FLAGGED` is
every INBOX message plus every seen or flagged one; write `MAILBOX INBOX ( SEEN OR FLAGGED )`.
A mailbox named without wildcards must exist (exit 68). A folder is created only for a
mailbox with something to import. Refused (exit 64), as they need more than a listing: header
and body keys (SUBJECT FROM TO CC BCC HEADER BODY TEXT SENTSINCE SENTBEFORE SENTON),
RECENT NEW OLD, SAVEDSINCE SAVEDBEFORE SAVEDON, MODSEQ, INTHREAD, X-MAILBOX.
The filters (-m, -x, -t, -e, -O, -I) apply as well.

Examples:
  dsync import maildir:/restore/alice maildir:/srv/mail/alice Restored
  dsync import maildir:/backup/alice maildir:/srv/mail/alice '' mailbox INBOX SINCE 30d
  dsync import -u alice -U bob 'maildir:~/Maildir' maildir:/srv/mail/alice From-bob ALL
  dsync import -s imaps://alice@old.example.com maildir:/srv/mail/alice Old \\
      '(' SEEN OR FLAGGED ')' NOT mailbox Trash";

/// Migrate and synchronise mailboxes, preserving UIDs, UIDVALIDITY, flags, keywords,
/// received dates, folders and subscriptions.
#[derive(Debug, Parser)]
#[command(
    name = "dsync",
    version,
    after_help = format!("{LOCATIONS}\n\n{SETTINGS}\n\n{RUNS}\n\n{EXIT_CODES}"),
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// Debug: log protocol lines too (passwords and tokens are never logged).
    #[arg(short = 'D', long = "debug", global = true)]
    pub(crate) debug: bool,

    /// Verbose: log each mailbox as it is done.
    #[arg(short, long, global = true)]
    pub(crate) verbose: bool,

    /// Print nothing but errors (no progress, no summary).
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,

    /// Read defaults and named accounts from this TOML file.
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE", env = "DSYNC_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// Override a setting, with Dovecot's names: imapc_host, imapc_port, imapc_user,
    /// imapc_ssl, imapc_ssl_verify, imapc_master_user, imapc_list_prefix,
    /// imapc_sasl_mechanisms, imapc_cmd_timeout, imapc_connection_timeout_interval,
    /// imapc_connection_retry_count, imapc_connection_retry_interval, imapc_max_line_length,
    /// imapc_rawlog_dir, imapc_features, pop3c_host/port/user/ssl/master_user/rawlog_dir/features,
    /// mail_prefetch_count, mail_fsync, ssl_client_ca_file, ssl_client_ca_dir (or 2.2's
    /// imapc_ssl_ca_dir), dsync_commit_msgs_interval, dsync_remote_cmd, mail_max_lock_timeout, mail_uid, mail_gid,
    /// home (or mail_home), pop3_migration_skip_size_check, pop3_migration_ignore_missing_uidls,
    /// pop3_migration_ignore_extra_uidls, sieve (Pigeonhole's location of the Maildir or
    /// sdbox side's Sieve scripts, e.g. file:~/sieve;active=~/.dovecot.sieve: the
    /// destination's, else the source's, unless --sieve-to/--sieve-from name it)
    /// (repeatable; see "Dovecot settings" below).
    #[arg(short = 'o', global = true, value_name = "KEY=VALUE")]
    pub(crate) settings: Vec<String>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Make DESTINATION identical to SOURCE: copy what is missing, revert what differs,
    /// delete what the source does not have. The source is only read.
    #[command(after_help = "Examples:
  DSYNC_PASSWORD=secret dsync backup imaps://alice@old.example.com maildir:/srv/mail/alice
  dsync backup --password-file pw -x '\\Trash' imaps://alice@old.example.com maildir:~/Maildir
  dsync backup -R maildir:/srv/mail/alice maildir:/backup/alice     # restore from the backup
  dsync backup --password-file old.pw --destination-password-file new.pw \\
      imaps://alice@old.example.com imaps://alice@new.example.com   # server to server
  dsync -c dsync.toml backup -u alice                                # an account of the config
  dsync backup -F users.txt -j 8 --master-user admin --password-file master.pw \\
      'imaps://%u@old.example.com' 'maildir:/srv/mail/%d/%n/Maildir'")]
    Backup(BackupArgs),

    /// Merge two locations (doveadm sync): both are written, each gets the other's changes.
    /// With -1, merge SOURCE into DESTINATION only (changes made on DESTINATION stay).
    /// Without a saved state, Dovecot's own history in a Maildir or sdbox it served
    /// (expunges, flag changes, deleted and renamed folders) tells what each side changed.
    /// With an IMAP server on a side, messages are paired through the state: only what it
    /// knows is expunged or deleted on the other side, and a flag either side changed since
    /// the last run takes that side's value (without a state: the union).
    #[command(after_help = "Examples:
  dsync sync maildir:/srv/a maildir:/srv/b
  dsync sync --password-file a.pw --destination-password-file b.pw \\
      imaps://alice@a.example.com imaps://alice@b.example.com
  dsync sync -1 --password-file pw imaps://alice@old.example.com maildir:/srv/mail/alice
  state=$(dsync sync -1 -s \"$state\" imaps://alice@old.example.com maildir:/srv/mail/alice)")]
    Sync(SyncArgs),

    /// Copy messages from SOURCE into DESTINATION (under PARENT) with new UIDs, keeping
    /// flags and dates (doveadm import); running it again copies nothing twice. A search
    /// QUERY after PARENT selects mailboxes and messages (default: ALL).
    #[command(after_help = IMPORT_HELP)]
    Import(ImportArgs),

    /// Mailbox commands.
    #[command(subcommand)]
    Mailbox(MailboxCommand),

    /// Compare two locations: folders, subscriptions, UIDVALIDITY, UIDNEXT, UIDs, sizes,
    /// flags, keywords, received dates and POP3 UIDLs. Prints every difference; exits 1
    /// if there is any, 68 if a -m matches no mailbox (nothing compared for it).
    #[command(after_help = "Examples:
  dsync verify --password-file pw imaps://alice@old.example.com maildir:/srv/mail/alice
  dsync verify --bodies maildir:/srv/mail/alice maildir:/backup/alice")]
    Verify(VerifyArgs),

    /// Preflight: connect, log in and list every folder with its message count and size.
    #[command(after_help = "Examples:
  dsync check --password-file pw imaps://alice@old.example.com
  dsync check -F users.txt -j 8 --master-user admin --password-file master.pw 'imaps://%u@old.example.com'")]
    Check(CheckArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Example:
  dsync completions bash > /etc/bash_completion.d/dsync")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },

    /// Print the man page (dsync.1), or write one page per command into DIR.
    #[command(after_help = "Example:
  dsync man > /usr/local/share/man/man1/dsync.1")]
    Man {
        /// Write dsync.1 and dsync-VERB.1 pages here instead of printing dsync.1.
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MailboxCommand {
    /// List the folders of a location (doveadm mailbox list).
    #[command(after_help = "Examples:
  dsync mailbox list maildir:/srv/mail/alice
  dsync mailbox list -s --password-file pw imaps://alice@old.example.com 'Archive*'")]
    List(MailboxListArgs),
}

/// The two locations of a sync.
#[derive(Debug, Args)]
pub(crate) struct Locations {
    /// Where mail is read (see "Locations" in `dsync --help`). May be left out when -u/-A
    /// take it from the config file.
    pub(crate) source: Option<String>,

    /// Where mail is written (a Maildir, an sdbox store or an IMAP server).
    pub(crate) destination: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// Reverse: read from the second location, write the first.
    #[arg(short = 'R')]
    pub(crate) reverse: bool,

    #[command(flatten)]
    pub(crate) locations: Locations,

    /// After the backup, compare both sides as `dsync verify` does (within the filters)
    /// and end with its verdict; exit 1 if anything differs. --verify=bodies also
    /// compares every message's contents (reads everything again on both sides).
    #[arg(
        long,
        value_name = "WHAT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "metadata",
        help_heading = "Output"
    )]
    pub(crate) verify: Option<crate::verify::Level>,

    #[command(flatten)]
    pub(crate) state: StateArgs,

    #[command(flatten)]
    pub(crate) replicator: ReplicatorNotify,

    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// One-way: merge SOURCE into DESTINATION without reverting DESTINATION's own changes.
    #[arg(short = '1')]
    pub(crate) one_way: bool,

    /// Reverse: the second location plays the source.
    #[arg(short = 'R')]
    pub(crate) reverse: bool,

    #[command(flatten)]
    pub(crate) locations: Locations,

    #[command(flatten)]
    pub(crate) state: StateArgs,

    #[command(flatten)]
    pub(crate) replicator: ReplicatorNotify,

    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// Subscribe to the folders imported into.
    #[arg(short = 's')]
    pub(crate) subscribe: bool,

    #[command(flatten)]
    pub(crate) locations: Locations,

    /// The folder the source's folders go under (`/`-separated; '' or left out: the top
    /// level).
    #[arg(value_name = "PARENT")]
    pub(crate) parent: Option<String>,

    /// Which mailboxes and messages to import, in doveadm's search query language (see
    /// below) [default: ALL].
    #[arg(value_name = "QUERY")]
    pub(crate) query: Vec<String>,

    /// The user whose mail SOURCE is (doveadm import -U): %u, %n, %d and ~ in SOURCE are
    /// this user's (~ from the system's passwd entry), and `imapc:` logs in as this user.
    #[arg(short = 'U', value_name = "SOURCE_USER")]
    pub(crate) source_user: Option<String>,

    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "State")]
pub(crate) struct StateArgs {
    /// Dovecot's state string: '' starts stateful with a full sync; the new state is
    /// printed on stdout. dsync's own state file keeps the details; see the README.
    #[arg(short = 's', value_name = "STATE")]
    pub(crate) dovecot_state: Option<String>,

    /// Full sync: ignore the saved state (list and compare every mailbox).
    #[arg(short = 'f', long = "full")]
    pub(crate) full: bool,

    /// Where to keep what the next run needs to be incremental (default: a file
    /// `dsync-rs-state` in the destination Maildir's root, which Dovecot ignores). In
    /// batches a template: --state-file '/var/lib/dsync/%u.state'.
    #[arg(long, value_name = "FILE", conflicts_with = "no_state")]
    pub(crate) state_file: Option<PathBuf>,

    /// Keep no state: every run lists every mailbox in full.
    #[arg(long)]
    pub(crate) no_state: bool,

    /// Purge the destination after the sync (doveadm -P; only mdbox storage has anything
    /// to purge).
    #[arg(short = 'P')]
    pub(crate) purge: bool,

    /// The destination's "all mail" folder (a name, or a role such as '\All'): a message
    /// whose GUID it already holds is copied there (hard-linked) instead of downloaded
    /// again. Needs message GUIDs from the source: a Maildir, Dovecot (X-GUID) or Gmail
    /// (X-GM-MSGID). The folder is synced first (doveadm -a).
    #[arg(short = 'a', value_name = "MAILBOX")]
    pub(crate) all_mail: Option<String>,

    /// backup into an IMAP server: also delete what dsync did not put there (messages and
    /// folders the source does not have). Without it such a backup deletes only its own
    /// earlier copies, as its state records them (see the README).
    #[arg(long)]
    pub(crate) delete_extra: bool,
}

/// Everything sync, backup and import share.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) filters: FilterArgs,

    #[command(flatten)]
    pub(crate) doveadm_only: DoveadmOnly,

    #[command(flatten)]
    pub(crate) write: WriteArgs,

    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,

    #[command(flatten)]
    pub(crate) batch: BatchArgs,

    #[command(flatten)]
    pub(crate) output: OutputArgs,

    #[command(flatten)]
    pub(crate) sieve: SieveArgs,
}

/// The user's Sieve scripts, migrated after the mail.
#[derive(Debug, Args)]
#[command(next_help_heading = "Sieve scripts")]
pub(crate) struct SieveArgs {
    /// Also migrate the user's Sieve scripts (after the mail) from LOCATION:
    /// sieve://USER@HOST[:PORT] (ManageSieve, STARTTLS; ?tls=none for clear text; the same
    /// password, master user and TLS options as imap://) or file:DIR[;active=PATH]
    /// (Pigeonhole's file store; ~ is the user's home). backup makes the destination's
    /// scripts and active script equal (extra scripts removed), sync -1 adds and updates,
    /// sync merges both ways against what the last run left (saved next to the state
    /// file; a conflict goes to the later file mtime, else the source, with a warning).
    /// A script the destination refuses is reported with its reason (exit 65), the rest
    /// and the mail go on. Templates (%u, %n, %d) as for mail locations.
    #[arg(long, value_name = "LOCATION")]
    pub(crate) sieve_from: Option<String>,

    /// Where the Sieve scripts go: sieve://USER@HOST[:PORT][?tls=none] or
    /// file:DIR[;active=PATH] (see --sieve-from).
    #[arg(long, value_name = "LOCATION")]
    pub(crate) sieve_to: Option<String>,
}

/// doveadm sync/backup letters dsync does not implement: accepted by the parser only to
/// be refused with the reason (see [`DoveadmOnly::refusal`]) instead of clap's "unexpected
/// argument".
#[derive(Debug, Args)]
pub(crate) struct DoveadmOnly {
    #[arg(short = 'N', hide = true)]
    all_namespaces: bool,

    #[arg(short = 'g', hide = true, value_name = "MAILBOX_GUID")]
    mailbox_guid: Option<String>,

    #[arg(short = 'd', hide = true)]
    default_replica: bool,

    #[arg(short = 'E', hide = true)]
    legacy_wrapper: bool,

    #[arg(short = 'S', hide = true, value_name = "SOCKET")]
    server_socket: Option<String>,
}

impl DoveadmOnly {
    /// "not supported: …" with the reason, for the first such letter given.
    pub(crate) fn refusal(&self) -> Option<String> {
        let reason = if self.all_namespaces {
            "-N (every namespace): dsync syncs the personal namespace (INBOX and its folders), \
             the only one a Maildir or a migrated IMAP account has here; leave -N out"
        } else if self.mailbox_guid.is_some() {
            "-g (a mailbox by its GUID): name the mailbox with -m NAME instead"
        } else if self.default_replica {
            "-d (the destination from the mail_replica userdb field, for Dovecot's replicator): \
             give the destination location"
        } else if self.legacy_wrapper {
            "-E (doveadm's internal flag for the old dsync wrapper): leave it out"
        } else if self.server_socket.is_some() {
            "-S (run the command on a doveadm server): dsync runs the sync itself; leave -S out"
        } else {
            return None;
        };
        Some(format!("not supported: {reason}"))
    }
}

/// `-U` of doveadm sync/backup (tell Dovecot's replicator when done), refused with the
/// reason. (`import -U` is another option, and supported.)
#[derive(Debug, Args)]
pub(crate) struct ReplicatorNotify {
    #[arg(short = 'U', hide = true)]
    notify: bool,
}

impl ReplicatorNotify {
    /// "not supported: …" when `-U` was given.
    pub(crate) fn refusal(&self) -> Option<String> {
        self.notify.then(|| {
            "not supported: -U (notify Dovecot's replicator when done): dsync runs without a \
             replicator; leave -U out (import -U SOURCE_USER is supported)"
                .to_owned()
        })
    }
}

/// The filters: what they leave out is counted in the summary per reason (`--json`:
/// `filtered`); a -m that matches no source mailbox is a warning. -t, -e, -O and -I apply
/// to backup and import (and POP3 sources); sync -1 refuses them.
#[derive(Debug, Args)]
#[command(next_help_heading = "Filters")]
pub(crate) struct FilterArgs {
    /// Only this mailbox: a name with * % ? wildcards, or a special-use flag such as
    /// '\Sent' (repeatable). One that matches no source mailbox is a warning; the summary
    /// counts the mailboxes left out.
    #[arg(short = 'm', value_name = "MAILBOX")]
    pub(crate) mailboxes: Vec<String>,

    /// Never this mailbox: wildcards or '\Trash'-style flags (repeatable).
    #[arg(short = 'x', value_name = "MASK")]
    pub(crate) exclude: Vec<String>,

    /// Only this namespace prefix (repeatable). Only the personal namespace ('' or
    /// INBOX) is synced.
    #[arg(short = 'n', value_name = "PREFIX")]
    pub(crate) namespaces: Vec<String>,

    /// Only mail received since DATE: YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS, a UNIX time, or an
    /// age such as 30d, 12h, 2w. This and -e, -O, -I apply to backup and import (sync -1
    /// refuses them); the summary counts what each left out.
    #[arg(short = 't', value_name = "DATE")]
    pub(crate) since: Option<String>,

    /// Only mail received until DATE (same forms as -t).
    #[arg(short = 'e', value_name = "DATE")]
    pub(crate) until: Option<String>,

    /// Only mail with FLAG (a flag or keyword), or with -FLAG only mail without it.
    #[arg(short = 'O', value_name = "FLAG", allow_hyphen_values = true)]
    pub(crate) flag: Option<String>,

    /// Skip mail larger than SIZE (bytes, or with k, M, G).
    #[arg(short = 'I', value_name = "SIZE")]
    pub(crate) max_size: Option<String>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Writing")]
pub(crate) struct WriteArgs {
    /// Show what would be done without changing anything (nothing is locked or written).
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Commit after this many saved messages, so an interrupted run resumes where it
    /// stopped (Dovecot's dsync_commit_msgs_interval) [default: 100].
    #[arg(long, value_name = "N")]
    pub(crate) commit_interval: Option<u32>,

    /// How many planned messages a copy reads per request to the source (default
    /// 16 384); hidden: for tests that cross a batch boundary with a small folder.
    #[arg(long, value_name = "N", hide = true)]
    pub(crate) save_batch: Option<usize>,

    /// Do not fsync each message; sync everything once at the end (Dovecot's
    /// mail_fsync=never, recommended for migrations). A killed run still leaves a
    /// consistent destination; only a power loss before the end can lose recent writes.
    #[arg(long)]
    pub(crate) no_fsync: bool,

    /// Wait up to SECS for another dsync that is writing the destination (every run locks
    /// it: file dsync-rs.lock in its root) instead of exiting 75 at once; also the Maildir
    /// lock timeout [default: 0].
    #[arg(short = 'l', value_name = "SECS")]
    pub(crate) lock_timeout: Option<u64>,

    /// Give every directory and file created in the destination this owner (and group),
    /// names or numbers, as Dovecot's mail_uid/mail_gid. By default they are the
    /// destination root's (of its nearest existing parent while it does not exist), with
    /// the root's mode bits, as Dovecot gives them; changing owners needs root.
    #[arg(long, value_name = "USER[:GROUP]")]
    pub(crate) owner: Option<String>,
}

#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Connection")]
pub(crate) struct ConnectionArgs {
    /// Read the password from the first line of FILE (else $DSYNC_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub(crate) password_file: Option<PathBuf>,

    /// Run CMD with /bin/sh and use the first line it prints as the password.
    #[arg(long, value_name = "CMD", conflicts_with = "password_file")]
    pub(crate) password_command: Option<String>,

    /// An IMAP destination's password: the first line of FILE (else the source's).
    #[arg(long, value_name = "FILE")]
    pub(crate) destination_password_file: Option<PathBuf>,

    /// Log in with the OAuth2 access token in FILE (XOAUTH2 unless --sasl-mechanism says
    /// oauthbearer); the file is read again at every connection.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["password_file", "password_command"])]
    pub(crate) oauth2_token_file: Option<PathBuf>,

    /// How to log in: plain, login, xoauth2 or oauthbearer [default: PLAIN when offered].
    #[arg(long, value_name = "MECHANISM")]
    pub(crate) sasl_mechanism: Option<String>,

    /// Trust the certificates in this PEM file (ssl_client_ca_file) besides the built-in
    /// roots: a private CA, or the server's own self-signed certificate (then exactly that
    /// one, for the host names it carries).
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,

    /// Trust the certificates in the PEM files of this directory (ssl_client_ca_dir;
    /// c_rehash'd or not), as --ca-file does.
    #[arg(long, value_name = "DIR")]
    pub(crate) ca_dir: Option<PathBuf>,

    /// Trust the one server certificate with this SHA-256 fingerprint, under any host name
    /// and whatever its issuer and dates (compare with `openssl x509 -noout -fingerprint
    /// -sha256 -in CERT.pem` on the server). Repeatable.
    #[arg(long, value_name = "sha256:HEX")]
    pub(crate) fingerprint: Vec<mailnet::Fingerprint>,

    /// Log in as this master user on behalf of the location's user (Dovecot master-user
    /// login with AUTHENTICATE PLAIN). `user*master` in the location works too; wins over
    /// -o imapc_master_user / pop3c_master_user.
    #[arg(long, value_name = "MASTER")]
    pub(crate) master_user: Option<String>,

    /// Seconds a server may take without progress (no complete reply line, not 16 KiB of a
    /// message) before the command is given up, temporary (75). Connecting waits at most
    /// 30 in all, 15 of them for the greeting (less with a smaller -T); a port that stays
    /// silent is then checked for TLS, to say so [default: 300].
    #[arg(short = 'T', long = "timeout", value_name = "SECONDS")]
    pub(crate) timeout: Option<u64>,

    /// After a temporary failure (connection lost, timeout) reconnect and go on this many
    /// times; the saved state makes each retry resume [default: 1].
    #[arg(long, value_name = "N")]
    pub(crate) retries: Option<u32>,

    /// Sync up to N folders of a user at once, each over its own connection (backup into a
    /// Maildir or an sdbox store, backup and sync -1 into an IMAP server; at most 8, as
    /// servers limit connections per user: Dovecot allows 10) [default: 1]. Over a slow
    /// link this hides the round trips each folder costs; into IMAP the server saves N
    /// folders at once.
    #[arg(long, value_name = "N")]
    pub(crate) parallel_folders: Option<usize>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Batches")]
pub(crate) struct BatchArgs {
    /// Run for this user: an account of the config file, or the user put into the
    /// location templates (%u, %n, %d).
    #[arg(short = 'u', value_name = "USER", conflicts_with_all = ["all_users", "user_file"])]
    pub(crate) user: Option<String>,

    /// Run for every account of the config file.
    #[arg(short = 'A', conflicts_with = "user_file")]
    pub(crate) all_users: bool,

    /// Run for every user listed in FILE: one per line, `USER [SOURCE|-] [CREDENTIAL]`,
    /// where CREDENTIAL is file:PATH, env:NAME, command:CMD or oauth2-file:PATH;
    /// '#' starts a comment.
    #[arg(short = 'F', value_name = "FILE")]
    pub(crate) user_file: Option<PathBuf>,

    /// Users synced in parallel [default: 1].
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub(crate) jobs: Option<usize>,

    /// Take only every N-th user, starting with the I-th (0-based): `--shard 2/8`, for a
    /// batch runner that fans one list out over processes or machines (xargs -P, GNU
    /// parallel, `--shard "$JOB_COMPLETION_INDEX/8"` in a Kubernetes Indexed Job).
    #[arg(long, value_name = "I/N")]
    pub(crate) shard: Option<String>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Output")]
pub(crate) struct OutputArgs {
    /// Print the result as JSON (per user: status, messages, bytes, duration, errors)
    /// instead of the summary or table.
    #[arg(long)]
    pub(crate) json: bool,

    /// Write a log per user (USER.log) into DIR [batches default: ./dsync-logs].
    #[arg(long, value_name = "DIR")]
    pub(crate) log_dir: Option<PathBuf>,

    /// Write the raw protocol of each connection (credentials masked) into DIR/USER.rawlog.
    #[arg(short = 'r', long = "rawlog-dir", value_name = "DIR")]
    pub(crate) rawlog_dir: Option<PathBuf>,

    /// Seconds between progress lines when stderr is not a terminal [default: 10].
    #[arg(long, value_name = "SECS")]
    pub(crate) progress_interval: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The reference location.
    pub(crate) source: String,

    /// The location compared with it.
    pub(crate) destination: String,

    /// Also compare message contents, not only sizes (reads every message on both sides).
    #[arg(long)]
    pub(crate) bodies: bool,

    /// Only this mailbox (wildcards or '\Sent'; repeatable). One that matches no mailbox
    /// on either side is an error (exit 68): nothing was compared for it.
    #[arg(short = 'm', value_name = "MAILBOX")]
    pub(crate) mailboxes: Vec<String>,

    /// Never this mailbox (repeatable).
    #[arg(short = 'x', value_name = "MASK")]
    pub(crate) exclude: Vec<String>,

    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,

    /// Print the differences as JSON.
    #[arg(long)]
    pub(crate) json: bool,

    /// Also compare the Sieve scripts of --sieve-from and --sieve-to (names, bytes, the
    /// active script).
    #[command(flatten)]
    pub(crate) sieve: SieveArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The location to check (may be left out with -u/-A, or be a template with -F).
    pub(crate) location: Option<String>,

    /// Also list the user's Sieve scripts at LOCATION (sieve://USER@HOST[:PORT][?tls=none]
    /// or file:DIR[;active=PATH]; templates %u, %n, %d, ~ per user): names, sizes, the
    /// active one. With -A/-F each user's log lists them and the table counts them. A
    /// listed name Pigeonhole's rules refuse is shown and makes the exit code 65.
    #[arg(long = "sieve", value_name = "LOCATION")]
    pub(crate) sieve: Option<String>,

    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,

    #[command(flatten)]
    pub(crate) batch: BatchArgs,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct MailboxListArgs {
    /// The location.
    pub(crate) location: String,

    /// Only mailboxes matching these patterns (wildcards * % ?).
    pub(crate) patterns: Vec<String>,

    /// Only subscribed mailboxes.
    #[arg(short = 's')]
    pub(crate) subscribed: bool,

    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
