//! `~` and `%h` in a Maildir (or sdbox) location of a user's run (`-u`, `-A`, `-F`) stand
//! for **that user's** home, as in Dovecot's `mail_location = maildir:~/Maildir`, not for
//! the home of whoever runs dsync. The home comes from `-o home=DIR` / `-o mail_home=DIR`
//! or `home = "…"` in the config (templates: `/srv/mail/%d/%n`), else from the system's
//! user database (`getpwnam`, so NSS users such as LDAP ones count). A user without a
//! known home is refused (exit 67) rather than guessed.
//!
//! Without a user, `~` and `%h` are the home of whoever runs dsync (`$HOME`).

use std::path::PathBuf;

use crate::exit::CliError;
use crate::location::expand;
use crate::settings::Settings;

/// Replaces a leading `~` of the path and every `%h` (not `%%h`) in a `maildir:` or
/// `sdbox:` location template by `user`'s home. Other locations are returned unchanged,
/// and the home is only looked up when the template needs it.
pub(crate) fn expand_home(
    template: &str,
    user: Option<&str>,
    settings: &Settings,
) -> Result<String, CliError> {
    let Some((scheme, path)) = ["maildir:", "sdbox:"]
        .iter()
        .find_map(|scheme| template.strip_prefix(scheme).map(|path| (*scheme, path)))
    else {
        return Ok(template.to_owned());
    };
    let tilde = path == "~" || path.starts_with("~/") || path.starts_with("~:");
    if !tilde && !has_home_variable(path) {
        return Ok(template.to_owned());
    }
    let home = home_of(user, settings)?;
    let home = home.to_string_lossy();
    let path = if tilde { format!("{home}{}", &path[1..]) } else { path.to_owned() };
    Ok(format!("{scheme}{}", replace_home_variable(&path, &home)))
}

/// `user`'s home directory, or the invoking user's without a user.
pub(crate) fn home_of(user: Option<&str>, settings: &Settings) -> Result<PathBuf, CliError> {
    let Some(user) = user else {
        return std::env::var_os("HOME").map(PathBuf::from).ok_or_else(|| {
            CliError::Usage("`~` in a location, but $HOME is not set: give the path".into())
        });
    };
    if let Some(template) = &settings.home {
        let home = PathBuf::from(expand(template, user));
        if !home.is_absolute() {
            return Err(CliError::Usage(format!(
                "home {template:?} is {} for {user}: an absolute path is needed",
                home.display()
            )));
        }
        return Ok(home);
    }
    let unknown = |why: &str| {
        CliError::UnknownUser(format!(
            "{user}: no home directory for `~` ({why}): give -o home=DIR (a template such \
             as -o home=/srv/mail/%d/%n), home = \"…\" in the config, or the full path"
        ))
    };
    match nix::unistd::User::from_name(user) {
        Ok(Some(entry)) if entry.dir.is_absolute() => Ok(entry.dir),
        Ok(Some(_)) => Err(unknown("its passwd entry has no home")),
        Ok(None) => Err(unknown("no such user in the system's user database")),
        Err(error) => Err(unknown(&format!("user lookup failed: {error}"))),
    }
}

fn has_home_variable(text: &str) -> bool {
    replace_home_variable(text, "\0") != text
}

/// Replaces `%h` by `home`, leaving `%%` (a literal `%` for [`expand`]) alone.
fn replace_home_variable(text: &str, home: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('h') {
            out.push_str(home);
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('%') {
            out.push_str("%%");
            rest = tail;
        } else {
            out.push('%');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_home(template: Option<&str>) -> Settings {
        Settings { home: template.map(str::to_owned), ..Settings::default() }
    }

    #[test]
    fn the_home_template_is_the_users() {
        let settings = with_home(Some("/srv/mail/%d/%n"));
        let cases = [
            ("maildir:~/Maildir", "maildir:/srv/mail/example.com/alice/Maildir"),
            ("maildir:~", "maildir:/srv/mail/example.com/alice"),
            ("maildir:~:LAYOUT=fs", "maildir:/srv/mail/example.com/alice:LAYOUT=fs"),
            ("maildir:%h/Maildir:UTF-8", "maildir:/srv/mail/example.com/alice/Maildir:UTF-8"),
            ("maildir:/x/%%h/y", "maildir:/x/%%h/y"),
            ("maildir:/srv/~/x", "maildir:/srv/~/x"),
            ("imaps://%u@host", "imaps://%u@host"),
        ];
        for (template, expected) in cases {
            let got = expand_home(template, Some("alice@example.com"), &settings).expect(template);
            assert_eq!(got, expected, "{template}");
        }
    }

    #[test]
    fn system_users_come_from_passwd() {
        // root's entry exists on every system this runs on.
        let home = home_of(Some("root"), &Settings::default()).expect("root");
        assert!(home.is_absolute());
        let got = expand_home("maildir:~/Maildir", Some("root"), &Settings::default())
            .expect("root's home");
        assert_eq!(got, format!("maildir:{}/Maildir", home.display()));
    }

    #[test]
    fn an_unknown_user_is_refused_not_guessed() {
        let error = expand_home(
            "maildir:~/Maildir",
            Some("no-such-user-dsync@example.com"),
            &Settings::default(),
        )
        .expect_err("unknown user");
        assert_eq!(error.exit_code(), 67, "{error}");
        let text = error.to_string();
        assert!(text.contains("no-such-user-dsync@example.com") && text.contains("-o home="));
        // Nothing is looked up when the location does not need a home.
        let plain = expand_home("maildir:/srv/x", Some("no-such-user-dsync"), &Settings::default());
        assert_eq!(plain.expect("no lookup"), "maildir:/srv/x");
        let relative = expand_home("maildir:~/M", Some("bob"), &with_home(Some("mail/%u")));
        assert_eq!(relative.expect_err("relative").exit_code(), 64);
    }
}
