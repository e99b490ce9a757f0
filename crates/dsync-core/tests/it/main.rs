//! Integration tests of dsync-core against the real Dovecot (started by `testkit`).

mod all_mail;
mod backup;
mod doveadm_takeover;
mod embedding;
mod header_hash;
mod hostile_imap;
mod hostile_servers;
mod imap_guids;
mod imap_writer;
mod incremental;
mod kept_view;
mod list_ahead;
mod maildir_listing;
mod maildir_source;
mod modes;
mod packed_base;
mod parallel;
mod pop3;
mod pop3_migration;
mod pop3_source;
mod remote;
