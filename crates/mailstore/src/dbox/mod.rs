//! Dovecot's dbox storage (sdbox): the message file format (the store follows).

pub(crate) mod file;
