//! Request signatures: HMAC-SHA256 over the exact body bytes, keyed by the node's secret.

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
    /// The hex HMAC-SHA256 of `body` under the node's secret.
    pub signature: String,
    /// The JSON body, exactly as signed.
    pub body: Vec<u8>,
}

/// The hex HMAC-SHA256 of `body` under `secret`.
///
/// ```
/// let signature = dbsync::messages::sign("secret", b"{}");
/// assert!(dbsync::messages::verify("secret", b"{}", &signature));
/// assert!(!dbsync::messages::verify("secret", b"{ }", &signature));
/// ```
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature` is the signature of `body` under `secret`, compared in constant time.
pub fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let Ok(expected) = hex::decode(signature) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}
