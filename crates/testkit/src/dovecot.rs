//! A private Dovecot 2.3 instance for one test, on loopback, stopped by pid on drop.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::tls::TestCertificates;

const DOVECOT: &str = "/usr/sbin/dovecot";
const DOVEADM: &str = "/usr/bin/doveadm";
const INSTALL_HINT: &str = "install it with `apt-get update && apt-get install -y dovecot-imapd \
                            dovecot-pop3d`, or run `scripts/test`, which does";

/// Uid that owns mail in test instances. Dovecot refuses uid 0 for mail; `nobody` exists on
/// every Debian system, so tests need no user management.
pub const MAIL_UID: u32 = 65534;
/// Gid that owns mail in test instances (`nogroup`).
pub const MAIL_GID: u32 = 65534;

/// The second loopback address of [`DovecotBuilder::unsecured_listeners`]: Dovecot treats a
/// connection as secured when its remote and local IP are equal (127.0.0.1 to 127.0.0.1),
/// and then allows plaintext logins whatever `disable_plaintext_auth` says. A listener on
/// 127.0.0.2 receives connections from 127.0.0.1 (Linux picks that source address), so
/// they are not secured.
pub const UNSECURED_ADDRESS: &str = "127.0.0.2";

/// Master user configured in every instance (`user*master` or PLAIN authzid logins).
pub(crate) const MASTER_USER: &str = "master";
/// Password of [`MASTER_USER`].
pub(crate) const MASTER_PASSWORD: &str = "master-secret";

#[derive(Debug, Clone)]
struct UserSpec {
    name: String,
    password: String,
    /// `userdb_mail` override; `None` uses the instance default (`maildir:~/Maildir`).
    mail: Option<String>,
}

/// Configures a [`Dovecot`] before starting it.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct DovecotBuilder {
    users: Vec<UserSpec>,
    extra_config: String,
    pop3_uidl_format: Option<String>,
    copies: Vec<(String, PathBuf, String)>,
    temp_root: Option<PathBuf>,
    self_signed: bool,
    without_tls: bool,
    unsecured_listeners: bool,
    managesieve: bool,
    sieve_settings: Vec<(String, String)>,
}

impl DovecotBuilder {
    /// Adds a user with a password; mail lives in `<home>/Maildir`.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push(UserSpec { name: name.into(), password: password.into(), mail: None });
        self
    }

    /// Adds a user whose mail location is `location` (a Dovecot `mail_location` value).
    pub fn user_with_mail(mut self, name: &str, password: &str, location: &str) -> Self {
        self.users.push(UserSpec {
            name: name.into(),
            password: password.into(),
            mail: Some(location.into()),
        });
        self
    }

    /// Adds a user served from a **copy** of `source` (made when the instance starts, owned
    /// by the mail user), so Dovecot's index files never touch the directory under test.
    /// `format` is the mail driver, e.g. `maildir`, and `options` its location suffix
    /// (e.g. `:LAYOUT=fs`), may be empty.
    pub fn user_serving_copy(
        mut self,
        name: &str,
        password: &str,
        source: &Path,
        format: &str,
    ) -> Self {
        self.users.push(UserSpec { name: name.into(), password: password.into(), mail: None });
        self.copies.push((name.into(), source.to_path_buf(), format.into()));
        self
    }

    /// Appends raw lines to the generated `dovecot.conf`.
    pub fn extra_config(mut self, lines: &str) -> Self {
        self.extra_config.push_str(lines);
        self.extra_config.push('\n');
        self
    }

    /// Sets `pop3_uidl_format`.
    pub fn pop3_uidl_format(mut self, format: &str) -> Self {
        self.pop3_uidl_format = Some(format.into());
        self
    }

    /// Creates the instance's directory (config, logs, homes and so the served mail) under
    /// `dir` instead of the system temp dir: benchmarks put it on tmpfs (`/dev/shm`).
    pub fn temp_root(mut self, dir: &Path) -> Self {
        self.temp_root = Some(dir.to_path_buf());
        self
    }

    /// Serves a self-signed `CA:TRUE` certificate for `CN=localhost` without subjectAltName
    /// (what `openssl req -x509` makes, see [`crate::self_signed_certificate`]) instead of
    /// one signed by the test CA; [`Dovecot::server_certificate`] is its PEM file.
    pub fn self_signed_certificate(mut self) -> Self {
        self.self_signed = true;
        self
    }

    /// `ssl = no`: no STARTTLS, no STLS, no imaps/pop3s listeners.
    pub fn without_tls(mut self) -> Self {
        self.without_tls = true;
        self
    }

    /// Also listens for IMAP and POP3 on [`UNSECURED_ADDRESS`], where Dovecot does not treat
    /// connections from 127.0.0.1 as secured (so `disable_plaintext_auth = yes` applies):
    /// [`Dovecot::unsecured_imap_port`], [`Dovecot::unsecured_pop3_port`].
    pub fn unsecured_listeners(mut self) -> Self {
        self.unsecured_listeners = true;
        self
    }

    /// Also serves ManageSieve (Pigeonhole's `managesieved`, RFC 5804) on a free loopback
    /// port ([`Dovecot::managesieve_port`]), STARTTLS offered unless
    /// [`without_tls`](Self::without_tls), and configures the Sieve plugin with
    /// Pigeonhole's default file store, `file:~/sieve;active=~/.dovecot.sieve` (so
    /// `doveadm sieve …` works too). Needs Debian's `dovecot-sieve` and
    /// `dovecot-managesieved`.
    pub fn managesieve(mut self) -> Self {
        self.managesieve = true;
        self
    }

    /// Adds `key = value` to the Sieve plugin's settings (e.g. `sieve_extensions`,
    /// `sieve_max_script_size`, `sieve_quota_max_scripts`); implies
    /// [`managesieve`](Self::managesieve).
    pub fn sieve_setting(mut self, key: &str, value: &str) -> Self {
        self.managesieve = true;
        self.sieve_settings.push((key.into(), value.into()));
        self
    }

    /// Starts the instance and waits until a real login succeeds. Panics with a clear
    /// message when Dovecot is not installed or does not come up.
    pub fn start(self) -> Dovecot {
        Dovecot::start(self)
    }
}

/// A running private Dovecot. Dropping it stops the daemon (SIGTERM to its master pid).
#[derive(Debug)]
pub struct Dovecot {
    dir: tempfile::TempDir,
    config: PathBuf,
    pid: u32,
    imap_port: u16,
    imaps_port: u16,
    pop3_port: u16,
    pop3s_port: u16,
    unsecured_ports: Option<(u16, u16)>,
    managesieve_port: Option<u16>,
    users: Vec<UserSpec>,
}

impl Dovecot {
    /// A builder with no users yet.
    pub fn builder() -> DovecotBuilder {
        DovecotBuilder::default()
    }

    fn start(mut builder: DovecotBuilder) -> Dovecot {
        require_environment();
        if builder.managesieve {
            require_managesieve();
        }
        if builder.users.is_empty() {
            builder = builder.user("alice", "alicepw");
        }
        let mut temp = tempfile::Builder::new();
        temp.prefix("dsync-dovecot-");
        let dir = match &builder.temp_root {
            Some(root) => temp.tempdir_in(root),
            None => temp.tempdir(),
        }
        .expect("temp dir");
        let root = dir.path().to_path_buf();
        // The auth process runs as `dovecot` and must traverse down to the passwd file.
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        for sub in ["run", "state", "home"] {
            fs::create_dir_all(root.join(sub)).expect("create instance dirs");
        }
        let certificates = if builder.self_signed {
            TestCertificates::generate_self_signed(&root)
        } else {
            TestCertificates::generate(&root)
        };

        for (name, source, format) in &builder.copies {
            let target = root.join("serve").join(name);
            fs::create_dir_all(target.parent().expect("parent")).expect("mkdir serve");
            copy_tree(source, &target);
            chown_to_mail_user(&target);
            for user in &mut builder.users {
                if &user.name == name {
                    user.mail = Some(format!("{format}:{}", target.display()));
                }
            }
        }

        let mut passwd = String::new();
        for user in &builder.users {
            let home = root.join("home").join(&user.name);
            fs::create_dir_all(&home).expect("create home");
            chown_to_mail_user(&home);
            let extra = user.mail.as_ref().map(|m| format!("userdb_mail={m}")).unwrap_or_default();
            writeln!(
                passwd,
                "{}:{{PLAIN}}{}:{MAIL_UID}:{MAIL_GID}::{}::{extra}",
                user.name,
                user.password,
                home.display()
            )
            .expect("write to string");
        }
        fs::write(root.join("users"), passwd).expect("write users");
        fs::write(root.join("masters"), format!("{MASTER_USER}:{{PLAIN}}{MASTER_PASSWORD}\n"))
            .expect("write masters");

        // Ports are picked free just before starting; a collision with another test that
        // raced for the same port shows as a failed start, which we retry.
        for attempt in 0..5 {
            let ports = free_ports(7);
            let config = root.join("dovecot.conf");
            fs::write(&config, render_config(&root, &builder, &certificates, &ports, attempt))
                .expect("write dovecot.conf");
            let _ = fs::remove_file(root.join("dovecot.log"));
            let status = Command::new(DOVECOT)
                .arg("-c")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(fs::File::create(root.join("start.out")).expect("start.out"))
                .stderr(fs::File::create(root.join("start.err")).expect("start.err"))
                .status()
                .expect("run dovecot");
            let pid_file = root.join("run/master.pid");
            // The daemon creates master.pid before writing the number: wait for the number.
            let pid_written = || {
                fs::read_to_string(&pid_file).is_ok_and(|text| text.trim().parse::<u32>().is_ok())
            };
            if !status.success() || !wait_for(pid_written, Duration::from_secs(10)) {
                let log =
                    read_lossy(&root.join("dovecot.log")) + &read_lossy(&root.join("start.err"));
                if log.contains("Address already in use") && attempt < 4 {
                    continue;
                }
                panic!("dovecot did not start (exit {status}):\n{log}");
            }
            let pid: u32 = fs::read_to_string(&pid_file)
                .expect("read master.pid")
                .trim()
                .parse()
                .expect("master.pid holds a number");
            let dovecot = Dovecot {
                dir,
                config,
                pid,
                imap_port: ports[0],
                imaps_port: ports[1],
                pop3_port: ports[2],
                pop3s_port: ports[3],
                unsecured_ports: builder.unsecured_listeners.then_some((ports[4], ports[5])),
                managesieve_port: builder.managesieve.then_some(ports[6]),
                users: builder.users.clone(),
            };
            dovecot.wait_until_ready();
            return dovecot;
        }
        unreachable!("the loop returns or panics")
    }

    fn wait_until_ready(&self) {
        let user = &self.users[0];
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let sieve_ready = self.managesieve_port.is_none_or(managesieve_greets);
            if sieve_ready && try_login(self.imap_port, &user.name, &user.password) {
                return;
            }
            assert!(Instant::now() <= deadline, "dovecot never accepted a login:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Plain IMAP port (STARTTLS offered unless [`DovecotBuilder::without_tls`]).
    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }
    /// Plain IMAP port on [`UNSECURED_ADDRESS`]; panics unless built with
    /// [`DovecotBuilder::unsecured_listeners`].
    pub fn unsecured_imap_port(&self) -> u16 {
        self.unsecured_ports.expect("built with unsecured_listeners()").0
    }
    /// Plain POP3 port on [`UNSECURED_ADDRESS`]; panics unless built with
    /// [`DovecotBuilder::unsecured_listeners`].
    pub fn unsecured_pop3_port(&self) -> u16 {
        self.unsecured_ports.expect("built with unsecured_listeners()").1
    }
    /// ManageSieve port (STARTTLS offered unless [`DovecotBuilder::without_tls`]); panics
    /// unless built with [`DovecotBuilder::managesieve`].
    pub fn managesieve_port(&self) -> u16 {
        self.managesieve_port.expect("built with managesieve()")
    }
    /// Implicit-TLS IMAP port.
    pub fn imaps_port(&self) -> u16 {
        self.imaps_port
    }
    /// Plain POP3 port (STLS offered unless [`DovecotBuilder::without_tls`]).
    pub fn pop3_port(&self) -> u16 {
        self.pop3_port
    }
    /// Implicit-TLS POP3 port.
    pub fn pop3s_port(&self) -> u16 {
        self.pop3s_port
    }
    /// PEM file of the CA that signed the server certificate (for `localhost` and
    /// `127.0.0.1`); with [`DovecotBuilder::self_signed_certificate`] there is no CA and
    /// this file does not exist: use [`Dovecot::server_certificate`].
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
    /// PEM file of the certificate the server presents.
    pub fn server_certificate(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }
    /// The instance's directory (config, logs, homes).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    /// The generated `dovecot.conf`.
    pub fn config_file(&self) -> &Path {
        &self.config
    }
    /// Home directory of `user`; its mail is in `Maildir/` unless configured otherwise.
    pub fn home(&self, user: &str) -> PathBuf {
        self.dir.path().join("home").join(user)
    }
    /// Master user name and password configured in every instance.
    pub fn master_credentials(&self) -> (&'static str, &'static str) {
        (MASTER_USER, MASTER_PASSWORD)
    }
    /// The daemon's log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("dovecot.log"))
    }

    /// The log from byte `from` on, once every session that logged in there has logged its
    /// `Disconnected` line (waits up to 10 s). Dovecot's log process writes a session's
    /// logout line after the client has already gone, so a test that reads the counters
    /// (`body_count=`) right after a run can otherwise miss the last sessions.
    pub fn settled_log(&self, from: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            let tail = log.get(from..).unwrap_or_default().to_owned();
            if sessions_all_ended(&tail) || Instant::now() >= deadline {
                return tail;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `doveadm -c <config> args…` against this instance.
    pub fn doveadm(&self, args: &[&str]) -> Output {
        Command::new(DOVEADM)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run doveadm")
    }

    /// The command line that runs `doveadm dsync-server` for `user` on this instance's
    /// config, speaking dsync's wire protocol on stdin/stdout: what `ssh HOST doveadm
    /// dsync-server -u USER` runs on a real server, with no ssh. Split on spaces (as
    /// Dovecot splits `dsync_remote_cmd`), so the config path must hold none (it never does).
    pub fn dsync_server_command(&self, user: &str) -> String {
        format!("{DOVEADM} -c {} dsync-server -u {user}", self.config.display())
    }

    /// Runs `doveadm -c <config> args…` with `input` on its standard input (e.g.
    /// `doveadm sieve put`, which reads the script from there).
    pub fn doveadm_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(DOVEADM)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run doveadm");
        let mut stdin = child.stdin.take().expect("doveadm stdin");
        stdin.write_all(input).expect("write to doveadm");
        drop(stdin);
        child.wait_with_output().expect("wait for doveadm")
    }

    /// Like [`Dovecot::doveadm`] but panics with doveadm's stderr on failure and returns stdout.
    pub fn doveadm_ok(&self, args: &[&str]) -> String {
        let output = self.doveadm(args);
        assert!(
            output.status.success(),
            "doveadm {args:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let pid = self.pid.to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        if !wait_for(|| !process_alive(self.pid), Duration::from_secs(10)) {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        if std::env::var_os("DSYNC_KEEP_TESTDIR").is_some() {
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
            eprintln!("keeping {}", kept.keep().display());
        }
    }
}

fn require_environment() {
    assert!(
        Path::new(DOVECOT).exists(),
        "Dovecot is not installed ({DOVECOT} missing): {INSTALL_HINT}"
    );
    assert!(
        Path::new(DOVEADM).exists(),
        "doveadm is not installed ({DOVEADM} missing): {INSTALL_HINT}"
    );
    let uid = Command::new("id").arg("-u").output().expect("run id");
    assert!(
        String::from_utf8_lossy(&uid.stdout).trim() == "0",
        "the Dovecot test harness must run as root (it starts a private Dovecot that switches \
         to the mail user)"
    );
}

fn require_managesieve() {
    for (path, package) in [
        ("/usr/lib/dovecot/managesieve", "dovecot-managesieved"),
        ("/usr/lib/dovecot/modules/lib90_sieve_plugin.so", "dovecot-sieve"),
    ] {
        assert!(
            Path::new(path).exists(),
            "{package} is not installed ({path} missing): install it with `apt-get install -y \
             dovecot-sieve dovecot-managesieved`, or run `scripts/test`, which does"
        );
    }
}

fn render_config(
    root: &Path,
    builder: &DovecotBuilder,
    certificates: &TestCertificates,
    ports: &[u16],
    attempt: u32,
) -> String {
    let root_display = root.display();
    let name = root.file_name().and_then(|n| n.to_str()).unwrap_or("dsync-test");
    let uidl = builder
        .pop3_uidl_format
        .as_ref()
        .map(|f| format!("pop3_uidl_format = {f}\n"))
        .unwrap_or_default();
    format!(
        r"# Generated by testkit: a throw-away instance, loopback only.
instance_name = {name}-{attempt}
base_dir = {root_display}/run
state_dir = {root_display}/state
log_path = {root_display}/dovecot.log
info_log_path = {root_display}/dovecot.log
listen = 127.0.0.1
protocols = imap pop3{sieve_protocol}
ssl = {ssl}
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = dovenull
default_internal_user = dovecot
auth_master_user_separator = *
mail_location = maildir:~/Maildir
mail_max_userip_connections = 100
{uidl}
passdb {{
  driver = passwd-file
  master = yes
  args = {root_display}/masters
}}
passdb {{
  driver = passwd-file
  args = {root_display}/users
}}
userdb {{
  driver = passwd-file
  args = {root_display}/users
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \Drafts
  }}
  mailbox Sent {{
    special_use = \Sent
  }}
  mailbox Trash {{
    special_use = \Trash
  }}
  mailbox Junk {{
    special_use = \Junk
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = {ssl}
  }}
{unsecured_imap}}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = {ssl}
  }}
{unsecured_pop3}}}
{managesieve}{extra}
",
        ssl = if builder.without_tls { "no" } else { "yes" },
        // With ssl = no the imaps/pop3s listeners are plain; port 0 switches them off.
        imaps = if builder.without_tls { 0 } else { ports[1] },
        pop3s = if builder.without_tls { 0 } else { ports[3] },
        unsecured_imap = unsecured_listener(builder, "imap", ports[4]),
        unsecured_pop3 = unsecured_listener(builder, "pop3", ports[5]),
        cert = certificates.server_cert.display(),
        key = certificates.server_key.display(),
        imap = ports[0],
        pop3 = ports[2],
        extra = builder.extra_config,
        sieve_protocol = if builder.managesieve { " sieve" } else { "" },
        managesieve = managesieve_config(builder, ports[6]),
    )
}

/// The ManageSieve listener and the Sieve plugin's settings (Pigeonhole's default store).
fn managesieve_config(builder: &DovecotBuilder, port: u16) -> String {
    if !builder.managesieve {
        return String::new();
    }
    let mut settings = String::from("  sieve = file:~/sieve;active=~/.dovecot.sieve\n");
    for (key, value) in &builder.sieve_settings {
        let _ = writeln!(settings, "  {key} = {value}");
    }
    format!(
        "service managesieve-login {{\n  inet_listener sieve {{\n    address = 127.0.0.1\n    \
         port = {port}\n  }}\n}}\nplugin {{\n{settings}}}\n"
    )
}

fn unsecured_listener(builder: &DovecotBuilder, protocol: &str, port: u16) -> String {
    if !builder.unsecured_listeners {
        return String::new();
    }
    format!(
        "  inet_listener {protocol}_unsecured {{\n    address = {UNSECURED_ADDRESS}\n    port = {port}\n  }}\n"
    )
}

fn free_ports(count: usize) -> Vec<u16> {
    // Hold all listeners at once so the ports are distinct.
    let listeners: Vec<TcpListener> =
        (0..count).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind loopback")).collect();
    listeners.iter().map(|l| l.local_addr().expect("local addr").port()).collect()
}

fn try_login(port: u16, user: &str, password: &str) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut writer) = stream.try_clone() else { return false };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    // Skip "Waiting for authentication process" notices until the real greeting.
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        if line.contains("[CAPABILITY") || line.starts_with("* PREAUTH") {
            break;
        }
    }
    if writer
        .write_all(format!("r LOGIN \"{user}\" \"{password}\"\r\nq LOGOUT\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        if line.starts_with("r ") {
            return line.starts_with("r OK");
        }
    }
}

/// True when a ManageSieve greeting (capabilities, then `OK`) comes from `port`.
fn managesieve_greets(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        if line.starts_with("OK") {
            return true;
        }
        if line.starts_with("NO") || line.starts_with("BYE") {
            return false;
        }
    }
}

fn wait_for(mut condition: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

fn process_alive(pid: u32) -> bool {
    // A zombie (state Z) has exited; only its parent has not reaped it yet.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

fn copy_tree(source: &Path, target: &Path) {
    let status = Command::new("cp").arg("-a").arg(source).arg(target).status().expect("run cp");
    assert!(status.success(), "cp -a {} {} failed", source.display(), target.display());
}

/// Recursively gives `path` to the test mail user, so a Dovecot instance can write there.
pub fn chown_to_mail_user(path: &Path) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{MAIL_UID}:{MAIL_GID}"))
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown -R {}", path.display());
}

/// Whether every `session=<id>` that logged in within `log` also has a `Disconnected` line.
fn sessions_all_ended(log: &str) -> bool {
    let started = log
        .lines()
        .filter(|line| line.contains(": Login: "))
        .filter_map(|line| line.split("session=<").nth(1)?.split('>').next());
    let ended: Vec<&str> = log.lines().filter(|line| line.contains(": Disconnected")).collect();
    started.into_iter().all(|id| {
        let tag = format!("<{id}>");
        ended.iter().any(|line| line.contains(&tag))
    })
}
