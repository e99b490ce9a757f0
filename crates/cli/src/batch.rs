//! Batches: a user list (`-F FILE`) or the config's accounts (`-A`), `--shard i/N`, and
//! `-j N` worker threads each running one user at a time with its own storages, state
//! file and log file. An interrupted batch is resumed by running it again: users already
//! done find nothing to do thanks to their state, partial ones continue where they stopped.
//!
//! User list format, one user per line (`#` starts a comment, blank lines are skipped):
//!
//! ```text
//! # USER                 [SOURCE or -]                        [CREDENTIAL]
//! alice@example.com
//! bob@example.com        imaps://bob@legacy.example.com       file:/etc/dsync/bob.pw
//! carol@example.com      -                                    command:pass show mail/carol
//! dave@example.com       -                                    oauth2-file:/run/tokens/dave
//! ```
//!
//! SOURCE replaces the source template for that user; CREDENTIAL (`file:PATH`, `env:NAME`,
//! `command:CMD`, `oauth2-file:PATH`) replaces the password options. Everything after the
//! second field is the credential, so a command may contain spaces.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::credentials::SecretSource;
use crate::exit::CliError;
use crate::logging;
use crate::progress::BatchProgress;
#[cfg(test)]
use crate::progress::Display;

/// One line of a user list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserEntry {
    pub(crate) user: String,
    pub(crate) source: Option<String>,
    pub(crate) credential: Option<SecretSource>,
}

/// Parses a user list.
pub(crate) fn parse_user_list(text: &str) -> Result<Vec<UserEntry>, String> {
    let mut users = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, rest) = split_field(line);
        let (source, rest) = split_field(rest);
        let credential = match rest.trim() {
            "" => None,
            reference => Some(
                SecretSource::parse_reference(reference)
                    .map_err(|e| format!("line {}: {e}", number + 1))?,
            ),
        };
        users.push(UserEntry {
            user: user.to_owned(),
            source: (!source.is_empty() && source != "-").then(|| source.to_owned()),
            credential,
        });
    }
    Ok(users)
}

fn split_field(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    match text.find(char::is_whitespace) {
        Some(at) => (&text[..at], &text[at..]),
        None => (text, ""),
    }
}

/// Keeps every N-th item starting with the I-th (`I/N`, 0-based).
pub(crate) fn shard<T>(items: Vec<T>, spec: &str) -> Result<Vec<T>, String> {
    let parsed = spec.split_once('/').and_then(|(index, count)| {
        Some((index.trim().parse::<usize>().ok()?, count.trim().parse::<usize>().ok()?))
    });
    let (index, count) = match parsed {
        Some((index, count)) if count > 0 && index < count => (index, count),
        _ => {
            return Err(format!(
                "--shard {spec}: expected I/N with 0 <= I < N (e.g. 0/4 for the first of four)"
            ));
        }
    };
    Ok(items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % count == index)
        .map(|(_, item)| item)
        .collect())
}

/// How batch workers log.
#[derive(Clone)]
pub(crate) struct LogSetup {
    pub(crate) log_dir: Option<std::path::PathBuf>,
    pub(crate) rawlog_dir: Option<std::path::PathBuf>,
}

/// What a worker needs for one user's log files.
pub(crate) struct UserLogs {
    pub(crate) file: Option<std::fs::File>,
    pub(crate) rawlog: Option<logging::RawLog>,
}

impl LogSetup {
    /// Opens `user`'s log and raw log files.
    pub(crate) fn open(&self, user: &str) -> Result<UserLogs, CliError> {
        let open = |dir: &std::path::Path, extension: &str| {
            logging::open_in(dir, user, extension).map(|(file, _)| file).map_err(|error| {
                CliError::Output(format!("cannot open a log in {}: {error}", dir.display()))
            })
        };
        let file = self.log_dir.as_deref().map(|dir| open(dir, "log")).transpose()?;
        let rawlog = self
            .rawlog_dir
            .as_deref()
            .map(|dir| open(dir, "rawlog").map(|f| Arc::new(Mutex::new(f))))
            .transpose()?;
        Ok(UserLogs { file, rawlog })
    }
}

/// Runs `work` for each item (with its index) on `jobs` worker threads, in list order as
/// far as the workers allow, and returns the results in list order. `progress` hears when
/// each item starts and ends.
pub(crate) fn run_parallel<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    progress: &BatchProgress,
    work: impl Fn(usize, &T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(index) else { break };
                    progress.started(index);
                    let result = work(index, item);
                    if let Ok(mut slot) = results[index].lock() {
                        *slot = Some(result);
                    }
                    progress.finished(index);
                }
            });
        }
    });
    progress.clear();
    results.into_iter().filter_map(|slot| slot.into_inner().ok().flatten()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_list() {
        let text = "\
# comment
alice@example.com

bob   imaps://bob@legacy:993   file:/pw/bob
carol -  command:pass show mail/carol
  dave  -
";
        let users = parse_user_list(text).expect("valid");
        assert_eq!(users.len(), 4);
        assert_eq!(
            users[0],
            UserEntry { user: "alice@example.com".into(), source: None, credential: None }
        );
        assert_eq!(users[1].source.as_deref(), Some("imaps://bob@legacy:993"));
        assert_eq!(users[1].credential, Some(SecretSource::File("/pw/bob".into())));
        assert_eq!(users[2].credential, Some(SecretSource::Command("pass show mail/carol".into())));
        assert_eq!(users[3], UserEntry { user: "dave".into(), source: None, credential: None });
        let error = parse_user_list("eve - secret\n").expect_err("bare password");
        assert!(error.starts_with("line 1:") && !error.contains("secret"), "{error}");
    }

    #[test]
    fn shards_cover_every_item_once() {
        let items: Vec<u32> = (0..10).collect();
        let mut seen = Vec::new();
        for index in 0..3 {
            seen.extend(shard(items.clone(), &format!("{index}/3")).expect("valid"));
        }
        seen.sort_unstable();
        assert_eq!(seen, items);
        assert_eq!(shard(items.clone(), "1/3").expect("valid"), [1, 4, 7]);
        for bad in ["3/3", "1", "a/b", "0/0"] {
            assert!(shard(items.clone(), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parallel_results_keep_list_order() {
        let items: Vec<u64> = (0..20).collect();
        let progress = BatchProgress::new(&Display::Quiet, items.len(), false);
        let results = run_parallel(&items, 4, &progress, |_, n| {
            std::thread::sleep(std::time::Duration::from_millis(20 - n));
            n * 2
        });
        assert_eq!(results, items.iter().map(|n| n * 2).collect::<Vec<_>>());
    }
}
