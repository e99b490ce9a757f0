//! The server's capability list.

/// Capabilities as announced (`IMAP4rev1`, `AUTH=PLAIN`, `LITERAL+`, …), compared
/// case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    names: Vec<String>,
}

impl Capabilities {
    /// From the atoms of a CAPABILITY response or response code.
    pub fn new(names: Vec<String>) -> Capabilities {
        Capabilities { names }
    }

    /// True when `name` was announced (case-insensitive).
    pub fn has(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }

    /// SASL mechanisms from `AUTH=` entries, upper-cased.
    pub fn auth_mechanisms(&self) -> impl Iterator<Item = String> + '_ {
        self.names.iter().filter_map(|n| {
            n.get(..5)
                .filter(|p| p.eq_ignore_ascii_case("AUTH="))
                .map(|_| n[5..].to_ascii_uppercase())
        })
    }

    /// True when `AUTH=<mechanism>` was announced.
    pub fn has_auth(&self, mechanism: &str) -> bool {
        self.auth_mechanisms().any(|m| m.eq_ignore_ascii_case(mechanism))
    }

    /// The value of `APPENDLIMIT=<n>` (RFC 7889), if announced with a value.
    pub fn append_limit(&self) -> Option<u64> {
        self.names.iter().find_map(|n| {
            n.get(..12)
                .filter(|p| p.eq_ignore_ascii_case("APPENDLIMIT="))
                .and_then(|_| n[12..].parse().ok())
        })
    }

    /// Every announced name.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// True when the list is empty (not yet known).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let caps = Capabilities::new(
            ["IMAP4rev1", "auth=plain", "AUTH=XOAUTH2", "LITERAL+", "APPENDLIMIT=35651584"]
                .map(String::from)
                .to_vec(),
        );
        assert!(caps.has("imap4REV1") && caps.has("literal+") && !caps.has("LITERAL-"));
        assert!(caps.has_auth("PLAIN") && caps.has_auth("xoauth2") && !caps.has_auth("LOGIN"));
        assert_eq!(caps.append_limit(), Some(35_651_584));
    }
}
