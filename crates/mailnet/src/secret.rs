//! [`Secret<T>`]: a value that never shows up in logs or debug output.

use std::borrow::Cow;
use std::fmt;

/// A value (password, SASL token) whose `Debug` and `Display` print `<redacted>` in every
/// build. Read it with [`Secret::expose`], which makes each use visible in review.
///
/// ```
/// let password = mailnet::Secret::new(String::from("hunter2"));
/// assert_eq!(format!("{password:?} {password}"), "<redacted> <redacted>");
/// assert_eq!(password.expose(), "hunter2");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The secret value itself.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Secret<T> {
        Secret(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Secret<String> {
        Secret(value.to_owned())
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The secrets sent over one connection (a password, a token, their SASL encodings), to be
/// masked in everything the server says before it is shown or logged: a server may echo
/// them back (`NO [AUTHENTICATIONFAILED] bad password hunter2`).
///
/// ```
/// let mut mask = mailnet::SecretMask::default();
/// mask.add("hunter2");
/// assert_eq!(mask.mask("NO wrong password hunter2"), "NO wrong password <redacted>");
/// assert_eq!(mask.mask("NO wrong password"), "NO wrong password");
/// ```
#[derive(Clone, Default)]
pub struct SecretMask {
    /// Longest first, so that a secret containing another is masked whole.
    secrets: Vec<String>,
}

impl SecretMask {
    /// Masks `secret` from now on (an empty one is ignored).
    pub fn add(&mut self, secret: &str) {
        if secret.is_empty() || self.secrets.iter().any(|s| s == secret) {
            return;
        }
        self.secrets.push(secret.to_owned());
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// True when there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret replaced by `<redacted>`.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut masked = Cow::Borrowed(text);
        for secret in &self.secrets {
            if masked.contains(secret.as_str()) {
                masked = Cow::Owned(masked.replace(secret.as_str(), "<redacted>"));
            }
        }
        masked
    }

    /// Masks `text` in place.
    pub fn mask_in_place(&self, text: &mut String) {
        if let Cow::Owned(masked) = self.mask(text) {
            *text = masked;
        }
    }

    /// `bytes` with every secret replaced by `<redacted>`.
    pub fn mask_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let mut masked = Cow::Borrowed(bytes);
        for secret in &self.secrets {
            let needle = secret.as_bytes();
            if masked.windows(needle.len()).any(|window| window == needle) {
                let mut out = Vec::with_capacity(masked.len());
                let mut rest: &[u8] = &masked;
                while let Some(at) = rest.windows(needle.len()).position(|window| window == needle)
                {
                    out.extend_from_slice(&rest[..at]);
                    out.extend_from_slice(b"<redacted>");
                    rest = &rest[at + needle.len()..];
                }
                out.extend_from_slice(rest);
                masked = Cow::Owned(out);
            }
        }
        masked
    }
}

impl fmt::Debug for SecretMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretMask({} secrets)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::{Secret, SecretMask};

    #[test]
    fn masks_every_secret_longest_first_in_text_and_bytes() {
        let mut mask = SecretMask::default();
        assert!(mask.is_empty());
        mask.add("");
        mask.add("pw");
        mask.add("pw-long");
        mask.add("pw");
        assert_eq!(format!("{mask:?}"), "SecretMask(2 secrets)");
        assert_eq!(mask.mask("a pw-long b pw c"), "a <redacted> b <redacted> c");
        assert_eq!(mask.mask_bytes(b"xpw-longpwx").as_ref(), b"x<redacted><redacted>x");
        assert_eq!(mask.mask_bytes(b"nothing").as_ref(), b"nothing");
        let mut text = String::from("echo pw");
        mask.mask_in_place(&mut text);
        assert_eq!(text, "echo <redacted>");
    }

    #[test]
    fn redacts_in_debug_display_and_nested_debug() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Login {
            user: String,
            password: Secret<String>,
        }
        let login = Login { user: "alice".into(), password: "s3cret-pw".into() };
        for text in [format!("{login:?}"), format!("{login:#?}"), format!("{}", login.password)] {
            assert!(!text.contains("s3cret-pw"), "{text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
        assert_eq!(login.password.expose(), "s3cret-pw");
        assert_eq!(login.password.clone().into_inner(), "s3cret-pw");
    }
}
