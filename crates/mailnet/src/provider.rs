//! The rustls crypto provider every TLS connection of the clients uses.
//!
//! A library should not pick the process's cryptography behind the application's back, so
//! the provider an application installed (`CryptoProvider::install_default`) wins; without
//! one, the crate's features choose: `aws-lc-rs` (rustls's default, with post-quantum key
//! exchange) or `ring` (a lighter build). Nothing is installed process-wide by us. Built
//! with neither feature (a parser-only or fuzzing build), TLS setup fails with
//! [`Error::NoCryptoProvider`](crate::Error::NoCryptoProvider) unless the application
//! installed a provider.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The provider to build TLS configurations with: the process default when the
/// application installed one, else the one the crate's features select, else none.
pub fn crypto_provider() -> Option<Arc<CryptoProvider>> {
    if let Some(installed) = CryptoProvider::get_default() {
        return Some(installed.clone());
    }
    #[cfg(any(feature = "aws-lc-rs", feature = "ring"))]
    return Some(Arc::new(built_in()));
    #[cfg(not(any(feature = "aws-lc-rs", feature = "ring")))]
    None
}

/// The provider of the enabled feature (aws-lc-rs when both are enabled).
#[cfg(feature = "aws-lc-rs")]
fn built_in() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// The provider of the enabled feature.
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
fn built_in() -> CryptoProvider {
    // rustls 0.23.48 deprecates this constructor only because ring has no post-quantum key
    // exchange; the provider itself is maintained and still the lighter build. Choosing
    // `ring` is choosing exactly this trade, so the deprecation is expected here.
    #[allow(deprecated)]
    rustls::crypto::ring::default_provider()
}

#[cfg(all(test, any(feature = "aws-lc-rs", feature = "ring")))]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_provider_offers_tls13_suites_and_key_exchange() {
        let provider = built_in();
        assert!(provider.cipher_suites.iter().any(|suite| suite.tls13().is_some()));
        assert!(!provider.kx_groups.is_empty());
    }

    #[cfg(feature = "aws-lc-rs")]
    #[test]
    fn aws_lc_rs_offers_post_quantum_key_exchange_first() {
        let first = built_in().kx_groups.first().map(|group| group.name());
        assert_eq!(first, Some(rustls::NamedGroup::X25519MLKEM768));
    }

    #[test]
    fn without_an_installed_provider_the_features_choose() {
        // No test in this binary installs a process default.
        assert!(crypto_provider().is_some());
    }
}
