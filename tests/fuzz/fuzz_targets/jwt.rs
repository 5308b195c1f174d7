//! The bearer tokens a secured service reads from every call's
//! `authorization` header: the JWT's header and claims decoded, its
//! algorithm and key chosen, its signature and claims checked. Invariants:
//! never a panic, and nothing the fuzzer writes is accepted (it holds no
//! key): every refusal is UNAUTHENTICATED.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tradewatch_common::{
    auth::Authenticator,
    config::{AuthMode, AuthSettings},
    dev_identity::{DevIssuer, TokenSpec},
};

struct Checker {
    runtime: tokio::runtime::Runtime,
    auth: Authenticator,
}

fn checker() -> &'static Checker {
    static CHECKER: OnceLock<Checker> = OnceLock::new();
    CHECKER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let mut issuer = DevIssuer::new("tradewatch-fuzz", "tradewatch").expect("an issuer");
        issuer.add_ed25519_key("fuzz-ed25519").expect("a second key");
        let jwks = std::env::temp_dir().join(format!("tradewatch-fuzz-jwks-{}.json", std::process::id()));
        std::fs::write(&jwks, issuer.jwks()).expect("the JWKS written");
        let settings = AuthSettings {
            mode: AuthMode::Jwt,
            jwks_file: Some(jwks),
            jwks_url: None,
            jwks_ca_file: None,
            jwks_refresh_secs: 300,
            issuer: Some("tradewatch-fuzz".into()),
            audience: Some("tradewatch".into()),
            leeway_secs: 60,
            allow_unauthenticated: false,
            grants: String::new(),
        };
        let auth = runtime
            .block_on(Authenticator::from_settings(&settings))
            .expect("the authenticator")
            .expect("mode jwt has one");
        // The checker can accept: a token the issuer signed passes.
        let good = issuer.token(&TokenSpec::new("fuzz", &["tariff:read"])).expect("a token");
        assert!(runtime.block_on(auth.verify(&good)).is_ok(), "a signed token is accepted");
        Checker { runtime, auth }
    })
}

fuzz_target!(|token: &str| {
    let c = checker();
    match c.runtime.block_on(c.auth.verify(token)) {
        Ok(principal) => panic!("an unsigned token was accepted, for {:?}", principal.subject),
        Err(err) => {
            let status = tonic::Status::from(err);
            assert_eq!(status.code(), tonic::Code::Unauthenticated, "{}", status.message());
        }
    }
});
