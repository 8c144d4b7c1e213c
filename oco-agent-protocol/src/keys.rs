//! Agent keys: where they come from, and the trust-on-first-use decision of a hello.
//!
//! A computer's agent key and server key are shared secrets of [`KEY_LENGTH`] characters from
//! `[0-9a-z]`, as OCO's `randomString()` makes them. A [`KeySource`] makes them: `OsKeys` (feature
//! `os-random`) from the operating system's random source, [`CountingKeys`] deterministically for
//! tests and examples. [`decide_hello`] is the whole key exchange of a hello.

use std::sync::atomic::{AtomicU64, Ordering};

use oco_core::store::AgentCredentials;

/// Generated keys are this long, from `[0-9a-z]` (as OCO's `randomString()`).
pub const KEY_LENGTH: usize = 30;

/// Where new agent and server keys come from.
///
/// A key is a shared secret: whoever can guess it can sign as the agent or read the server's
/// replies as genuine. A source for a server must therefore be unpredictable, as `OsKeys` (feature
/// `os-random`) is. Every key must be [`KEY_LENGTH`] characters from `[0-9a-z]`: the agent stores
/// it in its configuration file as it is, and a stored previous key of that alphabet is never
/// mistaken for a fingerprint ([`remember`]).
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::keys::{CountingKeys, KeySource, KEY_LENGTH};
///
/// let keys = CountingKeys::new();
/// let first = keys.new_key()?;
/// assert_eq!(first.len(), KEY_LENGTH);
/// assert_eq!(first, CountingKeys::nth(1));
/// assert_ne!(keys.new_key()?, first);
/// # Ok::<(), oco_agent_protocol::keys::KeyError>(())
/// ```
pub trait KeySource: Send + Sync {
    /// A new key of [`KEY_LENGTH`] characters from `[0-9a-z]`, unlike every key made before.
    ///
    /// # Errors
    ///
    /// If the source cannot make one (for `OsKeys`, the operating system's random source failed).
    fn new_key(&self) -> Result<String, KeyError>;
}

/// A [`KeySource`] could not make a key; its message is the cause's.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct KeyError(Box<dyn std::error::Error + Send + Sync>);

impl KeyError {
    /// The failure `error` of a key source.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_agent_protocol::keys::KeyError;
    ///
    /// let error = KeyError::new("the random source is not ready");
    /// assert_eq!(error.to_string(), "the random source is not ready");
    /// ```
    pub fn new(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        KeyError(error.into())
    }
}

/// Keys from the operating system's random source (`getrandom`), uniform over `[0-9a-z]`: what a
/// server uses. Feature `os-random`.
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::keys::{KeySource, OsKeys, KEY_LENGTH};
///
/// let key = OsKeys.new_key()?;
/// assert_eq!(key.len(), KEY_LENGTH);
/// assert!(key.bytes().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
/// # Ok::<(), oco_agent_protocol::keys::KeyError>(())
/// ```
#[cfg(feature = "os-random")]
#[derive(Debug, Default, Clone, Copy)]
pub struct OsKeys;

#[cfg(feature = "os-random")]
impl KeySource for OsKeys {
    fn new_key(&self) -> Result<String, KeyError> {
        const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut key = String::with_capacity(KEY_LENGTH);
        let mut buffer = [0u8; 64];
        while key.len() < KEY_LENGTH {
            getrandom::fill(&mut buffer).map_err(KeyError::new)?;
            // Rejection sampling: 252 = 7 × 36, so the accepted bytes map uniformly onto the
            // alphabet.
            for byte in buffer.iter().copied().filter(|byte| *byte < 252) {
                if key.len() == KEY_LENGTH {
                    break;
                }
                key.push(char::from(ALPHABET[usize::from(byte % 36)]));
            }
        }
        Ok(key)
    }
}

/// Keys that count, [`CountingKeys::nth`]`(1)`, `nth(2)`, …: deterministic, for tests and
/// examples, so that a whole exchange gives the same bytes every time. Never for a server:
/// anyone can guess the next key.
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::keys::{CountingKeys, KeySource};
///
/// let keys = CountingKeys::new();
/// assert_eq!(keys.new_key()?, "key000000000000000000000000001");
/// assert_eq!(keys.new_key()?, CountingKeys::nth(2));
/// # Ok::<(), oco_agent_protocol::keys::KeyError>(())
/// ```
#[derive(Debug, Default)]
pub struct CountingKeys {
    issued: AtomicU64,
}

impl CountingKeys {
    /// A source whose first key is [`CountingKeys::nth`]`(1)`.
    pub fn new() -> Self {
        CountingKeys::default()
    }

    /// The key the `n`-th call of [`KeySource::new_key`] returns, counting from 1: `key` and `n`
    /// in 27 digits.
    pub fn nth(n: u64) -> String {
        format!("key{n:027}")
    }
}

impl KeySource for CountingKeys {
    fn new_key(&self) -> Result<String, KeyError> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        Ok(CountingKeys::nth(n))
    }
}

/// Why a hello is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloRefusal {
    /// No acceptable key produced the signature.
    Signature,
    /// The agent's timestamp is not greater than the last accepted hello's.
    TimestampTooOld,
}

/// What an accepted hello writes and sends.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct HelloGrant {
    /// The credentials to store (compare-and-set against the ones read).
    pub credentials: AgentCredentials,
    /// The agent key to send (`None`: send none).
    pub send_agent_key: Option<String>,
    /// The server key to send (`None`: send none; never `null` on the wire).
    pub send_server_key: Option<String>,
}

/// Decides a hello of a computer whose stored credentials are `stored`.
///
/// `verifies(key)` says whether the request is signed with `key`; `first_contact` are the keys a
/// computer without its own key may sign with (the global agent key, or the registration key for a
/// computer this request registered); `keys` makes fresh keys.
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
///
/// # Errors
///
/// The key source's, if a key was needed and it could not make one.
///
/// # Examples
///
/// A first contact signed with the global key gets both keys:
///
/// ```
/// use oco_agent_protocol::keys::{decide_hello, recall, CountingKeys};
/// use oco_agent_protocol::signature::{sign, verify};
/// use oco_core::store::AgentCredentials;
///
/// let body = br#"{"method": "oco.agent.hello"}"#;
/// let signature = sign("global", body);
/// let grant = decide_hello(
///     &AgentCredentials::default(),
///     |key| verify(key, body, &signature),
///     &["global"],
///     &["global"],
///     1_700_000_000.5,
///     &CountingKeys::new(),
/// )?
/// .expect("signed with the global key");
/// assert_eq!(grant.send_agent_key, Some(CountingKeys::nth(1)));
/// assert_eq!(grant.send_server_key, Some(CountingKeys::nth(2)));
/// let previous = grant.credentials.previous_agent_key.as_deref().unwrap_or_default();
/// assert_eq!(recall(previous, &["global"]), Some("global"));
/// # Ok::<(), oco_agent_protocol::keys::KeyError>(())
/// ```
pub fn decide_hello(
    stored: &AgentCredentials,
    verifies: impl Fn(&str) -> bool,
    first_contact: &[&str],
    shared: &[&str],
    timestamp: f64,
    keys: &(impl KeySource + ?Sized),
) -> Result<Result<HelloGrant, HelloRefusal>, KeyError> {
    let new_key = || keys.new_key();
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
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::keys::{recall, remember};
///
/// let stored = remember("global", &["global"]);
/// assert!(stored.starts_with("fingerprint:") && !stored.contains("global"));
/// assert_eq!(recall(&stored, &["global"]), Some("global"));
/// assert_eq!(remember("own-earlier-key", &["global"]), "own-earlier-key");
/// ```
pub fn remember(used: &str, shared: &[&str]) -> String {
    if shared.contains(&used) {
        format!("{FINGERPRINT}{}", fingerprint(used))
    } else {
        used.to_owned()
    }
}

/// The key a stored previous key stands for: the shared key with its fingerprint (`None` if it
/// was replaced since), or the stored key itself.
///
/// # Examples
///
/// ```
/// use oco_agent_protocol::keys::{recall, remember};
///
/// let stored = remember("global", &["global", "registration"]);
/// assert_eq!(recall(&stored, &["rotated", "registration"]), None);
/// assert_eq!(recall("own-earlier-key", &["global"]), Some("own-earlier-key"));
/// ```
pub fn recall<'a>(stored: &'a str, shared: &[&'a str]) -> Option<&'a str> {
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

    use super::*;

    fn counter() -> CountingKeys {
        CountingKeys::new()
    }

    fn counted(n: u64) -> Option<String> {
        Some(CountingKeys::nth(n))
    }

    fn signed_with(key: &'static str) -> impl Fn(&str) -> bool {
        move |candidate| candidate == key
    }

    #[cfg(feature = "os-random")]
    #[test]
    fn keys_are_30_characters_of_the_alphabet_and_differ() {
        let a = OsKeys.new_key().unwrap();
        let b = OsKeys.new_key().unwrap();
        assert_eq!(a.len(), KEY_LENGTH);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
            "{a}"
        );
        assert_ne!(a, b);
    }

    #[test]
    fn counting_keys_are_keys_of_the_alphabet_in_order() {
        let keys = CountingKeys::new();
        for n in 1..=3 {
            let made = keys.new_key().unwrap();
            assert_eq!(made, CountingKeys::nth(n));
            assert_eq!(made.len(), KEY_LENGTH);
            assert!(made
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
        }
        assert_eq!(CountingKeys::nth(u64::MAX).len(), KEY_LENGTH);
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
            &counter(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(grant.send_agent_key, counted(1));
        assert_eq!(grant.send_server_key, counted(2));
        assert_eq!(
            grant.credentials,
            AgentCredentials {
                agent_key: counted(1),
                previous_agent_key: Some(remember("global", &["global"])),
                server_key: counted(2),
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
                &counter(),
            )
            .unwrap()
            .unwrap();
            assert_eq!(grant.send_agent_key, counted(1), "{key}");
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
            &counter(),
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
            &counter(),
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
            &counter(),
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
            &counter(),
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
                &counter(),
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
            &counter()
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
            &counter(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(grant.send_server_key, counted(1));
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
            &counter(),
        )
        .unwrap();
        assert_eq!(decision, Err(HelloRefusal::Signature));
    }
}
