//! The secrets file: the admin token, the global agent key and the registration key.
//!
//! The first start creates it (mode 0600 on unix, never overwriting an existing file); later
//! starts read it. It is TOML with one key per secret and a comment saying what each is for, so
//! an administrator can copy a value out of it or replace one and restart:
//!
//! ```toml
//! admin-token = "…"        # the first admin token: Authorization: Bearer <admin-token>
//! agent-key = "…"          # [agent] agent-key in oco-agent.ini
//! registration-key = "…"   # only with --self-registration
//! ```
//!
//! The admin token is the first of the admin API's tokens: the server stores its digest as the
//! full-access token `admin` when the database holds no full-access token (at the first start),
//! and from then on tokens are created and revoked at `/api/v1/tokens`; replacing the value
//! here changes nothing until no full-access token is left.
//!
//! No error message, `Debug` output or log line of this module contains a secret.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Secrets;

/// Length of generated agent and registration keys: as OCO's, 30 characters of `[0-9a-z]`.
pub const KEY_LEN: usize = 30;
/// Length of a generated admin token (about 248 bits).
pub const ADMIN_TOKEN_LEN: usize = 48;

/// The secrets as stored. `Debug` shows none of them.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSecrets {
    /// The admin API's bearer token.
    pub admin_token: String,
    /// The global agent key.
    pub agent_key: String,
    /// The self-registration key.
    pub registration_key: String,
}

/// What [`load_or_create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// There was no file: it was created with new secrets.
    Created,
    /// The file was read as it is.
    Read,
    /// The file lacked these keys: new values were generated and the file rewritten.
    Completed(Vec<&'static str>),
}

/// Why the secrets are unavailable. Messages name the file and the problem, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// Reading, creating or writing the file failed.
    #[error("secrets file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what this module writes.
    #[error("secrets file {}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (without the offending text, which may be a secret).
        message: String,
    },
    /// The operating system's random source failed.
    #[error("no random numbers for new secrets: {0}")]
    Random(getrandom::Error),
}

impl StoredSecrets {
    /// New random secrets.
    ///
    /// # Errors
    ///
    /// If the operating system's random source fails.
    pub fn generate() -> Result<StoredSecrets, SecretsError> {
        Ok(StoredSecrets {
            admin_token: random_key(ADMIN_TOKEN_LEN)?,
            agent_key: random_key(KEY_LEN)?,
            registration_key: random_key(KEY_LEN)?,
        })
    }

    /// The secrets requests are checked against: the registration key only with
    /// self-registration, so that without it no key can register a computer.
    pub fn for_server(&self, self_registration: bool) -> Secrets {
        Secrets {
            admin_token: self.admin_token.clone(),
            agent_key: self.agent_key.clone(),
            registration_key: self_registration.then(|| self.registration_key.clone()),
        }
    }

    /// The file's text.
    fn to_toml(&self) -> String {
        format!(
            "# Secrets of oco-server-min. Keep this file private: whoever reads it can administer the\n\
             # server and impersonate agents. Replace a key and restart to change it.\n\
             \n\
             # The first admin API token (`Authorization: Bearer <admin-token>`), stored as the\n\
             # full-access token `admin` while the database holds no full-access token; manage\n\
             # tokens at /api/v1/tokens: revoked there, this value no longer works.\n\
             admin-token = \"{}\"\n\
             # The global agent key: `agent-key` in the [agent] section of a new agent's oco-agent.ini.\n\
             agent-key = \"{}\"\n\
             # Signs the first hello of unknown computers (only with --self-registration).\n\
             registration-key = \"{}\"\n",
            self.admin_token, self.agent_key, self.registration_key
        )
    }
}

impl fmt::Debug for StoredSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSecrets").finish_non_exhaustive()
    }
}

/// Reads the secrets file at `path`, creating it with new secrets if there is none, and adding
/// any secret it lacks.
///
/// # Errors
///
/// If the file cannot be read or written, is not valid, or holds an empty or non-ASCII value.
pub fn load_or_create(path: &Path) -> Result<(StoredSecrets, Outcome), SecretsError> {
    let io = |source| SecretsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secrets = StoredSecrets::generate()?;
            if write_new(path, &secrets).map_err(io)? {
                return Ok((secrets, Outcome::Created));
            }
            // Another process starting on the same directory created it first: use its.
            std::fs::read_to_string(path).map_err(io)?
        }
        Err(error) => return Err(io(error)),
    };
    let file = parse(path, &text)?;
    let mut missing = Vec::new();
    let mut take = |key: &'static str, value: Option<String>, len: usize| match value {
        Some(value) => Ok(value),
        None => {
            missing.push(key);
            random_key(len)
        }
    };
    let secrets = StoredSecrets {
        admin_token: take("admin-token", file.admin_token, ADMIN_TOKEN_LEN)?,
        agent_key: take("agent-key", file.agent_key, KEY_LEN)?,
        registration_key: take("registration-key", file.registration_key, KEY_LEN)?,
    };
    if missing.is_empty() {
        return Ok((secrets, Outcome::Read));
    }
    replace(path, &secrets).map_err(io)?;
    Ok((secrets, Outcome::Completed(missing)))
}

/// Whether the file at `path` can be read by others than its owner (unix permission bits).
///
/// # Errors
///
/// If its metadata cannot be read.
pub fn readable_by_others(path: &Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = std::fs::metadata(path)?;
        Ok(false)
    }
}

/// A random string of `len` characters of `[0-9a-z]`, from the operating system's random source.
///
/// # Errors
///
/// If the random source fails.
pub fn random_key(len: usize) -> Result<String, SecretsError> {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    // Bytes from 252 up are dropped so that each character is equally likely (252 = 7 * 36).
    let mut key = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while key.len() < len {
        getrandom::fill(&mut buf).map_err(SecretsError::Random)?;
        for byte in buf.iter().filter(|&&byte| byte < 252) {
            if key.len() == len {
                break;
            }
            key.push(char::from(ALPHABET[usize::from(byte % 36)]));
        }
    }
    Ok(key)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SecretsFile {
    admin_token: Option<String>,
    agent_key: Option<String>,
    registration_key: Option<String>,
}

fn parse(path: &Path, text: &str) -> Result<SecretsFile, SecretsError> {
    let invalid = |message: String| SecretsError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    // The parser's own rendering quotes the offending line, which may hold a secret: keep only
    // its message and the line number.
    let file: SecretsFile = toml::from_str(text).map_err(|error| {
        let line = error
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let at = line
            .map(|line| format!(" (line {line})"))
            .unwrap_or_default();
        invalid(format!("{}{at}", error.message().trim_end()))
    })?;
    for (key, value) in [
        ("admin-token", &file.admin_token),
        ("agent-key", &file.agent_key),
        ("registration-key", &file.registration_key),
    ] {
        if let Some(value) = value {
            if value.trim().is_empty() || !value.is_ascii() || value.trim() != value {
                return Err(invalid(format!(
                    "`{key}` must be printable ASCII without surrounding blanks"
                )));
            }
        }
    }
    Ok(file)
}

/// Creates the file at `path` with mode 0600, whole or not at all: written to a temporary file,
/// then linked to `path` unless that exists. `false` if it existed (the file is left as it is):
/// of processes starting at once on one directory, one creates it and the others read it.
fn write_new(path: &Path, secrets: &StoredSecrets) -> std::io::Result<bool> {
    let mut temporary = path.as_os_str().to_owned();
    let unique = random_key(12).map_err(std::io::Error::other)?;
    temporary.push(format!(".{unique}.new"));
    let temporary = PathBuf::from(temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(secrets.to_toml().as_bytes())?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    // The temporary name goes whatever happened; a failure to remove it only leaves a file.
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(error) => Err(error),
    }
}

/// Replaces the file at `path` atomically (a new file, then a rename).
fn replace(path: &Path, secrets: &StoredSecrets) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    match std::fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    if !write_new(&temporary, secrets)? {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "{} is being written by another process",
                temporary.display()
            ),
        ));
    }
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_starting_at_once_all_get_the_secrets_of_the_one_that_created_them() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("oco-secrets.toml");
            let loaded: Vec<_> = std::thread::scope(|scope| {
                let starts: Vec<_> = (0..8)
                    .map(|_| scope.spawn(|| load_or_create(&path).unwrap()))
                    .collect();
                starts.into_iter().map(|s| s.join().unwrap()).collect()
            });
            let created: Vec<_> = loaded
                .iter()
                .filter(|(_, outcome)| *outcome == Outcome::Created)
                .collect();
            assert_eq!(created.len(), 1, "one creates the file");
            assert!(loaded.iter().all(|(secrets, _)| *secrets == created[0].0));
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert_eq!(left.len(), 1, "no temporary file is left");
        }
    }

    #[test]
    fn first_start_creates_the_file_private_and_second_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oco-secrets.toml");
        let (created, outcome) = load_or_create(&path).unwrap();
        assert_eq!(outcome, Outcome::Created);
        assert_eq!(created.admin_token.len(), ADMIN_TOKEN_LEN);
        for key in [&created.agent_key, &created.registration_key] {
            assert_eq!(key.len(), KEY_LEN);
            assert!(key
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
        }
        assert_ne!(created.agent_key, created.registration_key);
        assert!(!readable_by_others(&path).unwrap());
        // The agent reads its key from the [agent] section of its ini ([server] has the URL).
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("`agent-key` in the [agent] section of a new agent's oco-agent.ini"),
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let (read, outcome) = load_or_create(&path).unwrap();
        assert_eq!(outcome, Outcome::Read);
        assert_eq!(read, created);
    }

    #[test]
    fn a_missing_key_is_generated_and_the_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oco-secrets.toml");
        std::fs::write(&path, "admin-token = \"tok\"\nagent-key = \"key\"\n").unwrap();
        let (secrets, outcome) = load_or_create(&path).unwrap();
        assert_eq!(outcome, Outcome::Completed(vec!["registration-key"]));
        assert_eq!(secrets.admin_token, "tok");
        assert_eq!(secrets.agent_key, "key");
        assert_eq!(secrets.registration_key.len(), KEY_LEN);
        let (again, outcome) = load_or_create(&path).unwrap();
        assert_eq!((again, outcome), (secrets, Outcome::Read));
        assert!(!readable_by_others(&path).unwrap());
    }

    #[test]
    fn errors_never_quote_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oco-secrets.toml");
        for text in [
            "admin-token = \"s3cr3t-value\nagent-key = \"x\"\n",
            "admin-token = s3cr3t-value\n",
            "admin-tokn = \"s3cr3t-value\"\n",
            "admin-token = \" s3cr3t-value\"\n",
        ] {
            std::fs::write(&path, text).unwrap();
            let err = load_or_create(&path).unwrap_err().to_string();
            assert!(!err.contains("s3cr3t"), "{err}");
            assert!(err.starts_with("secrets file "), "{err}");
        }
    }

    #[test]
    fn the_registration_key_is_used_only_with_self_registration() {
        let secrets = StoredSecrets::generate().unwrap();
        assert_eq!(secrets.for_server(false).registration_key, None);
        assert_eq!(
            secrets.for_server(true).registration_key.as_deref(),
            Some(secrets.registration_key.as_str())
        );
        assert!(!format!("{secrets:?}").contains(&secrets.agent_key));
    }

    #[test]
    fn random_keys_differ() {
        let a = random_key(KEY_LEN).unwrap();
        let b = random_key(KEY_LEN).unwrap();
        assert_ne!(a, b);
    }
}
