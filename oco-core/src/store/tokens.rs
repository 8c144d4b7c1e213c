use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{Name, Sha256Digest, TokenId};

/// What an admin API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum TokenAccess {
    /// Everything, tokens included.
    Full,
    /// Reading only: for dashboards and monitoring.
    ReadOnly,
}

/// An admin API token as a store keeps it: its name and access, and the SHA-256 digest of the
/// secret, never the secret itself.
///
/// # Examples
///
/// ```
/// use oco_core::chrono::{TimeZone, Utc};
/// use oco_core::model::{Name, Sha256Digest};
/// use oco_core::store::{MemoryStore, NewAdminToken, Store, TokenAccess};
///
/// let store = MemoryStore::new();
/// let digest = Sha256Digest([7; 32]); // of the secret, which the store never sees
/// let token = store.create_admin_token(NewAdminToken {
///     name: Name::new("name", "grafana")?,
///     access: TokenAccess::ReadOnly,
///     digest,
///     created: Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap(),
/// })?;
/// assert_eq!(store.admin_token_by_digest(&digest)?, Some(token.clone()));
/// store.delete_admin_token(token.id)?;
/// assert_eq!(store.admin_token_by_digest(&digest)?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    /// Its id, assigned by the store.
    pub id: TokenId,
    /// Its name, unique among tokens: what the audit log names.
    pub name: Name,
    /// What it may do.
    pub access: TokenAccess,
    /// The SHA-256 digest of the secret, unique among tokens.
    pub digest: Sha256Digest,
    /// When it was created.
    pub created: DateTime<Utc>,
}

/// An admin API token to store ([`super::Store::create_admin_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAdminToken {
    /// Its name.
    pub name: Name,
    /// What it may do.
    pub access: TokenAccess,
    /// The SHA-256 digest of the secret.
    pub digest: Sha256Digest,
    /// When it was created.
    pub created: DateTime<Utc>,
}

impl NewAdminToken {
    /// The stored token, with its id.
    pub fn with_id(self, id: TokenId) -> AdminToken {
        AdminToken {
            id,
            name: self.name,
            access: self.access,
            digest: self.digest,
            created: self.created,
        }
    }
}
