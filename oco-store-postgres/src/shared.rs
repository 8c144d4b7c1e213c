//! What several processes sharing one database need beyond the [`Store`](oco_core::store::Store):
//! hearing each other's writes ([`Listener`]) and taking turns at work only one may do
//! ([`Leadership`]).
//!
//! Both hold a connection of their own, outside the store's pool: a listening session must stay
//! idle between its round trips, and a session-level advisory lock lives exactly as long as its
//! session.

use std::time::Duration;

use oco_core::model::{ComputerId, ContainerId, RuleId};
use oco_core::store::{StoreError, StoreResult};
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use crate::{backend, quote, PgStore};

/// What a committed write of another process touched, as its notification says (see
/// [`Listener`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// The jobs of these computers (or the computers themselves) changed.
    Computers(Vec<ComputerId>),
    /// These containers changed or were deleted.
    Containers(Vec<ContainerId>),
    /// These rules changed or were deleted.
    Rules(Vec<RuleId>),
    /// Anything may have changed: a write touched too much to list, or a notification did not
    /// parse.
    Everything,
}

/// A session listening to the writes of other processes on the store's database.
///
/// Every committed write that changes what a computer's hello hands out (a job, a container, a
/// rule, a computer) notifies, in its transaction, on a channel of the store's schema (schema
/// version 2's triggers); the writes of the [`PgStore`] that opened the listener are left out.
/// Notifications arrive in commit order, and only for committed transactions.
///
/// [`Listener::sync`] is a round trip: when it returns, every notification of a transaction
/// committed before it started has been returned, by it or by an earlier call. A caller that
/// serves cached data can so bound how stale it may be: trust the cache only until a fixed time
/// after the start of the last successful round trip. A broken connection is an error: what was
/// notified meanwhile is lost, so after listening again, forget everything.
///
/// ```no_run
/// use std::time::Duration;
///
/// use oco_store_postgres::{PgStore, Touched};
///
/// let store = PgStore::connect("postgres://oco@localhost/oco")?;
/// let mut listener = store.listen()?;
/// loop {
///     for touched in listener.sync()? {
///         match touched {
///             Touched::Computers(ids) => println!("forget computers {ids:?}"),
///             other => println!("forget {other:?}"),
///         }
///     }
///     // Notifications that arrive within a second are handled at once.
///     for touched in listener.wait(Duration::from_secs(1))? {
///         println!("forget {touched:?}");
///     }
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Listener {
    client: Client,
    /// The `oco.writer` of the store's sessions: their own writes are not reported.
    writer: String,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Opens a session listening to the writes of other processes (see [`Listener`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the database cannot be reached.
    pub fn listen(&self) -> StoreResult<Listener> {
        let mut client = self.pool.connect()?;
        let channel: String = client
            .query_one("SELECT oco_touched_channel()", &[])
            .and_then(|row| row.try_get(0))
            .map_err(backend)?;
        client
            .batch_execute(&format!("LISTEN {}", quote(&channel)))
            .map_err(backend)?;
        Ok(Listener {
            client,
            writer: self.pool.writer.clone(),
        })
    }

    /// Takes the advisory lock `key` for as long as the returned [`Leadership`] lives, if no
    /// other session holds it: `None` if one does.
    ///
    /// The lock is held by a session of its own, so it ends when that session does: when the
    /// [`Leadership`] is dropped, when the process dies (its connection closes), or when
    /// PostgreSQL finds the connection dead (TCP keepalives, set to notice within about 30
    /// seconds). [`Leadership::confirm`] tells a holder whether it still holds it.
    ///
    /// ```no_run
    /// use oco_store_postgres::PgStore;
    ///
    /// let store = PgStore::connect("postgres://oco@localhost/oco")?;
    /// // Each process tries at every interval; one of them holds the lock at a time.
    /// if let Some(mut leader) = store.try_lead(0x6f63_6f5f_686b)? {
    ///     leader.confirm()?; // still ours: do the work only one process may do
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the database cannot be reached.
    pub fn try_lead(&self, key: i64) -> StoreResult<Option<Leadership>> {
        let mut client = self.pool.connect()?;
        // A dead peer is noticed by the server within idle + interval × count seconds.
        // (Ignored on Unix sockets, where a closed process closes its socket at once.)
        client
            .batch_execute(
                "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; \
                 SET tcp_keepalives_count = 4",
            )
            .map_err(backend)?;
        let taken: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .and_then(|row| row.try_get(0))
            .map_err(backend)?;
        Ok(taken.then_some(Leadership { client, key }))
    }
}

impl Listener {
    /// A round trip to the database: the notifications received until it returned.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the connection broke: notifications may have been lost.
    pub fn sync(&mut self) -> StoreResult<Vec<Touched>> {
        self.client.batch_execute("SELECT 1").map_err(backend)?;
        self.pending()
    }

    /// Waits up to `timeout` for notifications: those received, or none when the time is up.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the connection broke: notifications may have been lost.
    pub fn wait(&mut self, timeout: Duration) -> StoreResult<Vec<Touched>> {
        let mut touched = Vec::new();
        let mut notifications = self.client.notifications();
        let mut arrived = notifications.timeout_iter(timeout);
        if let Some(first) = arrived.next().map_err(backend)? {
            touched.extend(parse(first.payload(), &self.writer));
        }
        drop(arrived);
        // Whatever came with the first is taken too, without waiting.
        let mut now = notifications.iter();
        while let Some(more) = now.next().map_err(backend)? {
            touched.extend(parse(more.payload(), &self.writer));
        }
        Ok(touched)
    }

    /// The notifications received and not yet returned.
    fn pending(&mut self) -> StoreResult<Vec<Touched>> {
        let mut touched = Vec::new();
        let mut notifications = self.client.notifications();
        let mut received = notifications.iter();
        while let Some(notification) = received.next().map_err(backend)? {
            touched.extend(parse(notification.payload(), &self.writer));
        }
        Ok(touched)
    }
}

/// What a notification's payload says, `None` for a write of `own` writer.
fn parse(payload: &str, own: &str) -> Option<Touched> {
    let mut words = payload.splitn(3, ' ');
    let writer = words.next().unwrap_or_default();
    if !own.is_empty() && writer == own {
        return None;
    }
    let kind = words.next().unwrap_or_default();
    let list = words.next();
    let ids = || -> Option<Vec<i64>> {
        list?
            .split(',')
            .map(|id| id.parse().ok())
            .collect::<Option<Vec<i64>>>()
    };
    let touched = match kind {
        "c" => ids().map(|ids| Touched::Computers(ids.into_iter().map(ComputerId).collect())),
        "k" => ids().map(|ids| Touched::Containers(ids.into_iter().map(ContainerId).collect())),
        "r" => ids().map(|ids| Touched::Rules(ids.into_iter().map(RuleId).collect())),
        _ => None,
    };
    Some(touched.unwrap_or(Touched::Everything))
}

/// A session-level advisory lock, held while this lives (see [`PgStore::try_lead`]).
pub struct Leadership {
    client: Client,
    key: i64,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Leadership {
    /// Whether the lock is still held: its session answers and holds it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Backend`] if the session broke or no longer holds the lock: it is lost (and
    /// perhaps held by another process by now).
    pub fn confirm(&mut self) -> StoreResult<()> {
        let held: bool = self
            .client
            .query_one(
                // The session takes no other advisory lock.
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND granted)",
                &[],
            )
            .and_then(|row| row.try_get(0))
            .map_err(backend)?;
        if held {
            Ok(())
        } else {
            Err(StoreError::Backend(
                format!("the advisory lock {} is no longer held", self.key).into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_and_own_writes_are_left_out() {
        assert_eq!(
            parse("p1 c 1,2,30", "p2"),
            Some(Touched::Computers(vec![
                ComputerId(1),
                ComputerId(2),
                ComputerId(30)
            ]))
        );
        assert_eq!(
            parse("p1 k 7", "p2"),
            Some(Touched::Containers(vec![ContainerId(7)]))
        );
        assert_eq!(parse("p1 r 9", "p2"), Some(Touched::Rules(vec![RuleId(9)])));
        assert_eq!(parse("p1 *", "p2"), Some(Touched::Everything));
        assert_eq!(parse("p2 c 1", "p2"), None);
        // A write by hand has no writer; it is never one's own.
        assert_eq!(
            parse(" c 4", ""),
            Some(Touched::Computers(vec![ComputerId(4)]))
        );
        // What does not parse may have touched anything.
        assert_eq!(parse("p1 c 1,x", "p2"), Some(Touched::Everything));
        assert_eq!(parse("p1 q 1", "p2"), Some(Touched::Everything));
        assert_eq!(parse("", "p2"), Some(Touched::Everything));
    }
}
