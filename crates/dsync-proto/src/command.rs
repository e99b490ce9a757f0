//! The command line that starts the remote `doveadm dsync-server`, built the way doveadm
//! builds it (`doveadm-dsync.c`): split on single spaces, no shell quoting, `%` variables
//! expanded per argument.

use crate::error::ClientError;

/// doveadm's default `dsync_remote_cmd`.
pub const DEFAULT_REMOTE_CMD: &str = "ssh -l%{login} %{host} doveadm dsync-server -u%u -U";

/// A program and its arguments, ready to spawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCommand {
    argv: Vec<String>,
}

impl RemoteCommand {
    /// A command line given whole (a destination containing a space): split on single
    /// spaces as Dovecot does (`t_strsplit(line, " ")`), so two spaces make an empty
    /// argument and nothing is quoted.
    pub fn from_command_line(line: &str) -> Result<RemoteCommand, ClientError> {
        let argv: Vec<String> = line.split(' ').map(str::to_owned).collect();
        RemoteCommand::from_argv(argv)
    }

    /// `remote:[LOGIN@]HOST` through the `dsync_remote_cmd` template: each space-separated
    /// argument has `%u`/`%{user}`, `%{login}`, `%{host}` and `%%` expanded; an argument
    /// whose variables all expand to nothing, while it holds other text, is left out (so
    /// `-l%{login}` vanishes without `LOGIN@`).
    pub fn from_template(
        template: &str,
        host: &str,
        login: &str,
        user: &str,
    ) -> Result<RemoteCommand, ClientError> {
        let mut argv = Vec::new();
        for arg in template.split(' ') {
            if !arg.contains('%') {
                argv.push(arg.to_owned());
                continue;
            }
            let expanded = expand(arg, Some((host, login, user)))?;
            let without = expand(arg, None)?;
            if expanded == without && !expanded.is_empty() {
                continue;
            }
            argv.push(expanded);
        }
        RemoteCommand::from_argv(argv)
    }

    /// A command from its program and arguments.
    pub fn from_argv(argv: Vec<String>) -> Result<RemoteCommand, ClientError> {
        if argv.first().is_none_or(String::is_empty) {
            return Err(ClientError::Command { reason: "the remote command is empty".into() });
        }
        Ok(RemoteCommand { argv })
    }

    /// The program and its arguments.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The program.
    pub fn program(&self) -> &str {
        &self.argv[0]
    }
}

impl std::fmt::Display for RemoteCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.argv.join(" "))
    }
}

/// Expands one argument; `values` `None` expands every variable to nothing.
fn expand(arg: &str, values: Option<(&str, &str, &str)>) -> Result<String, ClientError> {
    let (host, login, user) = values.unwrap_or(("", "", ""));
    let mut out = String::new();
    let mut rest = arg;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (name, after) = if let Some(braced) = rest.strip_prefix('{') {
            let Some(end) = braced.find('}') else {
                return Err(unknown(arg));
            };
            (&braced[..end], &braced[end + 1..])
        } else {
            let Some(first) = rest.chars().next() else { return Err(unknown(arg)) };
            rest.split_at(first.len_utf8())
        };
        match name {
            "%" => out.push('%'),
            "u" | "user" => out.push_str(user),
            "login" => out.push_str(login),
            "host" => out.push_str(host),
            _ => return Err(unknown(arg)),
        }
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

fn unknown(arg: &str) -> ClientError {
    ClientError::Command {
        reason: format!(
            "dsync_remote_cmd argument {arg:?} uses a variable other than %u, %{{user}}, \
             %{{login}}, %{{host}}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(command: &RemoteCommand) -> Vec<&str> {
        command.argv().iter().map(String::as_str).collect()
    }

    #[test]
    fn the_default_template_drops_an_empty_login() {
        let with = RemoteCommand::from_template(DEFAULT_REMOTE_CMD, "mx", "root", "alice")
            .expect("builds");
        assert_eq!(
            argv(&with),
            ["ssh", "-lroot", "mx", "doveadm", "dsync-server", "-ualice", "-U"]
        );
        let without =
            RemoteCommand::from_template(DEFAULT_REMOTE_CMD, "mx", "", "alice").expect("builds");
        assert_eq!(argv(&without), ["ssh", "mx", "doveadm", "dsync-server", "-ualice", "-U"]);
    }

    #[test]
    fn a_variable_alone_stays_even_when_empty_and_percent_only_arguments_vanish() {
        let command =
            RemoteCommand::from_template("run %u x%{host} %% 100%%", "h", "", "").expect("builds");
        // Dovecot's rule compares the expansion with and without values: `%%` alone expands
        // the same both ways, so such an argument is dropped, as doveadm drops it.
        assert_eq!(argv(&command), ["run", "", "xh"]);
        assert!(RemoteCommand::from_template("run %{nope}", "h", "", "u").is_err());
    }

    #[test]
    fn command_lines_split_on_single_spaces() {
        let command = RemoteCommand::from_command_line("doveadm -c /etc/x.conf  dsync-server")
            .expect("builds");
        assert_eq!(argv(&command), ["doveadm", "-c", "/etc/x.conf", "", "dsync-server"]);
        assert!(RemoteCommand::from_command_line(" doveadm").is_err());
    }
}
