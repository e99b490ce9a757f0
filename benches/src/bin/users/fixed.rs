//! Where a user's fixed cost goes: the `timing:` lines dsync writes into each user's log
//! (wall and CPU per phase of its run), and the protocol steps measured here with `imapc`,
//! one user after the other: connect (TCP, greeting), TLS, login, LIST, logout.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::time::{Duration, Instant};

use imapc::{Client, ConnectOptions, Credentials, Security, TlsOptions};
use nix::sys::resource::{UsageWho, getrusage};

use crate::Result;
use crate::peers::{Set, master, server_cpu};

/// Medians of the phases in the per-user logs of each dsync run of the set.
pub(crate) fn dsync_phases(set: &Set) -> Result<String> {
    let mut runs: Vec<_> = fs::read_dir(&set.work)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("logs-")))
        .collect();
    runs.sort();
    let mut text = String::from(
        "### Where a dsync user's time goes (small accounts)\n\nMedians over the users of \
         each run, from the `timing:` line of every user's log (wall ms / CPU ms of the \
         thread running the user). *destination*: resolve and open the Maildir, lock or \
         check it creatable; *source*: connect, TLS, login, capabilities; *lock*: create and \
         lock a new root; *state-load*/*state-save*: our state file; *sync*: LIST, STATUS, \
         listings, copying, flags; *finish*: flushing and closing both sides.\n\n",
    );
    for run in runs {
        let mut phases: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        let mut order = Vec::new();
        for entry in fs::read_dir(&run)?.flatten() {
            let log = fs::read_to_string(entry.path()).unwrap_or_default();
            for line in log.lines().filter_map(|l| l.split_once("timing: ").map(|(_, t)| t)) {
                for part in line.split(", ") {
                    let Some((name, rest)) = part.split_once(' ') else { continue };
                    let Some((wall, cpu)) = rest.split_once(" ms (cpu ") else { continue };
                    let (Ok(wall), Ok(cpu)) =
                        (wall.parse::<f64>(), cpu.trim_end_matches(')').parse::<f64>())
                    else {
                        continue;
                    };
                    if !order.iter().any(|o| o == name) {
                        order.push(name.to_owned());
                    }
                    let slot = phases.entry(name.to_owned()).or_default();
                    slot.0.push(wall);
                    slot.1.push(cpu);
                }
            }
        }
        if phases.is_empty() {
            continue;
        }
        let name = run.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let _ = writeln!(text, "`{}`:\n", name.trim_start_matches("logs-"));
        let _ = writeln!(text, "| phase | wall ms | CPU ms |");
        let _ = writeln!(text, "|---|--:|--:|");
        let (mut wall_sum, mut cpu_sum) = (0.0, 0.0);
        for name in &order {
            let (walls, cpus) = &phases[name];
            let (wall, cpu) = (median(walls), median(cpus));
            wall_sum += wall;
            cpu_sum += cpu;
            let _ = writeln!(text, "| {name} | {wall:.2} | {cpu:.2} |");
        }
        let _ = writeln!(text, "| (sum of medians) | {wall_sum:.2} | {cpu_sum:.2} |\n");
    }
    Ok(text)
}

/// Connect / TLS / login / LIST / logout of `count` users, one after the other, as a
/// master user: plain, imaps with resumption off, imaps with the shared session store.
pub(crate) fn in_process(set: &Set, count: usize) -> Result<String> {
    let dovecot = &set.dovecot;
    let (master_user, master_password) = master(set);
    let users: Vec<&String> = set.users.iter().take(count).collect();
    let mut text = format!(
        "{} users one after the other, master login, `imapc`. Median wall ms / mean CPU ms of this process per step, and the \
         server's CPU per user. *connect*: TCP, greeting (with implicit TLS the handshake), \
         capabilities.\n\n| transport | connect | login | LIST | logout | total wall | our \
         CPU | server CPU |\n|---|--:|--:|--:|--:|--:|--:|--:|\n",
        users.len()
    );
    let variants = [
        ("imap (clear text)", Security::Plain, dovecot.imap_port(), None),
        (
            "imaps, full handshakes (resumption off)",
            Security::Tls,
            dovecot.imaps_port(),
            Some(TlsOptions::new().ca_file(dovecot.ca_file()).session_resumption(false)),
        ),
        (
            "imaps, sessions resumed (shared store)",
            Security::Tls,
            dovecot.imaps_port(),
            Some(TlsOptions::new().ca_file(dovecot.ca_file())),
        ),
    ];
    for (label, security, port, tls) in variants {
        let mut options = ConnectOptions::new("127.0.0.1", port, security);
        if let Some(tls) = tls {
            options = options.tls(tls);
        }
        let mut steps: Vec<[(Duration, Duration); 4]> = Vec::new();
        // One untimed connection first: one-time set-up (the provider, the connector) and,
        // with a session store, the ticket and key-exchange group the next ones use.
        Client::connect(&options)?.logout()?;
        let server_before = server_cpu(dovecot);
        for user in &users {
            let mut lap = Lap::start();
            let client = Client::connect(&options)?;
            let connect = lap.next();
            let credentials = Credentials::master(user.as_str(), master_user, master_password);
            let mut session = client.login(&credentials).map_err(|(e, _)| e)?;
            let login = lap.next();
            let folders = session.list("", "*")?;
            if folders.len() != 11 {
                return Err(format!("{user}: {} folders listed, not 11", folders.len()).into());
            }
            let list = lap.next();
            session.logout()?;
            let logout = lap.next();
            steps.push([connect, login, list, logout]);
        }
        #[allow(clippy::cast_precision_loss)]
        let server = (server_cpu(dovecot) - server_before) * 1e3 / users.len() as f64;
        let walls: Vec<Vec<f64>> =
            (0..4).map(|i| steps.iter().map(|s| ms(s[i].0)).collect()).collect();
        let cpus: Vec<f64> =
            (0..4).map(|i| mean(&steps.iter().map(|s| ms(s[i].1)).collect::<Vec<_>>())).collect();
        let totals: Vec<f64> = steps.iter().map(|s| s.iter().map(|p| ms(p.0)).sum()).collect();
        let _ = writeln!(
            text,
            "| {label} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {server:.2} |",
            median(&walls[0]),
            median(&walls[1]),
            median(&walls[2]),
            median(&walls[3]),
            median(&totals),
            cpus.iter().sum::<f64>(),
        );
    }
    // What a connector per connection would add (before connectors were shared).
    let started = Instant::now();
    let rounds = 200u32;
    for _ in 0..rounds {
        let _ = mailnet::TlsConnector::new(&TlsOptions::new().ca_file(dovecot.ca_file()))?;
    }
    let _ = writeln!(
        text,
        "\nBuilding a TLS client configuration (webpki roots + the CA file), what each \
         connection paid before connectors were shared: {:.3} ms.\n",
        ms(started.elapsed()) / f64::from(rounds)
    );
    Ok(text)
}

/// Wall and thread CPU time between calls.
struct Lap {
    wall: Instant,
    cpu: Duration,
}

impl Lap {
    fn start() -> Lap {
        Lap { wall: Instant::now(), cpu: thread_cpu() }
    }

    fn next(&mut self) -> (Duration, Duration) {
        let (wall, cpu) = (Instant::now(), thread_cpu());
        let lap = (wall - self.wall, cpu.saturating_sub(self.cpu));
        self.wall = wall;
        self.cpu = cpu;
        lap
    }
}

fn thread_cpu() -> Duration {
    let Ok(usage) = getrusage(UsageWho::RUSAGE_THREAD) else { return Duration::ZERO };
    let time = |t: nix::sys::time::TimeVal| {
        Duration::new(
            u64::try_from(t.tv_sec()).unwrap_or(0),
            u32::try_from(t.tv_usec()).unwrap_or(0).saturating_mul(1000),
        )
    };
    time(usage.user_time()) + time(usage.system_time())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

fn mean(values: &[f64]) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let count = values.len().max(1) as f64;
    values.iter().sum::<f64>() / count
}
