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
/// In every case the agent's `timestamp` must be strictly greater than the stored last hello.
pub(crate) fn decide_hello<E>(
    stored: &AgentCredentials,
    verifies: impl Fn(&str) -> bool,
    first_contact: &[&str],
    timestamp: f64,
    mut new_key: impl FnMut() -> Result<String, E>,
) -> Result<Result<HelloGrant, HelloRefusal>, E> {
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
        stored
            .previous_agent_key
            .as_deref()
            .filter(|previous| verifies(previous)),
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
            .chain(stored.previous_agent_key.as_deref())
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
                previous_agent_key: Some(used.to_owned()),
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
    fn first_contact_creates_both_keys_and_keeps_the_global_key_as_previous() {
        let stored = AgentCredentials::default();
        let grant = decide_hello(&stored, signed_with("global"), &["global"], 10.0, counter())
            .unwrap()
            .unwrap();
        assert_eq!(grant.send_agent_key.as_deref(), Some("key1"));
        assert_eq!(grant.send_server_key.as_deref(), Some("key2"));
        assert_eq!(
            grant.credentials,
            AgentCredentials {
                agent_key: Some("key1".into()),
                previous_agent_key: Some("global".into()),
                server_key: Some("key2".into()),
                last_hello: Some(10.0),
                ..AgentCredentials::default()
            }
        );
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
            let grant = decide_hello(&reset, signed_with(key), &["global"], 10.0, counter())
                .unwrap()
                .unwrap();
            assert_eq!(grant.send_agent_key.as_deref(), Some("key1"), "{key}");
            // The agent keeps the server key it has, so the server keeps it too.
            assert_eq!(grant.send_server_key.as_deref(), Some("server"), "{key}");
            assert_eq!(grant.credentials.previous_agent_key.as_deref(), Some(key));
            assert_eq!(grant.credentials.last_hello, Some(10.0));
            assert_eq!(grant.credentials.last_reply, Some(100.5));
        }
        let refused =
            decide_hello(&reset, signed_with("other"), &["global"], 10.0, counter()).unwrap();
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
        let again = decide_hello(&stored, signed_with("global"), &["global"], 11.0, counter())
            .unwrap()
            .unwrap();
        assert_eq!(again.send_agent_key.as_deref(), Some("own"));
        assert_eq!(again.send_server_key.as_deref(), Some("server"));
        assert_eq!(
            again.credentials.previous_agent_key.as_deref(),
            Some("global")
        );

        let used = decide_hello(&stored, signed_with("own"), &["global"], 12.0, counter())
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
            let decision =
                decide_hello(&stored, signed_with("own"), &[], timestamp, counter()).unwrap();
            assert_eq!(decision, Err(HelloRefusal::TimestampTooOld));
        }
        assert!(
            decide_hello(&stored, signed_with("own"), &[], 10.0001, counter())
                .unwrap()
                .is_ok()
        );
    }

    #[test]
    fn a_missing_server_key_is_created_and_sent() {
        let stored = AgentCredentials {
            agent_key: Some("own".into()),
            ..AgentCredentials::default()
        };
        let grant = decide_hello(&stored, signed_with("own"), &[], 1.0, counter())
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
        let decision =
            decide_hello(&stored, signed_with("global"), &["global"], 1.0, counter()).unwrap();
        assert_eq!(decision, Err(HelloRefusal::Signature));
    }
}
