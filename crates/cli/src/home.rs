//! `~` in a local location opened for another user (`import -U`): Dovecot expands `~/` to
//! that user's home (from its userdb; here the system's passwd entry) and `~name/` to the
//! home of system user `name`. A user without an entry is refused rather than guessed.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use dsync_core::{ErrorKind, StorageError};

use crate::exit::CliError;

/// `location` with a leading `~` or `~name` in its path (after `scheme:`) replaced by the
/// home directory of `user` or `name`; unchanged when it has none. `lookup` finds a home.
pub(crate) fn expand_tilde(
    location: &str,
    user: &str,
    lookup: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<String, CliError> {
    let Some((scheme, path)) = location.split_once(':') else { return Ok(location.to_owned()) };
    let Some(after_tilde) = path.strip_prefix('~') else { return Ok(location.to_owned()) };
    let name_end = after_tilde.find(['/', ':']).unwrap_or(after_tilde.len());
    let (name, rest) = after_tilde.split_at(name_end);
    let owner = if name.is_empty() { user } else { name };
    let home = lookup(owner).ok_or_else(|| {
        CliError::Storage {
            side: "source",
            error: StorageError::new(
                ErrorKind::NoSuchUser,
                format!(
                    "{location}: ~ is the home of {owner}, which has no passwd entry: write the path out"
                ),
            ),
        }
    })?;
    let home = home.to_string_lossy();
    Ok(format!("{scheme}:{}{rest}", home.trim_end_matches('/')))
}

/// The home directory of system user `name` (`getent passwd`, so NSS users count too;
/// `/etc/passwd` when there is no `getent`).
pub(crate) fn system_home(name: &str) -> Option<PathBuf> {
    if name.is_empty() || name.contains([':', '\n']) {
        return None;
    }
    let entry = match Command::new("getent")
        .args(["passwd", "--", name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        Ok(output) => String::from_utf8(output.stdout).ok()?,
        Err(_) => std::fs::read_to_string("/etc/passwd").ok()?,
    };
    passwd_home(&entry, name)
}

/// The home field of `name`'s line in passwd-format `text`.
fn passwd_home(text: &str, name: &str) -> Option<PathBuf> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 7 && fields[0] == name && !fields[5].is_empty())
            .then(|| PathBuf::from(fields[5]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn homes(name: &str) -> Option<PathBuf> {
        match name {
            "bob" => Some(PathBuf::from("/home/bob/")),
            "vmail" => Some(PathBuf::from("/var/vmail")),
            _ => None,
        }
    }

    #[test]
    fn tilde_is_the_users_home() {
        let cases = [
            ("maildir:~/Maildir", "maildir:/home/bob/Maildir"),
            ("maildir:~/Maildir:LAYOUT=fs", "maildir:/home/bob/Maildir:LAYOUT=fs"),
            ("maildir:~", "maildir:/home/bob"),
            ("maildir:~vmail/bob", "maildir:/var/vmail/bob"),
            ("maildir:/srv/mail/bob", "maildir:/srv/mail/bob"),
            ("imap://bob@host", "imap://bob@host"),
            ("imapc:", "imapc:"),
        ];
        for (location, expected) in cases {
            let expanded = expand_tilde(location, "bob", &homes).expect(location);
            assert_eq!(expanded, expected, "{location}");
        }
        let error = expand_tilde("maildir:~/Maildir", "ghost", &homes).expect_err("no entry");
        assert_eq!(error.exit_code(), 67);
        assert!(error.to_string().contains("ghost, which has no passwd entry"), "{error}");
        assert!(expand_tilde("maildir:~nobody-here/x", "bob", &homes).is_err());
    }

    #[test]
    fn passwd_lines() {
        let text = "root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000:Bob,,,:/home/bob:/bin/sh\n";
        assert_eq!(passwd_home(text, "bob"), Some(PathBuf::from("/home/bob")));
        assert_eq!(passwd_home(text, "bo"), None);
        assert_eq!(passwd_home("broken", "broken"), None);
        // The real system: root has a home everywhere.
        assert!(system_home("root").is_some());
        assert_eq!(system_home("no-such-user-dsync"), None);
        assert_eq!(system_home(""), None);
    }
}
