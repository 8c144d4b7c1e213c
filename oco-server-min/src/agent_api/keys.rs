//! Agent keys: generation and the trust-on-first-use decision of a hello.

use oco_core::store::AgentCredentials;

/// Generated keys are this long, from `[0-9a-z]` (as OCO's `randomString()`).
pub(crate) const KEY_LENGTH: usize = 30;

const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// A new random key of [`KEY_LENGTH`] characters from `[0-9a-z]`.
///
/// # Errors
///
/// If the operating system's random source fails.
pub(crate) fn new_key() -> Result<String, getrandom::Error> {
    let mut key = String::with_capacity(KEY_LENGTH);
    let mut buffer = [0u8; 64];
    while key.len() < KEY_LENGTH {
        getrandom::fill(&mut buffer)?;
        // Rejection sampling: 252 = 7 × 36, so the accepted bytes map uniformly onto the alphabet.
        for byte in buffer.iter().copied().filter(|byte| *byte < 252) {
            if key.len() == KEY_LENGTH {
                break;
            }
            key.push(char::from(ALPHABET[usize::from(byte % 36)]));
        }
    }
    Ok(key)
}

/// Why a hello is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HelloRefusal {
    /// No acceptable key produced the signature.
    Signature,
    /// The agent's timestamp is not greater than the last accepted hello's.
    TimestampTooOld,
}

/// What an accepted hello writes and sends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HelloGrant {
    /// The credentials to store (compare-and-set against the ones read).
    pub(crate) credentials: AgentCredentials,
    /// The agent key to send (`None`: send none).
    pub(crate) send_agent_key: Option<String>,
    /// The server key to send (`None`: send none; never `null` on the wire).
    pub(crate) send_server_key: Option<String>,
}

/// Decides a hello of a computer whose stored credentials are `stored`.
///
/// `verifies(key)` says whether the request is signed with `key`; `first_contact` are the keys a
/// computer without its own key may sign with (the global agent key, or the registration key for a
/// computer this request registered); `new_key` makes fresh keys.
///
/// - Signed with the computer's own key: accepted; the previous key is forgotten (the new key is
///   in use); a server key is created (and sent) only if there is none.
/// - Signed with the previous key (a lost reply to the key exchange): the same keys are sent again.
/// - No own key and signed with a first-contact key, or with the previous key (a computer an
///   administrator reset to first contact keeps the key it had): a new agent key (and a server
///   key unless one exists) is created and sent; the key used becomes the previous key, so the
///   exchange can be repeated until the new key is used.
///
/// A previous key that is one of the server's `shared` keys (the global or the registration key)
/// is stored as a fingerprint ([`remember`]), never copied into the computer's row.
///
/// In every case the agent's `timestamp` must be strictly greater than the stored last hello.
pub(crate) fn decide_hello<E>(
    stored: &AgentCredentials,
    verifies: impl Fn(&str) -> bool,
    first_contact: &[&str],
    shared: &[&str],
    timestamp: f64,
    mut new_key: impl FnMut() -> Result<String, E>,
) -> Result<Result<HelloGrant, HelloRefusal>, E> {
    let previous = stored
        .previous_agent_key
        .as_deref()
        .and_then(|stored| recall(stored, shared));
    let mut grant = if stored.agent_key.as_deref().is_some_and(&verifies) {
        let mut credentials = stored.clone();
        credentials.previous_agent_key = None;
        let send_server_key = match &credentials.server_key {
            Some(_) => None,
            None => {
                let key = new_key()?;
                credentials.server_key = Some(key.clone());
                Some(key)
            }
        };
        HelloGrant {
            credentials,
            send_agent_key: None,
            send_server_key,
        }
    } else if let (Some(own), Some(_)) = (
        stored.agent_key.as_deref(),
        previous.filter(|previous| verifies(previous)),
    ) {
        let mut credentials = stored.clone();
        let server_key = match &credentials.server_key {
            Some(key) => key.clone(),
            None => new_key()?,
        };
        credentials.server_key = Some(server_key.clone());
        HelloGrant {
            send_agent_key: Some(own.to_owned()),
            send_server_key: Some(server_key),
            credentials,
        }
    } else if let (None, Some(used)) = (
        stored.agent_key.as_deref(),
        first_contact
            .iter()
            .copied()
            .chain(previous)
            .find(|key| verifies(key)),
    ) {
        let agent_key = new_key()?;
        let server_key = match &stored.server_key {
            Some(key) => key.clone(),
            None => new_key()?,
        };
        HelloGrant {
            credentials: AgentCredentials {
                agent_key: Some(agent_key.clone()),
                previous_agent_key: Some(remember(used, shared)),
                server_key: Some(server_key.clone()),
                ..stored.clone()
            },
            send_agent_key: Some(agent_key),
            send_server_key: Some(server_key),
        }
    } else {
        return Ok(Err(HelloRefusal::Signature));
    };
    if stored.last_hello.is_some_and(|last| timestamp <= last) {
        return Ok(Err(HelloRefusal::TimestampTooOld));
    }
    grant.credentials.last_hello = Some(timestamp);
    Ok(Ok(grant))
}

/// How a stored previous key that stands for a shared key begins.
const FINGERPRINT: &str = "fingerprint:";

/// What is stored for `used`, the key a computer signed with before its own: one of the
/// server's `shared` keys by a fingerprint (the database holds no copy of the global or the
/// registration key), a computer's own earlier key (kept by a reset) as itself. Keys are
/// `[0-9a-z]`, so no key looks like a fingerprint.
pub(crate) fn remember(used: &str, shared: &[&str]) -> String {
    if shared.contains(&used) {
        format!("{FINGERPRINT}{}", fingerprint(used))
    } else {
        used.to_owned()
    }
}

/// The key a stored previous key stands for: the shared key with its fingerprint (`None` if it
/// was replaced since), or the stored key itself.
pub(crate) fn recall<'a>(stored: &'a str, shared: &[&'a str]) -> Option<&'a str> {
    match stored.strip_prefix(FINGERPRINT) {
        Some(print) => shared.iter().copied().find(|key| fingerprint(key) == print),
        None => Some(stored),
    }
}

/// A key's fingerprint: hex SHA-256 of the key under a label of its own.
fn fingerprint(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"oco previous agent key\0")
        .chain_update(key.as_bytes())
        .finalize();
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // Tests may panic.

    use std::convert::Infallible;

    use super::*;

    fn counter() -> impl FnMut() -> Result<String, Infallible> {
        let mut n = 0;
        move || {
            n += 1;
            Ok(format!("key{n}"))
        }
    }

    fn signed_with(key: &'static str) -> impl Fn(&str) -> bool {
        move |candidate| candidate == key
    }

    #[test]
    fn keys_are_30_characters_of_the_alphabet_and_differ() {
        let a = new_key().unwrap();
        let b = new_key().unwrap();
        assert_eq!(a.len(), KEY_LENGTH);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn first_contact_creates_both_keys_and_remembers_the_global_key_by_its_fingerprint() {
        let stored = AgentCredentials::default();
        let grant = decide_hello(
            &stored,
            signed_with("global"),
            &["global"],
            &["global"],
            10.0,
            counter(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(grant.send_agent_key.as_deref(), Some("key1"));
        assert_eq!(grant.send_server_key.as_deref(), Some("key2"));
        assert_eq!(
            grant.credentials,
            AgentCredentials {
                agent_key: Some("key1".into()),
                previous_agent_key: Some(remember("global", &["global"])),
                server_key: Some("key2".into()),
                last_hello: Some(10.0),
                ..AgentCredentials::default()
            }
        );
        // The row holds no copy of the global key, only what finds it again.
        let previous = grant.credentials.previous_agent_key.unwrap();
        assert!(!previous.contains("global"), "{previous}");
        assert_eq!(recall(&previous, &["other", "global"]), Some("global"));
        // A rotated global key is not found: the agent needs the new one.
        assert_eq!(recall(&previous, &["rotated"]), None);
        // A computer's own earlier key is kept as it is.
        assert_eq!(remember("own-key", &["global"]), "own-key");
        assert_eq!(recall("own-key", &["global"]), Some("own-key"));
    }

    #[test]
    fn a_reset_computer_accepts_the_global_key_or_the_key_it_had() {
        let locked_out = AgentCredentials {
            agent_key: Some("own".into()),
            server_key: Some("server".into()),
            last_hello: Some(4_102_444_800.0),
            last_reply: Some(100.5),
            ..AgentCredentials::default()
        };
        let reset = locked_out.reset_to_first_contact();
        for key in ["own", "global"] {
            let grant = decide_hello(
                &reset,
                signed_with(key),
                &["global"],
                &["global"],
                10.0,
                counter(),
            )
            .unwrap()
            .unwrap();
            assert_eq!(grant.send_agent_key.as_deref(), Some("key1"), "{key}");
            // The agent keeps the server key it has, so the server keeps it too.
            assert_eq!(grant.send_server_key.as_deref(), Some("server"), "{key}");
            let previous = grant.credentials.previous_agent_key.unwrap();
            assert_eq!(recall(&previous, &["global"]), Some(key));
            assert_eq!(grant.credentials.last_hello, Some(10.0));
            assert_eq!(grant.credentials.last_reply, Some(100.5));
        }
        let refused = decide_hello(
            &reset,
            signed_with("other"),
            &["global"],
            &["global"],
            10.0,
            counter(),
        )
        .unwrap();
        assert_eq!(refused, Err(HelloRefusal::Signature));
    }

    #[test]
    fn a_lost_reply_gets_the_same_keys_again_and_the_new_key_ends_that() {
        let stored = AgentCredentials {
            agent_key: Some("own".into()),
            previous_agent_key: Some("global".into()),
            server_key: Some("server".into()),
            last_hello: Some(10.0),
            ..AgentCredentials::default()
        };
        let again = decide_hello(
            &stored,
            signed_with("global"),
            &["global"],
            &["global"],
            11.0,
            counter(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(again.send_agent_key.as_deref(), Some("own"));
        assert_eq!(again.send_server_key.as_deref(), Some("server"));
        assert_eq!(
            again.credentials.previous_agent_key.as_deref(),
            Some("global")
        );

        let used = decide_hello(
            &stored,
            signed_with("own"),
            &["global"],
            &["global"],
            12.0,
            counter(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(used.send_agent_key, None);
        assert_eq!(used.send_server_key, None);
        assert_eq!(used.credentials.previous_agent_key, None);
        assert_eq!(used.credentials.last_hello, Some(12.0));

        let mut confirmed = used.credentials;
        confirmed.previous_agent_key = None;
        let refused = decide_hello(
            &confirmed,
            signed_with("global"),
            &["global"],
            &["global"],
            13.0,
            counter(),
        )
        .unwrap();
        assert_eq!(refused, Err(HelloRefusal::Signature));
    }

    #[test]
    fn timestamps_must_increase_strictly() {
        let stored = AgentCredentials {
            agent_key: Some("own".into()),
            previous_agent_key: None,
            server_key: Some("server".into()),
            last_hello: Some(10.0),
            ..AgentCredentials::default()
        };
        for timestamp in [9.0, 10.0] {
            let decision = decide_hello(
                &stored,
                signed_with("own"),
                &[],
                &["global"],
                timestamp,
                counter(),
            )
            .unwrap();
            assert_eq!(decision, Err(HelloRefusal::TimestampTooOld));
        }
        assert!(decide_hello(
            &stored,
            signed_with("own"),
            &[],
            &["global"],
            10.0001,
            counter()
        )
        .unwrap()
        .is_ok());
    }

    #[test]
    fn a_missing_server_key_is_created_and_sent() {
        let stored = AgentCredentials {
            agent_key: Some("own".into()),
            ..AgentCredentials::default()
        };
        let grant = decide_hello(
            &stored,
            signed_with("own"),
            &[],
            &["global"],
            1.0,
            counter(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(grant.send_server_key.as_deref(), Some("key1"));
        assert_eq!(grant.send_agent_key, None);
    }

    #[test]
    fn a_computer_with_its_own_key_refuses_the_global_key() {
        let stored = AgentCredentials {
            agent_key: Some("own".into()),
            server_key: Some("server".into()),
            ..AgentCredentials::default()
        };
        let decision = decide_hello(
            &stored,
            signed_with("global"),
            &["global"],
            &["global"],
            1.0,
            counter(),
        )
        .unwrap();
        assert_eq!(decision, Err(HelloRefusal::Signature));
    }
}
