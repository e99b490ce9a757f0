//! Integration tests of `mailstore` against a real Dovecot 2.3 (one binary, see
//! `docs/design.md`). Dovecot judges what we write; Dovecot's IMAP is the oracle for what we
//! read.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod concurrent;
mod copy;
mod dovecot_reads_ours;
mod fs_layout;
mod kill9;
mod layouts;
mod left_out;
mod operations;
mod ownership;
mod recovery;
mod sdbox;
mod sdbox_kill9;
mod support;
mod we_read_dovecot;
