//! Dovecot's `imapc_features` and `pop3c_features` (space- or comma-separated, any case).
//! A feature is accepted only when dsync already does what it asks for, or when it asks
//! for something dsync never does; everything else is refused by name with the reason, so
//! a setting pasted from Dovecot's migration docs never silently means less than it says.

/// `imapc_features` whose effect dsync always has (Dovecot 2.3 names), with the reason
/// shown in `--help` and the README.
const IMAPC_ALREADY: &[(&str, &str)] = &[
    ("rfc822.size", "sizes come from RFC822.SIZE; no message is downloaded to size it"),
    (
        "fetch-headers",
        "header hashes come from BODY.PEEK[HEADER.FIELDS (DATE MESSAGE-ID)], not whole headers",
    ),
    ("modseq", "CONDSTORE mod-sequences are used whenever the server offers them"),
    ("search", "dsync sends no SEARCH or SORT of its own"),
    ("delay-login", "the run needs the server at once, so it logs in at once either way"),
    ("fetch-bodystructure", "dsync never asks for BODY or BODYSTRUCTURE"),
];

/// Dovecot 2.4's `no-…` names for what dsync never does.
const IMAPC_NEVER: &[&str] = &["no-search", "no-delay-login", "no-fetch-bodystructure", "no-acl"];

/// `imapc_features` dsync does not implement, with what the operator should know.
const IMAPC_REFUSED: &[(&str, &str)] = &[
    (
        "gmail-migration",
        "not implemented: it would give every message the POP3 UIDL GmailId<hex X-GM-MSGID> \
         and mark \\All mail that has labels $GMailHaveLabels. For Gmail's labels use -a \
         '\\All' instead: each label copy is then stored once, as a hard link",
    ),
    (
        "guid-forced",
        "GUIDs made from a header hash are not implemented; dsync tells IMAP messages apart \
         by UID and header hash, and -a needs the server's own GUIDs (X-GUID, X-GM-MSGID)",
    ),
    ("zimbra-workarounds", "fetching HEADER and TEXT separately is not implemented"),
    ("no-examine", "SELECT instead of EXAMINE is not implemented: dsync opens mailboxes read-only"),
    ("proxyauth", "PROXYAUTH logins are not implemented; use a master user (--master-user)"),
    ("fetch-msn-workarounds", "not implemented"),
    (
        "fetch-fix-broken-mails",
        "dsync never stores an empty message in place of one the server fails to send: the \
         mailbox fails and loses nothing",
    ),
    ("fetch-empty-is-expunged", "not implemented"),
    ("no-msn-updates", "not implemented"),
    ("send-id", "dsync sends no ID command"),
    ("acl", "dsync does not copy ACLs"),
    ("no-fetch-size", "not implemented: -I and IMAP+POP3 matching use RFC822.SIZE"),
    ("no-fetch-headers", "not implemented"),
    ("no-modseq", "not implemented: CONDSTORE is used when the server offers it"),
];

/// Checks an `imapc_features` value. `$imapc_features` in it stands for the value set
/// before (as in Dovecot's config: `imapc_features = $imapc_features fetch-headers`).
/// Returns the expanded value to remember.
pub(crate) fn imapc(value: &str, previous: &str) -> Result<String, String> {
    let expanded = value.replace("$imapc_features", previous);
    for feature in words(&expanded) {
        let lower = feature.to_ascii_lowercase();
        if IMAPC_ALREADY.iter().any(|(name, _)| *name == lower) || IMAPC_NEVER.contains(&&*lower) {
            continue;
        }
        if lower.starts_with("throttle:") {
            return Err(format!(
                "imapc_features={feature}: Dovecot's throttling back-off is not implemented; \
                 a [THROTTLED] answer is a temporary failure that --retries retries after \
                 imapc_connection_retry_interval"
            ));
        }
        if let Some((name, reason)) = IMAPC_REFUSED.iter().find(|(name, _)| *name == lower) {
            return Err(format!("imapc_features={name}: {reason}"));
        }
        return Err(format!(
            "imapc_features={feature}: unknown feature (accepted: {}; see dsync --help)",
            accepted_imapc().join(", ")
        ));
    }
    Ok(expanded)
}

/// Whether a `pop3c_features` value turns pipelining off (`no-pipelining`, Dovecot's only
/// POP3 feature).
pub(crate) fn pop3c_no_pipelining(value: &str) -> Result<bool, String> {
    let mut no_pipelining = false;
    for feature in words(value) {
        if feature.eq_ignore_ascii_case("no-pipelining") {
            no_pipelining = true;
        } else {
            return Err(format!(
                "pop3c_features={feature}: unknown feature (Dovecot's only one is no-pipelining)"
            ));
        }
    }
    Ok(no_pipelining)
}

fn words(value: &str) -> impl Iterator<Item = &str> {
    value.split([' ', ',', '\t']).filter(|word| !word.is_empty())
}

fn accepted_imapc() -> Vec<&'static str> {
    IMAPC_ALREADY.iter().map(|(name, _)| *name).chain(IMAPC_NEVER.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_dsync_already_has_are_accepted() {
        assert_eq!(imapc("rfc822.size", ""), Ok("rfc822.size".into()));
        assert_eq!(
            imapc("$imapc_features fetch-headers", "rfc822.size"),
            Ok("rfc822.size fetch-headers".into())
        );
        assert!(imapc("RFC822.SIZE,Fetch-Headers modseq search", "").is_ok());
        assert!(imapc("no-acl no-delay-login", "").is_ok());
        assert!(imapc("", "").is_ok());
    }

    #[test]
    fn the_others_are_refused_by_name_with_a_reason() {
        for (value, expected) in [
            ("rfc822.size gmail-migration", "imapc_features=gmail-migration: not implemented"),
            ("guid-forced", "imapc_features=guid-forced: GUIDs made"),
            ("no-examine", "imapc_features=no-examine: SELECT instead"),
            ("acl", "does not copy ACLs"),
            ("throttle:50:16000:500", "throttling back-off is not implemented"),
            (
                "fetch-everything",
                "imapc_features=fetch-everything: unknown feature (accepted: rfc822.size",
            ),
        ] {
            let error = imapc(value, "").expect_err(value);
            assert!(error.contains(expected), "{value}: {error}");
        }
    }

    #[test]
    fn pop3c_features() {
        assert_eq!(pop3c_no_pipelining(""), Ok(false));
        assert_eq!(pop3c_no_pipelining("No-Pipelining"), Ok(true));
        let error = pop3c_no_pipelining("no-pipelining turbo").expect_err("unknown");
        assert!(error.contains("pop3c_features=turbo"), "{error}");
    }
}
