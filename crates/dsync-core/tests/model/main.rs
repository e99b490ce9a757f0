//! Model tests of dsync-core: properties of every mode on random accounts (in-memory
//! storages, some written to a Maildir), one module per mode or concern, scaffolding in
//! [`support`].

mod all_mail;
mod backup;
mod concurrent_source;
mod import;
mod incremental;
mod interrupt;
mod merge;
mod pairing;
mod pairing_two_way;
mod parallel;
mod rename;
mod support;
mod uid_reuse;
mod uidl;
