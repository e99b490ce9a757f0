//! Adapters that make the workspace's storage crates sync sides (each behind a cargo
//! feature, both on by default).

#[cfg(feature = "imap")]
pub mod imap;
#[cfg(feature = "maildir")]
pub mod maildir;
