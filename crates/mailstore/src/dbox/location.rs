//! sdbox mail locations as Dovecot spells them: `sdbox:PATH[:INDEX=DIR][:ALT=DIR][:UTF-8]`
//! (`mailbox_list_settings_parse`, `dbox_storage_get_list_settings`), and the directories
//! they give each mailbox (`fs_list_get_path`).
//!
//! ```text
//! PATH/mailboxes/<name>/dbox-Mails/u.<uid>      mail (and the index, without INDEX=)
//! INDEX/mailboxes/<name>/dovecot.index*         the index with INDEX=DIR
//! ALT/mailboxes/<name>/dbox-Mails/u.<uid>       mail moved to alternate storage
//! PATH/subscriptions, PATH/dovecot-uidvalidity  (INDEX or PATH)/dovecot.list.index*,
//!                                               (INDEX or PATH)/dovecot.mailbox.log
//! ```
//! `<name>` is the mailbox name with `/` between levels, each level in modified UTF-7
//! unless the location says `UTF-8`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::name::MailboxName;

/// The directory under the root (and under INDEX/ALT) that holds the mailboxes.
pub(crate) const MAILBOXES: &str = "mailboxes";
/// The directory of a mailbox that holds its mail (and makes it selectable).
pub(crate) const MAIL_DIR: &str = "dbox-Mails";

/// A parsed `sdbox:` location.
///
/// ```
/// use mailstore::SdboxLocation;
/// let location: SdboxLocation = "sdbox:/srv/mail/alice:INDEX=/var/index/alice:UTF-8".parse()?;
/// assert_eq!(location.root().to_str(), Some("/srv/mail/alice"));
/// assert_eq!(location.index_root().to_str(), Some("/var/index/alice"));
/// assert!(location.utf8() && location.alt_root().is_none());
/// assert_eq!(location.to_string(), "sdbox:/srv/mail/alice:INDEX=/var/index/alice:UTF-8");
/// # Ok::<(), mailstore::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdboxLocation {
    root: PathBuf,
    index: Option<PathBuf>,
    alt: Option<PathBuf>,
    utf8: bool,
}

impl SdboxLocation {
    /// An sdbox store at `root`, index files beside the mail, modified UTF-7 names.
    pub fn new(root: impl Into<PathBuf>) -> SdboxLocation {
        SdboxLocation { root: root.into(), index: None, alt: None, utf8: false }
    }

    /// The same location with the index files under `index` (`INDEX=`).
    pub fn with_index(mut self, index: impl Into<PathBuf>) -> SdboxLocation {
        self.index = Some(index.into());
        self
    }

    /// The same location with alternate storage at `alt` (`ALT=`).
    pub fn with_alt(mut self, alt: impl Into<PathBuf>) -> SdboxLocation {
        self.alt = Some(alt.into());
        self
    }

    /// The same location with UTF-8 (`true`) or modified UTF-7 names on disk.
    pub fn with_utf8(mut self, utf8: bool) -> SdboxLocation {
        self.utf8 = utf8;
        self
    }

    /// The mail root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where index files live: `INDEX=`, else the root.
    pub fn index_root(&self) -> &Path {
        self.index.as_deref().unwrap_or(&self.root)
    }

    /// Alternate storage (`ALT=`), if any.
    pub fn alt_root(&self) -> Option<&Path> {
        self.alt.as_deref()
    }

    /// True when names are stored as UTF-8 rather than modified UTF-7.
    pub fn utf8(&self) -> bool {
        self.utf8
    }

    /// True when a mailbox cannot have `component` as its name at `depth` (0: the top
    /// level) in sdbox (`mailbox_list_is_valid_fs_name`): a level spelled `dbox-Mails`, or
    /// a top level starting with `~`. Dovecot's dsync puts `_` in front of such a name.
    ///
    /// ```
    /// use mailstore::SdboxLocation;
    /// let location = SdboxLocation::new("/m");
    /// assert!(location.reserves(1, "dbox-Mails") && location.reserves(0, "~x"));
    /// assert!(!location.reserves(1, "~x") && !location.reserves(0, "_dbox-Mails"));
    /// ```
    pub fn reserves(&self, depth: usize, component: &str) -> bool {
        component == MAIL_DIR || (depth == 0 && component.starts_with('~'))
    }

    /// The level `component` as stored on disk.
    pub(crate) fn encode(&self, component: &str) -> String {
        if self.utf8 { component.to_string() } else { mutf7::encode(component) }
    }

    /// `mailboxes/<name>` relative to a root, checked against what sdbox refuses.
    pub(crate) fn relative_dir(&self, name: &MailboxName) -> Result<PathBuf> {
        let mut path = PathBuf::from(MAILBOXES);
        for (depth, component) in name.components().iter().enumerate() {
            if self.reserves(depth, component) {
                return Err(Error::InvalidName {
                    name: name.to_string(),
                    reason: "sdbox reserves this name (a level `dbox-Mails`, or `~` first)",
                });
            }
            path.push(self.encode(component));
        }
        Ok(path)
    }

    /// `PATH/mailboxes/<name>`: the mailbox's directory (children live in it too).
    #[cfg(test)]
    pub(crate) fn mailbox_dir(&self, name: &MailboxName) -> Result<PathBuf> {
        Ok(self.root.join(self.relative_dir(name)?))
    }

    /// Where the index of `name` is: beside its mail, or under `INDEX=`.
    #[cfg(test)]
    pub(crate) fn index_dir(&self, name: &MailboxName) -> Result<PathBuf> {
        let relative = self.relative_dir(name)?;
        Ok(match &self.index {
            Some(index) => index.join(relative),
            None => self.root.join(relative).join(MAIL_DIR),
        })
    }

    /// Where `name`'s mail moved to alternate storage is.
    #[cfg(test)]
    pub(crate) fn alt_mail_dir(&self, name: &MailboxName) -> Result<Option<PathBuf>> {
        let relative = self.relative_dir(name)?;
        Ok(self.alt.as_ref().map(|alt| alt.join(relative).join(MAIL_DIR)))
    }
}

impl FromStr for SdboxLocation {
    type Err = Error;

    /// Parses `sdbox:PATH[:option]...`. Understood: `INDEX=DIR`, `ALT=DIR`, `UTF-8`,
    /// `LAYOUT=fs` (sdbox's default), and `INDEXPVT=`/`INDEXCACHE=`/`ALTNOCHECK`, which
    /// move or check only what this crate never reads. `::` stands for one `:`. Options
    /// that move what this crate reads or writes (`CONTROL=`, `DIRNAME=`, `MAILBOXDIR=`,
    /// `LAYOUT=index`, …) are refused rather than ignored; `INDEX=MEMORY` (no index on
    /// disk: nothing would keep UIDs or flags) too.
    fn from_str(text: &str) -> Result<SdboxLocation> {
        let invalid = |reason: &str| Error::InvalidLocation {
            location: text.to_string(),
            reason: reason.to_string(),
        };
        let rest =
            text.strip_prefix("sdbox:").ok_or_else(|| invalid("not an `sdbox:` location"))?;
        let mut parts = crate::location::split_unescaping(rest).into_iter();
        let path = parts.next().unwrap_or_default();
        if path.is_empty() {
            return Err(invalid("empty path"));
        }
        let expand = |path: &str| -> Result<PathBuf> {
            match path.strip_prefix("~/") {
                Some(tail) => {
                    let home =
                        std::env::var_os("HOME").ok_or_else(|| invalid("`~` without $HOME"))?;
                    Ok(PathBuf::from(home).join(tail))
                }
                None => Ok(PathBuf::from(path)),
            }
        };
        let mut location = SdboxLocation::new(expand(&path)?);
        for option in parts {
            let (key, value) = option.split_once('=').unwrap_or((option.as_str(), ""));
            match key.to_ascii_uppercase().as_str() {
                "UTF-8" if value.is_empty() => location.utf8 = true,
                "LAYOUT" if value.eq_ignore_ascii_case("fs") => {}
                "LAYOUT" => return Err(invalid("sdbox is read and written with LAYOUT=fs only")),
                "INDEX" if value.eq_ignore_ascii_case("MEMORY") || value.is_empty() => {
                    return Err(invalid(
                        "INDEX=MEMORY keeps no index on disk: nothing would hold UIDs or flags",
                    ));
                }
                "INDEX" => location.index = Some(expand(value)?),
                "ALT" if !value.is_empty() => location.alt = Some(expand(value)?),
                "INDEXPVT" | "INDEXCACHE" | "ALTNOCHECK" => {}
                _ => return Err(invalid(&format!("unsupported option `{option}`"))),
            }
        }
        Ok(location)
    }
}

impl fmt::Display for SdboxLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let escape = |path: &Path| path.display().to_string().replace(':', "::");
        write!(f, "sdbox:{}", escape(&self.root))?;
        if let Some(index) = &self.index {
            write!(f, ":INDEX={}", escape(index))?;
        }
        if let Some(alt) = &self.alt {
            write!(f, ":ALT={}", escape(alt))?;
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
        let location: SdboxLocation = "sdbox:/m::x:ALT=/alt:LAYOUT=fs".parse().unwrap();
        assert_eq!(location.root(), Path::new("/m:x"));
        assert_eq!(location.alt_root(), Some(Path::new("/alt")));
        assert_eq!(location.index_root(), Path::new("/m:x"));
        assert_eq!(location.to_string().parse::<SdboxLocation>().unwrap(), location);
        let name = MailboxName::new(["Entwürfe", "a b"]).unwrap();
        assert_eq!(
            location.mailbox_dir(&name).unwrap(),
            Path::new("/m:x/mailboxes/Entw&APw-rfe/a b")
        );
        assert_eq!(
            location.index_dir(&name).unwrap(),
            Path::new("/m:x/mailboxes/Entw&APw-rfe/a b/dbox-Mails")
        );
        let indexed = location.clone().with_index("/i").with_utf8(true);
        assert_eq!(indexed.index_dir(&name).unwrap(), Path::new("/i/mailboxes/Entwürfe/a b"));
        assert_eq!(
            indexed.alt_mail_dir(&name).unwrap().unwrap(),
            Path::new("/alt/mailboxes/Entwürfe/a b/dbox-Mails")
        );
        for bad in [
            "maildir:/m",
            "sdbox:",
            "sdbox:/m:LAYOUT=index",
            "sdbox:/m:CONTROL=/c",
            "sdbox:/m:INDEX=MEMORY",
            "sdbox:/m:DIRNAME=x",
        ] {
            assert!(
                matches!(bad.parse::<SdboxLocation>(), Err(Error::InvalidLocation { .. })),
                "{bad}"
            );
        }
        let reserved = MailboxName::new(["a", "dbox-Mails"]).unwrap();
        assert!(matches!(location.mailbox_dir(&reserved), Err(Error::InvalidName { .. })));
    }
}
