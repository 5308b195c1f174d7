//! A development identity, for tests and for trying TLS and auth on one
//! machine: a CA with server and client certificates, and a token issuer
//! (signing keys, their JWKS, tokens with chosen scopes). Never for
//! production: the keys live in plain files.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
};
use serde_json::{Value, json};

/// A certificate authority that issues certificates for local names.
pub struct DevCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct CertifiedPem {
    pub cert: String,
    pub key: String,
}

impl DevCa {
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        Ok(Self { issuer: CertifiedIssuer::self_signed(params, key)? })
    }

    /// The CA certificate, PEM: what clients and servers trust.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> anyhow::Result<CertifiedPem> {
        self.issue(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate naming `name`.
    pub fn client(&self, name: &str) -> anyhow::Result<CertifiedPem> {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> anyhow::Result<CertifiedPem> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone())?;
        params.distinguished_name.push(DnType::CommonName, names.first().cloned().unwrap_or_default());
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertifiedPem { cert: cert.pem(), key: key.serialize_pem() })
    }
}

/// One signing key of an issuer and its public JWK.
struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Value,
}

/// A token issuer: its keys, their JWKS, and tokens signed by them.
pub struct DevIssuer {
    pub issuer: String,
    pub audience: String,
    keys: Vec<SigningKey>,
}

/// What a token says; `exp` and `nbf` are seconds from now (negative: past).
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub subject: String,
    pub scopes: Vec<String>,
    pub expires_in: i64,
    pub not_before_in: Option<i64>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// Scopes as an `scp` list (as some providers write them) instead of `scope`.
    pub scp_list: bool,
}

impl TokenSpec {
    pub fn new(subject: &str, scopes: &[&str]) -> Self {
        Self {
            subject: subject.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            expires_in: 3600,
            not_before_in: None,
            issuer: None,
            audience: None,
            scp_list: false,
        }
    }
}

impl DevIssuer {
    /// An issuer with one ES256 key (kid `dev-es256`).
    pub fn new(issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let mut me = Self { issuer: issuer.to_owned(), audience: audience.to_owned(), keys: Vec::new() };
        me.add_ec_key("dev-es256", &KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?.serialize_pem())?;
        Ok(me)
    }

    /// Adds an ES256 key from its PKCS#8 PEM (the same key gives the same JWKS).
    pub fn add_ec_key(&mut self, kid: &str, pem: &str) -> anyhow::Result<()> {
        let pair = KeyPair::from_pem(pem)?;
        let raw = pair.public_key_raw();
        anyhow::ensure!(raw.len() == 65 && raw[0] == 4, "not an uncompressed P-256 point");
        let jwk = json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": B64.encode(&raw[1..33]), "y": B64.encode(&raw[33..])});
        self.keys.push(SigningKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(pem.as_bytes())?,
            jwk,
        });
        Ok(())
    }

    /// Adds a fresh EdDSA (Ed25519) key.
    pub fn add_ed25519_key(&mut self, kid: &str) -> anyhow::Result<()> {
        let pair = KeyPair::generate_for(&PKCS_ED25519)?;
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
            "x": B64.encode(pair.public_key_raw())});
        let encoding = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes())?;
        self.keys.push(SigningKey { kid: kid.into(), alg: Algorithm::EdDSA, encoding, jwk });
        Ok(())
    }

    /// Adds an RS256 key from its PEM (PKCS#1 or PKCS#8) and its public
    /// modulus and exponent (big-endian bytes).
    pub fn add_rsa_key(&mut self, kid: &str, pem: &str, n: &[u8], e: &[u8]) -> anyhow::Result<()> {
        let jwk =
            json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": B64.encode(n), "e": B64.encode(e)});
        self.keys.push(SigningKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes())?,
            jwk,
        });
        Ok(())
    }

    /// The public keys, as a JWKS document.
    pub fn jwks(&self) -> String {
        json!({"keys": self.keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()}).to_string()
    }

    /// A token signed by the first key.
    pub fn token(&self, spec: &TokenSpec) -> anyhow::Result<String> {
        let kid = self.keys.first().map(|k| k.kid.clone()).unwrap_or_default();
        self.token_with(&kid, spec)
    }

    /// A token signed by the key `kid`, with that key's algorithm.
    pub fn token_with(&self, kid: &str, spec: &TokenSpec) -> anyhow::Result<String> {
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or_else(|| anyhow::anyhow!("no key {kid}"))?;
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs())?;
        let mut claims = json!({
            "iss": spec.issuer.clone().unwrap_or_else(|| self.issuer.clone()),
            "aud": spec.audience.clone().unwrap_or_else(|| self.audience.clone()),
            "sub": spec.subject,
            "iat": now,
            "exp": now + spec.expires_in,
        });
        if spec.scp_list {
            claims["scp"] = json!(spec.scopes);
        } else if !spec.scopes.is_empty() {
            claims["scope"] = Value::String(spec.scopes.join(" "));
        }
        if let Some(nbf) = spec.not_before_in {
            claims["nbf"] = json!(now + nbf);
        }
        Ok(jsonwebtoken::encode(&header, &claims, &key.encoding)?)
    }
}

/// A development identity written to a directory: `ca.crt`, `server.crt` and
/// `server.key` (for 127.0.0.1, ::1 and localhost), `client.crt` and
/// `client.key`, the token signing key `signing.key` and its `jwks.json`.
#[derive(Debug, Clone)]
pub struct DevIdentity {
    pub dir: std::path::PathBuf,
}

impl DevIdentity {
    /// The `iss` and `aud` of development tokens.
    pub const ISSUER: &'static str = "https://tradewatch.dev.invalid";
    pub const AUDIENCE: &'static str = "tradewatch";

    /// The identity in `dir`, made there first if it is not.
    pub fn open_or_create(dir: &std::path::Path) -> anyhow::Result<Self> {
        let me = Self { dir: dir.to_owned() };
        if me.path("jwks.json").exists() {
            return Ok(me);
        }
        std::fs::create_dir_all(dir)?;
        let ca = DevCa::new("Tradewatch development CA")?;
        let server = ca.server(&["127.0.0.1", "::1", "localhost"])?;
        let client = ca.client("tradewatch-client")?;
        let signing = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?.serialize_pem();
        let mut issuer = DevIssuer { issuer: Self::ISSUER.into(), audience: Self::AUDIENCE.into(), keys: Vec::new() };
        issuer.add_ec_key("dev-es256", &signing)?;
        for (name, content) in [
            ("ca.crt", ca.cert_pem()),
            ("server.crt", server.cert),
            ("server.key", server.key),
            ("client.crt", client.cert),
            ("client.key", client.key),
            ("signing.key", signing),
            ("jwks.json", issuer.jwks()),
        ] {
            write_private(&me.path(name), &content)?;
        }
        Ok(me)
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }

    /// The issuer of development tokens, with the key of `signing.key`.
    pub fn issuer(&self) -> anyhow::Result<DevIssuer> {
        let signing = std::fs::read_to_string(self.path("signing.key"))?;
        let mut issuer = DevIssuer { issuer: Self::ISSUER.into(), audience: Self::AUDIENCE.into(), keys: Vec::new() };
        issuer.add_ec_key("dev-es256", &signing)?;
        Ok(issuer)
    }

    /// Turns TLS (mTLS with `client_certificates`) and JWT auth on in `settings`.
    pub fn secure(&self, settings: &mut crate::config::Settings, client_certificates: bool) {
        settings.server.tls.cert_file = Some(self.path("server.crt"));
        settings.server.tls.key_file = Some(self.path("server.key"));
        settings.server.tls.client_ca_file = client_certificates.then(|| self.path("ca.crt"));
        settings.auth.mode = crate::config::AuthMode::Jwt;
        settings.auth.jwks_file = Some(self.path("jwks.json"));
        settings.auth.issuer = Some(Self::ISSUER.into());
        settings.auth.audience = Some(Self::AUDIENCE.into());
    }

    /// Peers at `https://` verified against the development CA, with the
    /// client certificate, calling with the token in `token_file`.
    pub fn secure_peers(&self, settings: &mut crate::config::Settings, token_file: std::path::PathBuf) {
        let peers = &mut settings.peers;
        peers.ca_file = Some(self.path("ca.crt"));
        peers.cert_file = Some(self.path("client.crt"));
        peers.key_file = Some(self.path("client.key"));
        peers.token_file = Some(token_file);
        for url in [&mut peers.tariff_url, &mut peers.dispute_url] {
            if let Some(rest) = url.strip_prefix("http://") {
                *url = format!("https://{rest}");
            }
        }
    }
}

/// Writes a file only its owner may read (keys among them).
pub fn write_private(path: &std::path::Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(content.as_bytes())?;
    Ok(())
}
