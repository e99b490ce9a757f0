//! Dovecot-style mail location strings: `maildir:PATH[:LAYOUT=fs][:UTF-8]`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};

/// How folders map to directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// Dovecot's default: INBOX at the root, folder `A/B` in `<root>/.A.B/` (separator `.`).
    #[default]
    MaildirPlusPlus,
    /// `LAYOUT=fs`: folder `A/B` in `<root>/A/B/`, INBOX still the root.
    Fs,
}

impl Layout {
    /// The on-disk hierarchy separator (`.` or `/`).
    pub fn separator(self) -> char {
        match self {
            Layout::MaildirPlusPlus => '.',
            Layout::Fs => '/',
        }
    }
}

/// A parsed mail location.
///
/// ```
/// use mailstore::{Layout, Location};
/// let location: Location = "maildir:/srv/mail/alice:LAYOUT=fs:UTF-8".parse()?;
/// assert_eq!(location.layout(), Layout::Fs);
/// assert!(location.utf8());
/// assert_eq!(location.to_string(), "maildir:/srv/mail/alice:LAYOUT=fs:UTF-8");
/// # Ok::<(), mailstore::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    root: PathBuf,
    layout: Layout,
    utf8: bool,
}

impl Location {
    /// A Maildir++ location with modified UTF-7 names at `root`.
    pub fn maildir(root: impl Into<PathBuf>) -> Location {
        Location { root: root.into(), layout: Layout::MaildirPlusPlus, utf8: false }
    }

    /// The same location with another layout.
    pub fn with_layout(mut self, layout: Layout) -> Location {
        self.layout = layout;
        self
    }

    /// The same location with UTF-8 (`true`) or modified UTF-7 (`false`) names on disk.
    pub fn with_utf8(mut self, utf8: bool) -> Location {
        self.utf8 = utf8;
        self
    }

    /// The root directory (INBOX).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// True when folder names are stored as UTF-8 rather than modified UTF-7.
    pub fn utf8(&self) -> bool {
        self.utf8
    }

    /// True when a folder cannot have `component` (UTF-8) as its name at `depth` (0: the
    /// top level) in this layout: in `LAYOUT=fs` its directory would take the place of a
    /// directory or file Dovecot keeps in each mailbox directory (`cur`, `new`, `tmp`,
    /// `dovecot-uidlist`, `dovecot-keywords`, `dovecot.index*`, `maildirfolder`, …) or in
    /// the root (`subscriptions`, `dovecot-uidvalidity*`, `dovecot.list.index*`, …), or of
    /// this crate's own (`dsync-rs*`). Creating such a folder is refused with
    /// [`Error::InvalidName`]; Dovecot's dsync puts `_` in front of a name its destination
    /// refuses, which makes any of these valid. Maildir++ reserves none: its folders are
    /// `.`-names.
    ///
    /// ```
    /// use mailstore::{Layout, Location};
    /// let fs = Location::maildir("/m").with_layout(Layout::Fs);
    /// assert!(fs.reserves(0, "subscriptions") && fs.reserves(2, "dovecot.index.log"));
    /// assert!(!fs.reserves(1, "subscriptions") && !fs.reserves(0, "_subscriptions"));
    /// assert!(!Location::maildir("/m").reserves(0, "cur"));
    /// ```
    pub fn reserves(&self, depth: usize, component: &str) -> bool {
        if self.layout != Layout::Fs {
            return false;
        }
        let stored = if self.utf8 { component.to_owned() } else { mutf7::encode(component) };
        crate::maildir::layout::reserved_reason(depth, &stored).is_some()
    }
}

impl FromStr for Location {
    type Err = Error;

    /// Parses `maildir:PATH[:option]...`. Understood options: `LAYOUT=maildir++`,
    /// `LAYOUT=fs`, `UTF-8`, and `INDEX=`/`INDEXPVT=`/`INDEXCACHE=`, which only move
    /// Dovecot's caches and are ignored. `::` in the path stands for one `:` as in Dovecot.
    /// Options that move the files this crate reads or writes (`CONTROL=`, `INBOX=`, …) are
    /// refused rather than silently ignored.
    fn from_str(text: &str) -> Result<Location> {
        let invalid = |reason: &str| Error::InvalidLocation {
            location: text.to_string(),
            reason: reason.to_string(),
        };
        let rest = text
            .strip_prefix("maildir:")
            .ok_or_else(|| invalid("only `maildir:` locations are supported"))?;
        let parts = split_unescaping(rest);
        let mut parts = parts.into_iter();
        let path = parts.next().unwrap_or_default();
        if path.is_empty() {
            return Err(invalid("empty path"));
        }
        let root = match path.strip_prefix("~/") {
            Some(tail) => {
                let home = std::env::var_os("HOME").ok_or_else(|| invalid("`~` without $HOME"))?;
                PathBuf::from(home).join(tail)
            }
            None => PathBuf::from(path),
        };
        let mut location = Location::maildir(root);
        for option in parts {
            let (key, value) = option.split_once('=').unwrap_or((option.as_str(), ""));
            match key.to_ascii_uppercase().as_str() {
                "LAYOUT" => {
                    location.layout = match value.to_ascii_lowercase().as_str() {
                        "maildir++" => Layout::MaildirPlusPlus,
                        "fs" => Layout::Fs,
                        _ => return Err(invalid("LAYOUT must be maildir++ or fs")),
                    };
                }
                "UTF-8" if value.is_empty() => location.utf8 = true,
                "INDEX" | "INDEXPVT" | "INDEXCACHE" => {}
                _ => return Err(invalid(&format!("unsupported option `{option}`"))),
            }
        }
        Ok(location)
    }
}

/// Splits at single `:`; `::` is a literal colon.
pub(crate) fn split_unescaping(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' {
            if chars.peek() == Some(&':') {
                chars.next();
                if let Some(part) = parts.last_mut() {
                    part.push(':');
                }
            } else {
                parts.push(String::new());
            }
        } else if let Some(part) = parts.last_mut() {
            part.push(c);
        }
    }
    parts
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "maildir:{}", self.root.display().to_string().replace(':', "::"))?;
        if self.layout == Layout::Fs {
            f.write_str(":LAYOUT=fs")?;
        }
        if self.utf8 {
            f.write_str(":UTF-8")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        let cases: &[(&str, &str, Layout, bool)] = &[
            ("maildir:/m", "/m", Layout::MaildirPlusPlus, false),
            ("maildir:/m:LAYOUT=fs", "/m", Layout::Fs, false),
            ("maildir:/m:LAYOUT=Maildir++:UTF-8", "/m", Layout::MaildirPlusPlus, true),
            ("maildir:/a::b:INDEX=/tmp/x", "/a:b", Layout::MaildirPlusPlus, false),
        ];
        for (text, root, layout, utf8) in cases {
            let location: Location = text.parse().unwrap();
            assert_eq!(location.root(), Path::new(root), "{text}");
            assert_eq!(location.layout(), *layout, "{text}");
            assert_eq!(location.utf8(), *utf8, "{text}");
            let again: Location = location.to_string().parse().unwrap();
            assert_eq!(again, location);
        }
        for bad in ["mbox:/m", "maildir:", "maildir:/m:LAYOUT=index", "maildir:/m:CONTROL=/c"] {
            assert!(matches!(bad.parse::<Location>(), Err(Error::InvalidLocation { .. })), "{bad}");
        }
    }
}
