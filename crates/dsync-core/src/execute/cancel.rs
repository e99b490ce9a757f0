//! [`Cancel`]: stopping a run from another thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Observer;
use crate::error::StorageError;
use crate::model::{MailboxName, Uid};
use crate::plan::{MailboxPlan, TreePlan};
use crate::report::{MailboxReport, Skipped};
use crate::state::SyncState;

/// A token that stops a run ([`SyncOptions::cancel`](super::SyncOptions::cancel)) from
/// another thread: a signal handler, a UI's button, an async task. The run checks it
/// before each mailbox and after each saved message, commits what it saved, and returns
/// [`Failed`](super::Failed) with [`ErrorKind::Interrupted`](crate::ErrorKind::Interrupted)
/// (exit 75), whose [`report`](super::Failed::report) is the partial report with the state
/// of every mailbox finished before: the next run resumes from it.
///
/// Clones share the flag.
///
/// ```
/// use dsync_core::Cancel;
///
/// let cancel = Cancel::new();
/// let handle = cancel.clone();
/// std::thread::spawn(move || handle.cancel()).join().unwrap();
/// assert!(cancel.is_cancelled());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token not cancelled yet.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// A token on an existing flag (e.g. one `signal_hook::flag::register` sets).
    pub fn from_flag(flag: Arc<AtomicBool>) -> Cancel {
        Cancel(flag)
    }

    /// The shared flag, to hand to what sets it.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }

    /// Asks every run holding this token (or a clone) to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// True once [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Tokens are equal when they share the flag.
impl PartialEq for Cancel {
    fn eq(&self, other: &Cancel) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Cancel {}

/// The caller's observer, which also answers [`Observer::interrupted`] from the token.
/// Forwards every method (a new one of [`Observer`] must be added here too).
pub(crate) struct WithCancel<'a> {
    pub(crate) inner: &'a mut dyn Observer,
    pub(crate) cancel: Option<&'a Cancel>,
}

impl Observer for WithCancel<'_> {
    fn tree_planned(&mut self, plan: &TreePlan) {
        self.inner.tree_planned(plan);
    }
    fn mailbox_planned(&mut self, plan: &MailboxPlan) {
        self.inner.mailbox_planned(plan);
    }
    fn message_saved(&mut self, mailbox: &MailboxName, uid: Uid, bytes: u64) {
        self.inner.message_saved(mailbox, uid, bytes);
    }
    fn mailbox_finished(&mut self, report: &MailboxReport) {
        self.inner.mailbox_finished(report);
    }
    fn skipped(&mut self, skipped: &Skipped) {
        self.inner.skipped(skipped);
    }
    fn checkpoint(&mut self, state: &SyncState) -> Result<(), StorageError> {
        self.inner.checkpoint(state)
    }
    fn interrupted(&mut self) -> bool {
        self.cancel.is_some_and(Cancel::is_cancelled) || self.inner.interrupted()
    }
    fn forget(&mut self, mailbox: &MailboxName, state: &SyncState) -> Result<(), StorageError> {
        self.inner.forget(mailbox, state)
    }
    fn paired(&mut self, record: &str, state: &SyncState) {
        self.inner.paired(record, state);
    }
}
