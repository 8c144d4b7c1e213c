//! HMAC-SHA256 signatures of request and response bodies, as the OCO agent computes them.
//!
//! A signature is the lower-case hex HMAC-SHA256 of the exact body bytes, keyed with the key's
//! UTF-8 bytes. The agent signs its requests with its agent key
//! ([`AGENT_SIGNATURE`] header); the server signs its JSON responses with the computer's server key
//! ([`SERVER_SIGNATURE`] header).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The request header carrying the agent's signature.
pub const AGENT_SIGNATURE: &str = "x-oco-agent-signature";

/// The response header carrying the server's signature.
pub const SERVER_SIGNATURE: &str = "x-oco-server-signature";

type HmacSha256 = Hmac<Sha256>;

/// The lower-case hex HMAC-SHA256 of `body` keyed with `key`.
///
/// # Examples
///
/// The request vector of the protocol reference (§1.2):
///
/// ```
/// use oco_agent_protocol::signature::sign;
///
/// let body = br#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.hello", "params": {"uid": "test-uid", "hostname": "testhost", "timestamp": 1700000000.5, "data": {"agent_version": "1.2.0"}}}"#;
/// assert_eq!(
///     sign("initial-agent-key", body),
///     "f5983077d34e5473f6252cf10dc776cb04c2152d541ffcd1d722bfb70c6a2190"
/// );
/// ```
pub fn sign(key: &str, body: &[u8]) -> String {
    let mut mac = mac(key);
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(tag.len() * 2);
    for byte in tag {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Whether `signature` is the lower-case hex HMAC-SHA256 of `body` keyed with `key`.
///
/// The comparison of the tags is constant-time; a signature that is not 64 lower-case hex digits
/// is refused before any comparison (the agent always sends lower case, and OCO compares the hex
/// text exactly).
///
/// # Examples
///
/// The response vector of the protocol reference (§1.2), and the same signature in upper case:
///
/// ```
/// use oco_agent_protocol::signature::verify;
///
/// let body = br#"{"id": 1, "error": null, "result": {"success": true, "params": {"update": 0, "software-jobs": []}, "timestamp": 1700000001.25}}"#;
/// let key = "serverkey0123456789abcdefghijkl";
/// let signature = "b47f21d9c67663f6f52f2abd2290a888eb7e767c57e2695913ec36c7d59dc249";
/// assert!(verify(key, body, signature));
/// assert!(!verify(key, body, &signature.to_uppercase()));
/// assert!(!verify("another-key", body, signature));
/// ```
pub fn verify(key: &str, body: &[u8], signature: &str) -> bool {
    let Some(tag) = decode_hex(signature) else {
        return false;
    };
    let mut mac = mac(key);
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn mac(key: &str) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed), so this cannot fail; the fallback
    // keeps the function total without a panic path.
    HmacSha256::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()))
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut tag = [0u8; 32];
    for (out, pair) in tag.iter_mut().zip(bytes.chunks_exact(2)) {
        *out = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vectors of the protocol reference (§1.2).
    const REQUEST: &str = r#"{"jsonrpc": "2.0", "id": 1, "method": "oco.agent.hello", "params": {"uid": "test-uid", "hostname": "testhost", "timestamp": 1700000000.5, "data": {"agent_version": "1.2.0"}}}"#;
    const REQUEST_SIGNATURE: &str =
        "f5983077d34e5473f6252cf10dc776cb04c2152d541ffcd1d722bfb70c6a2190";
    const RESPONSE: &str = r#"{"id": 1, "error": null, "result": {"success": true, "params": {"update": 0, "software-jobs": []}, "timestamp": 1700000001.25}}"#;
    const RESPONSE_SIGNATURE: &str =
        "b47f21d9c67663f6f52f2abd2290a888eb7e767c57e2695913ec36c7d59dc249";

    #[test]
    fn request_vector() {
        assert_eq!(
            sign("initial-agent-key", REQUEST.as_bytes()),
            REQUEST_SIGNATURE
        );
        assert!(verify(
            "initial-agent-key",
            REQUEST.as_bytes(),
            REQUEST_SIGNATURE
        ));
    }

    #[test]
    fn response_vector() {
        let key = "serverkey0123456789abcdefghijkl";
        assert_eq!(sign(key, RESPONSE.as_bytes()), RESPONSE_SIGNATURE);
        assert!(verify(key, RESPONSE.as_bytes(), RESPONSE_SIGNATURE));
    }

    #[test]
    fn wrong_key_body_or_form_is_refused() {
        let body = REQUEST.as_bytes();
        assert!(!verify("other-key", body, REQUEST_SIGNATURE));
        assert!(!verify("initial-agent-key", b"{}", REQUEST_SIGNATURE));
        assert!(!verify(
            "initial-agent-key",
            body,
            &REQUEST_SIGNATURE.to_uppercase()
        ));
        assert!(!verify("initial-agent-key", body, &REQUEST_SIGNATURE[..62]));
        assert!(!verify("initial-agent-key", body, ""));
        let mut flipped = REQUEST_SIGNATURE.to_string();
        flipped.replace_range(0..1, "e");
        assert!(!verify("initial-agent-key", body, &flipped));
    }
}
