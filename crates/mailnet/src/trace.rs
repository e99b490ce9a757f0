//! [`Trace`]: the protocol trace callback shared by the mail protocol clients.

use std::fmt;
use std::sync::Arc;

/// Which way a traced protocol line went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceDirection {
    /// Client to server.
    Sent,
    /// Server to client.
    Received,
}

/// A protocol trace callback (for logging), one call per protocol line without its line
/// end. Credentials never reach it: the clients replace passwords and SASL payloads by
/// `<redacted>` (imapc: LOGIN and AUTHENTICATE arguments and SASL responses; pop3c: `PASS`,
/// the `APOP` digest, `AUTH` initial responses and SASL exchanges), and message bodies by
/// their length.
///
/// Cloning is cheap (a shared callback), so one trace can serve several connections.
///
/// ```
/// use mailnet::{Trace, TraceDirection};
///
/// let trace = Trace::new(|direction, line| {
///     let arrow = if direction == TraceDirection::Sent { "C:" } else { "S:" };
///     eprintln!("{arrow} {line}");
/// });
/// trace.emit(TraceDirection::Sent, "CAPA");
/// ```
#[derive(Clone)]
pub struct Trace(Arc<TraceFn>);

type TraceFn = dyn Fn(TraceDirection, &str) + Send + Sync;

impl Trace {
    /// Wraps a callback.
    pub fn new(callback: impl Fn(TraceDirection, &str) + Send + Sync + 'static) -> Trace {
        Trace(Arc::new(callback))
    }

    /// Hands one line to the callback. Callers must have masked any secret in `text`.
    pub fn emit(&self, direction: TraceDirection, text: &str) {
        (self.0)(direction, text);
    }
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Trace(..)")
    }
}
