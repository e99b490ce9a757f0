//! [`Secret<T>`]: a value that never shows up in logs or debug output.

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

#[cfg(test)]
mod tests {
    use super::Secret;

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
