//! pop3c integration tests.
