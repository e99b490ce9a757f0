//! Against Dovecot 2.3 + Pigeonhole's managesieved.

use managesieve::{Client, Credentials, Error, ResponseCode, ScriptName};
use testkit::Dovecot;

use crate::{login, plain, start, starttls};

fn name(text: &str) -> ScriptName {
    ScriptName::new(text).expect("valid name")
}

/// CRLF line ends, a Latin-1-free non-ASCII comment and folder name.
const SPAM: &[u8] = "require [\"fileinto\"];\r\n# Spam → Müll\r\nif header :contains \"X-Spam\" \"yes\" {\r\n  fileinto \"Müll\";\r\n}\r\n".as_bytes();
const AWAY: &[u8] = b"require \"vacation\";\nvacation :days 3 \"I am away.\";\n";

#[test]
fn scripts_round_trip_byte_exact_and_pigeonhole_sees_them() {
    let dovecot = start();
    let mut session = Client::connect(&starttls(&dovecot))
        .expect("connect with STARTTLS")
        .login(&Credentials::master(
            "alice",
            dovecot.master_credentials().0,
            dovecot.master_credentials().1,
        ))
        .map_err(|(error, _)| error)
        .expect("master user login");
    assert!(session.is_tls());
    // After login Dovecot lists no SASL/STARTTLS but the Sieve extensions and MAXREDIRECTS.
    let capabilities = session.capabilities();
    assert!(capabilities.sieve_extensions().contains(&"fileinto"), "{capabilities:?}");
    assert!(capabilities.has("MAXREDIRECTS") && !capabilities.starttls(), "{capabilities:?}");

    let spaced = name("Spam filter (Müll)");
    session.put_script(&spaced, SPAM).expect("put spam");
    session.put_script(&name("away"), AWAY).expect("put away");
    session.have_space(&name("more"), 1000).expect("havespace");
    session.set_active(Some(&name("away"))).expect("activate");

    let mut listed = session.list_scripts().expect("list");
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    let shown: Vec<(&str, bool)> = listed.iter().map(|s| (s.name.as_str(), s.active)).collect();
    assert_eq!(shown, [("Spam filter (Müll)", false), ("away", true)]);
    assert_eq!(session.get_script(&spaced).expect("get"), SPAM);
    assert_eq!(session.get_script(&name("away")).expect("get"), AWAY);

    // Pigeonhole's own view: doveadm and the files it wrote, byte for byte.
    let home = dovecot.home("alice");
    assert_eq!(std::fs::read(home.join("sieve/Spam filter (Müll).sieve")).expect("file"), SPAM);
    let list = dovecot.doveadm_ok(&["sieve", "list", "-u", "alice"]);
    assert!(list.lines().any(|l| l == "away ACTIVE"), "{list}");

    // The active script cannot be deleted: a typed refusal, and the session goes on.
    let refused = session.delete_script(&name("away")).expect_err("delete the active script");
    assert!(matches!(refused.code(), Some(ResponseCode::Active)), "{refused}");
    session.rename_script(&spaced, &name("spam")).expect("rename");
    let exists = session.rename_script(&name("spam"), &name("away")).expect_err("rename onto");
    assert!(matches!(exists.code(), Some(ResponseCode::AlreadyExists)), "{exists}");
    let missing = session.get_script(&name("nope")).expect_err("get a missing script");
    assert!(matches!(missing.code(), Some(ResponseCode::Nonexistent)), "{missing}");
    session.set_active(None).expect("deactivate");
    session.delete_script(&name("away")).expect("delete");
    let names: Vec<String> =
        session.list_scripts().expect("list").into_iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["spam"]);
    session.noop().expect("noop");
    session.logout().expect("logout");
}

#[test]
fn a_script_the_server_cannot_compile_is_refused_with_its_reasons() {
    let dovecot = start();
    let mut session = login(&dovecot, "alice", "alicepw");
    let broken = b"require \"vnd.dovecot.pipe\";\r\npipe \"x\";\r\n";
    let error = session.check_script(broken).expect_err("checkscript");
    assert!(matches!(&error, Error::Refused { command: "CHECKSCRIPT", .. }), "{error}");
    let error = session.put_script(&name("pipe"), broken).expect_err("putscript");
    let Error::Refused { command, script, text, .. } = &error else { panic!("{error:?}") };
    assert_eq!((*command, script.as_deref()), ("PUTSCRIPT", Some("pipe")));
    assert!(text.contains("vnd.dovecot.pipe"), "the validator's reason: {text}");
    // Nothing stored, connection still usable.
    assert!(session.list_scripts().expect("list").is_empty());
    assert_eq!(session.check_script(b"keep;\r\n").expect("valid script"), None);
}

#[test]
fn quota_refusals_carry_their_code() {
    let dovecot = Dovecot::builder()
        .user("alice", "alicepw")
        .sieve_setting("sieve_quota_max_scripts", "1")
        .start();
    let mut session = login(&dovecot, "alice", "alicepw");
    session.put_script(&name("one"), b"keep;\r\n").expect("first script");
    let error = session.put_script(&name("two"), b"keep;\r\n").expect_err("second script");
    assert_eq!(error.code(), Some(&ResponseCode::QuotaMaxScripts), "{error}");
    let error = session.have_space(&name("two"), 7).expect_err("havespace");
    assert!(error.code().is_some_and(ResponseCode::is_quota), "{error}");
}

#[test]
fn wrong_password_hands_the_client_back() {
    let dovecot = start();
    let client = Client::connect(&plain(&dovecot)).expect("connect");
    assert!(client.capabilities().has_sasl("PLAIN"), "{:?}", client.capabilities());
    let (error, client) =
        client.login(&Credentials::new("alice", "wrong")).expect_err("wrong password");
    assert!(matches!(error, Error::AuthenticationFailed { .. }), "{error}");
    assert_eq!(error.kind(), managesieve::ErrorKind::Credentials);
    let mut session = client
        .login(&Credentials::new("alice", "alicepw"))
        .map_err(|(error, _)| error)
        .expect("second try");
    assert!(session.list_scripts().expect("list").is_empty());
}

#[test]
fn sasl_login_mechanism_with_a_master_user() {
    let dovecot = start();
    let (master, password) = dovecot.master_credentials();
    let credentials =
        Credentials::master("bob", master, password).mechanism(managesieve::AuthMechanism::Login);
    let mut session = Client::connect(&plain(&dovecot))
        .expect("connect")
        .login(&credentials)
        .map_err(|(error, _)| error)
        .expect("LOGIN as bob*master");
    session.put_script(&name("bob"), b"keep;\r\n").expect("put");
    assert!(dovecot.home("bob").join("sieve/bob.sieve").exists());
}

#[test]
fn starttls_checks_the_certificate() {
    let dovecot = start();
    let mut options = starttls(&dovecot);
    options.tls = managesieve::TlsOptions::new();
    let error = Client::connect(&options).expect_err("private CA not trusted");
    assert!(matches!(error, Error::Net(mailnet::Error::Certificate { .. })), "{error:?}");
    let client = Client::connect(&starttls(&dovecot)).expect("trusted CA");
    assert!(client.is_tls());
    // Capabilities were read again over TLS: STARTTLS is no longer offered.
    assert!(!client.capabilities().starttls() && client.capabilities().has("SIEVE"));
}
