//! The accounts (one private Dovecot per size) and the peers run over all of them.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{MAIL_GID, MAIL_UID};

use crate::measure::{self, Invocation, Sample};
use crate::{Cli, Result, Server, corpus};

/// Dovecot's master user of every testkit instance (`Dovecot::master_credentials`).
pub(crate) fn master(set: &Set) -> (&'static str, &'static str) {
    set.dovecot.master_credentials()
}

/// One account size: its server, users and scratch space.
pub(crate) struct Set {
    pub(crate) name: &'static str,
    pub(crate) dovecot: Server,
    pub(crate) users: Vec<String>,
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    /// Scratch: user list, configs, destinations, logs.
    pub(crate) work: PathBuf,
}

impl Set {
    /// Starts a Dovecot with `count` users and writes each one's Maildir; `extra` goes
    /// into Dovecot's configuration (e.g. login processes that serve many connections).
    pub(crate) fn start(
        root: &Path,
        name: &'static str,
        count: usize,
        messages: u32,
        extra: &str,
    ) -> Result<Set> {
        let users: Vec<String> = (0..count).map(|i| format!("{name}{i:04}")).collect();
        let mut builder = Server::builder().temp_root(root).extra_config(extra);
        for user in &users {
            builder = builder.user(user, &format!("{user}-pw"));
        }
        let dovecot = builder.start();
        let (mut total, mut bytes) = (0, 0);
        for (seed, user) in (0u64..).zip(&users) {
            let summary =
                corpus::generate(&dovecot.home(user).join("Maildir"), messages, &[], seed)?;
            total += summary.messages;
            bytes += summary.bytes;
        }
        testkit::chown_to_mail_user(&dovecot.dir().join("home"));
        let work = root.join(format!("dsync-users-{name}-{}", std::process::id()));
        fs::create_dir_all(&work)?;
        fs::write(work.join("users.txt"), users.join("\n") + "\n")?;
        fs::write(work.join("master.pw"), format!("{}\n", dovecot.master_credentials().1))?;
        Ok(Set { name, dovecot, users, messages: total, bytes, work })
    }

    pub(crate) fn cleanup(self) {
        let _ = fs::remove_dir_all(&self.work);
    }
}

/// One contestant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// `dsync backup -F -j N --no-fsync` over IMAP (clear text on loopback).
    Dsync,
    /// The same over imaps (TLS sessions shared and resumed within the run).
    DsyncTls,
    /// `--compare-dsync` over imaps.
    DsyncOtherTls,
    /// `xargs -P N doveadm backup -R -u USER imapc:` (mail_fsync=never).
    Doveadm,
    /// `doveadm backup -R -A imapc:` (one process, users one after the other).
    DoveadmAll,
    /// N `mbsync -a` processes, each with its share of the users as channels.
    Mbsync,
}

impl Peer {
    pub(crate) const ALL: [Peer; 6] = [
        Peer::Dsync,
        Peer::DsyncTls,
        Peer::DsyncOtherTls,
        Peer::Doveadm,
        Peer::DoveadmAll,
        Peer::Mbsync,
    ];

    pub(crate) fn slug(self) -> &'static str {
        match self {
            Peer::Dsync => "dsync",
            Peer::DsyncTls => "dsync-tls",
            Peer::DsyncOtherTls => "dsync-other-tls",
            Peer::Doveadm => "doveadm",
            Peer::DoveadmAll => "doveadm-all",
            Peer::Mbsync => "mbsync",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Peer::Dsync => "dsync -F -j N, imap",
            Peer::DsyncTls => "dsync -F -j N, imaps",
            Peer::DsyncOtherTls => "other dsync build, imaps",
            Peer::Doveadm => "xargs -P N doveadm backup -u",
            Peer::DoveadmAll => "doveadm backup -A",
            Peer::Mbsync => "N × mbsync -a (channel per user)",
        }
    }
}

/// One measured command.
pub(crate) struct Row {
    pub(crate) peer: Peer,
    pub(crate) jobs: usize,
    pub(crate) noop: bool,
    pub(crate) result: std::result::Result<Sample, String>,
    /// CPU seconds the Dovecot instance (master and every process under it) spent.
    pub(crate) server_cpu: f64,
    pub(crate) command: String,
}

/// Warms Dovecot's indexes up once, then runs every peer per `-j`: a full run into a
/// fresh destination and a no-op re-run.
pub(crate) fn run_all(
    set: &Set,
    peers: &[Peer],
    jobs: &[usize],
    dsync: &Path,
    other: Option<&Path>,
    cli: &Cli,
) -> Result<Vec<Row>> {
    let limit = Some(std::time::Duration::from_secs(cli.time_limit));
    eprintln!("   warm-up: dsync -j 4 (Dovecot builds its indexes)");
    let warm = set.work.join("dest-warmup");
    let invocation = command(set, Peer::Dsync, 4, dsync, other, &warm)?;
    measure::run(&invocation, &set.work.join("warmup.log"), &[0])?;
    let _ = fs::remove_dir_all(&warm);
    let mut rows = Vec::new();
    for &j in jobs {
        for &peer in peers {
            if peer == Peer::DoveadmAll && j != jobs[0] {
                continue;
            }
            let jobs = if peer == Peer::DoveadmAll { 1 } else { j };
            let dest = set.work.join(format!("dest-{}-{jobs}", peer.slug()));
            let _ = fs::remove_dir_all(&dest);
            let invocation = command(set, peer, jobs, dsync, other, &dest)?.time_limit(limit);
            for noop in [false, true] {
                if noop {
                    // As a real re-run would be: tools that trust directory mtimes wait
                    // for the clock to move past a just-written directory otherwise.
                    std::thread::sleep(std::time::Duration::from_millis(1100));
                }
                let run = if noop { "noop" } else { "full" };
                let log = set.work.join(format!("{}-{jobs}-{run}.out", peer.slug()));
                if matches!(peer, Peer::Dsync | Peer::DsyncTls) {
                    // Each run's per-user logs apart (their timing lines are read later).
                    let logs = set.work.join(format!("logs-{}-{jobs}-{run}", peer.slug()));
                    let _ = fs::remove_dir_all(&logs);
                }
                let before = server_cpu(&set.dovecot);
                let invocation = match peer {
                    Peer::Dsync | Peer::DsyncTls | Peer::DsyncOtherTls => invocation
                        .clone()
                        .arg("--log-dir")
                        .arg(set.work.join(format!("logs-{}-{jobs}-{run}", peer.slug()))),
                    _ => invocation.clone(),
                };
                let result = measure::run(&invocation, &log, &[0])
                    .map_err(|e| e.to_string())
                    .and_then(|sample| {
                        check(set, peer, &dest).map_err(|e| format!("wrong result: {e}"))?;
                        Ok(sample)
                    });
                let server = server_cpu(&set.dovecot) - before;
                match &result {
                    Ok(s) => eprintln!(
                        "   {:<36} -j {jobs:<3} {run}: {:>7.2} s, cpu {:>6.2} s, server {:>6.2} s",
                        peer.label(),
                        s.seconds,
                        s.cpu_seconds,
                        server
                    ),
                    Err(e) => eprintln!("   {:<36} -j {jobs:<3} {run}: FAILED {e}", peer.label()),
                }
                let failed = result.is_err();
                rows.push(Row {
                    peer,
                    jobs,
                    noop,
                    result,
                    server_cpu: server,
                    command: invocation.display(),
                });
                if failed {
                    break;
                }
            }
            let _ = fs::remove_dir_all(&dest);
        }
    }
    Ok(rows)
}

fn command(
    set: &Set,
    peer: Peer,
    jobs: usize,
    dsync: &Path,
    other: Option<&Path>,
    dest: &Path,
) -> Result<Invocation> {
    let dovecot = &set.dovecot;
    let (master_user, master_password) = master(set);
    let users = set.work.join("users.txt");
    let dsync_batch = |program: &Path, source: String| {
        let mut invocation = Invocation::new(program)
            .arg("-q")
            .arg("backup")
            .arg("-F")
            .arg(&users)
            .arg("-j")
            .arg(jobs.to_string())
            .arg("--no-fsync")
            .arg("--master-user")
            .arg(master_user)
            .arg("--password-file")
            .arg(set.work.join("master.pw"));
        if source.starts_with("imaps:") {
            invocation = invocation.arg("--ca-file").arg(dovecot.ca_file());
        }
        invocation.arg(source).arg(format!("maildir:{}/%u", dest.display()))
    };
    Ok(match peer {
        Peer::Dsync => {
            dsync_batch(dsync, format!("imap://%u@127.0.0.1:{}?tls=none", dovecot.imap_port()))
        }
        Peer::DsyncTls => {
            dsync_batch(dsync, format!("imaps://%u@127.0.0.1:{}", dovecot.imaps_port()))
        }
        Peer::DsyncOtherTls => dsync_batch(
            other.ok_or("no --compare-dsync")?,
            format!("imaps://%u@127.0.0.1:{}", dovecot.imaps_port()),
        ),
        Peer::Doveadm | Peer::DoveadmAll => {
            // doveadm switches to the mail user, who must be able to create DEST/%u.
            fs::create_dir_all(dest)?;
            std::os::unix::fs::chown(dest, Some(MAIL_UID), Some(MAIL_GID))?;
            // In the config: `-o mail_location=…/%u` would not expand %u.
            let config = set.work.join(format!("doveadm-{}.conf", peer.slug()));
            fs::write(
                &config,
                format!(
                    "!include {}\nimapc_host = 127.0.0.1\nimapc_port = {}\nimapc_user = %u\n\
                     imapc_master_user = {master_user}\nimapc_password = {master_password}\n\
                     imapc_features = rfc822.size fetch-headers modseq\nimapc_list_prefix =\n\
                     mail_prefetch_count = 20\nmail_fsync = never\n\
                     mail_location = maildir:{}/%u\n",
                    dovecot.config_file().display(),
                    dovecot.imap_port(),
                    dest.display()
                ),
            )?;
            if peer == Peer::DoveadmAll {
                Invocation::new("/usr/bin/doveadm")
                    .arg("-c")
                    .arg(&config)
                    .arg("backup")
                    .arg("-R")
                    .arg("-A")
                    .arg("imapc:")
            } else {
                Invocation::new("/bin/sh").arg("-c").arg(format!(
                    "xargs -P {jobs} -I{{}} /usr/bin/doveadm -c {} backup -R -u {{}} imapc: < {}",
                    config.display(),
                    users.display()
                ))
            }
        }
        Peer::Mbsync => {
            fs::create_dir_all(dest)?;
            let configs = set.work.join(format!("mbsync-{jobs}"));
            let _ = fs::remove_dir_all(&configs);
            fs::create_dir_all(&configs)?;
            let mut texts = vec![String::new(); jobs];
            for (index, user) in set.users.iter().enumerate() {
                let _ = write!(
                    texts[index % jobs],
                    "IMAPAccount a{index}\nHost 127.0.0.1\nPort {port}\nUser {user}*{master_user}\n\
                     Pass {master_password}\nSSLType None\nAuthMechs LOGIN\n\n\
                     IMAPStore s{index}\nAccount a{index}\n\n\
                     MaildirStore d{index}\nInbox {dest}/{user}\nSubFolders Maildir++\n\n\
                     Channel c{index}\nFar :s{index}:\nNear :d{index}:\nPatterns *\nCreate Near\n\
                     Sync Pull\nSyncState *\n\n",
                    port = dovecot.imap_port(),
                    dest = dest.display(),
                );
            }
            for (index, text) in texts.iter().enumerate() {
                fs::write(configs.join(format!("{index}.conf")), text)?;
            }
            Invocation::new("/bin/sh").arg("-c").arg(format!(
                "ls {dir}/*.conf | xargs -P {jobs} -I{{}} /usr/bin/mbsync -q -c {{}} -a",
                dir = configs.display()
            ))
        }
    })
}

/// Every message of every user arrived: the destination holds as many message files as
/// the source has messages (each tool writes Maildir++ with `cur/` and `new/`).
fn check(set: &Set, peer: Peer, dest: &Path) -> Result<()> {
    let mut files = 0u64;
    count_messages(dest, &mut files)?;
    if files != set.messages {
        return Err(format!(
            "{}: {files} message files in {}, the source has {}",
            peer.slug(),
            dest.display(),
            set.messages
        )
        .into());
    }
    Ok(())
}

fn count_messages(dir: &Path, files: &mut u64) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let path = entry.path();
        match path.file_name().and_then(|n| n.to_str()) {
            Some("cur" | "new") => *files += u64::try_from(fs::read_dir(&path)?.count())?,
            Some("tmp") => {}
            _ => count_messages(&path, files)?,
        }
    }
    Ok(())
}

/// CPU seconds of the Dovecot instance so far: its master's own and reaped children's
/// times, plus those of every process still running under it.
pub(crate) fn server_cpu(dovecot: &Server) -> f64 {
    let Ok(text) = fs::read_to_string(dovecot.dir().join("run/master.pid")) else { return 0.0 };
    let Ok(master) = text.trim().parse::<u32>() else { return 0.0 };
    let mut parents = std::collections::HashMap::new();
    let mut ticks = std::collections::HashMap::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(rest) = stat.rsplit(')').next() else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the command: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        parents.insert(pid, u32::try_from(number(1)).unwrap_or(0));
        ticks.insert(pid, number(11) + number(12) + number(13) + number(14));
    }
    let under_master = |mut pid: u32| {
        while pid > 1 {
            if pid == master {
                return true;
            }
            pid = parents.get(&pid).copied().unwrap_or(0);
        }
        false
    };
    let total: u64 = ticks.iter().filter(|(pid, _)| under_master(**pid)).map(|(_, t)| t).sum();
    #[allow(clippy::cast_precision_loss)]
    let seconds = total as f64 / clock_ticks();
    seconds
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}
