//! Request signatures: HMAC-SHA256 over the procedure's name and the exact body bytes, keyed
//! by the node's secret. The procedure is signed too, so that a body signed for one procedure
//! cannot be sent to another.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// A signed request as it arrives, before the body is trusted or even parsed.
///
/// The transport carries the node id and the signature beside the body (dbsync's HTTP
/// client sends them as the `x-dbsync-node` and `x-dbsync-signature` headers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRequest {
    /// The node that claims to have signed the body.
    pub node_id: i64,
    /// The hex HMAC-SHA256 of the procedure and `body` under the node's secret (see [`sign`]);
    /// empty when the request carries none.
    pub signature: String,
    /// The JSON body, exactly as signed.
    pub body: Vec<u8>,
}

/// The hex HMAC-SHA256, under `secret`, of `procedure` (`"push"`, `"pull"`, `"repair"` or
/// `"query"`), a newline, and `body`.
///
/// ```
/// use dbsync::messages::{sign, verify};
/// let signature = sign("secret", "pull", b"{}");
/// assert!(verify("secret", "pull", b"{}", &signature));
/// assert!(!verify("secret", "pull", b"{ }", &signature));
/// assert!(!verify("secret", "repair", b"{}", &signature));
/// ```
pub fn sign(secret: &str, procedure: &str, body: &[u8]) -> String {
    hex::encode(mac(secret, procedure, body).finalize().into_bytes())
}

/// Whether `signature` is the signature of `procedure` and `body` under `secret`, compared in
/// constant time.
pub fn verify(secret: &str, procedure: &str, body: &[u8], signature: &str) -> bool {
    let Ok(expected) = hex::decode(signature) else {
        return false;
    };
    mac(secret, procedure, body).verify_slice(&expected).is_ok()
}

fn mac(secret: &str, procedure: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(procedure.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac
}
