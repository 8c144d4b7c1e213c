//! Several server processes on one PostgreSQL database, acting as one.
//!
//! What a process keeps in memory that another's writes can outdate is its hello cache:
//! [`listen`] runs a thread that hears the other processes' writes
//! ([`oco_store_postgres::Listener`]) and forgets what they touched, and tells the cache how long
//! it may trust a hit: until [`TRUST`] after the start of the last round trip to the database
//! that returned every notification committed before it. A write on one process is so seen by
//! the hellos of every other within [`TRUST`] (within milliseconds in practice); while the
//! listener cannot reach the database, no hit is trusted at all, and after it reconnects every
//! outlook is planned again.
//!
//! What only one process may do, housekeeping (one magic packet per machine, one purge), runs
//! on the process holding an advisory lock ([`PgLeadership`]); the others try to take it at
//! each interval, so when its holder dies another takes over within one interval.
//!
//! Everything else is in the database already: the replay guard and the reply-timestamp
//! reservations are compare-and-set on each computer's credentials, and every decision is a
//! compare-and-set write decided again after a lost race.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use oco_agent_protocol::cache::{CachedStore, Elsewhere};
use oco_core::chrono;
use oco_core::model::Origin;
use oco_core::store::StoreError;
use oco_store_postgres::{Leadership, Listener, PgStore, Touched};

use crate::clock::Clock;
use crate::housekeeping::Lead;

/// How long after the start of a round trip to the database the hello cache trusts its hits:
/// the most a hello can lag behind a write by another process.
pub const TRUST: Duration = Duration::from_secs(2);

/// Time between the listener's round trips (notifications that arrive meanwhile are handled at
/// once): well within [`TRUST`], so that a slow round trip does not interrupt the cache.
pub const ROUND_TRIP_INTERVAL: Duration = Duration::from_millis(500);

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// The advisory lock key of housekeeping: any number, the same in every process.
pub const HOUSEKEEPING_LOCK: i64 = 0x6f63_6f5f_686b_6570;

/// A running listener; [`Listening::stop`] ends it.
#[derive(Debug)]
pub struct Listening {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listening {
    /// Stops the listener and waits for its thread (at most about one
    /// [`ROUND_TRIP_INTERVAL`]).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the listener to other processes' writes panicked");
            }
        }
    }
}

/// Starts the thread that reports other processes' writes on `store`'s database to `cached`
/// (see the module docs).
///
/// # Errors
///
/// If the thread cannot be started.
pub fn listen(
    store: Arc<PgStore>,
    cached: Arc<CachedStore>,
    clock: Arc<dyn Clock>,
) -> std::io::Result<Listening> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::Builder::new()
        .name("oco-listener".into())
        .spawn(move || run(&store, &cached, clock.as_ref(), &stopped))?;
    Ok(Listening {
        stop,
        thread: Some(thread),
    })
}

fn run(store: &PgStore, cached: &CachedStore, clock: &dyn Clock, stop: &AtomicBool) {
    let mut failing = false;
    while !stop.load(Ordering::SeqCst) {
        match store.listen() {
            Ok(mut listener) => {
                if failing {
                    tracing::info!("listening to other processes' writes again");
                    failing = false;
                }
                // Whatever was written while nobody listened is unknown.
                cached.touched_elsewhere(Elsewhere::Everything);
                if let Err(error) = follow(&mut listener, cached, clock, stop) {
                    cached.out_of_sync();
                    tracing::warn!(
                        "lost the connection that hears other processes' writes: {error}; \
                         the hello cache is bypassed until it is back"
                    );
                    failing = true;
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(
                        "cannot listen to other processes' writes: {error}; the hello cache is \
                         bypassed until this works (trying every {RECONNECT_PAUSE:?})"
                    );
                    failing = true;
                }
            }
        }
        if !stop.load(Ordering::SeqCst) {
            std::thread::sleep(RECONNECT_PAUSE);
        }
    }
}

/// Reports what `listener` hears until `stop` or an error.
fn follow(
    listener: &mut Listener,
    cached: &CachedStore,
    clock: &dyn Clock,
    stop: &AtomicBool,
) -> Result<(), StoreError> {
    let trust = chrono::Duration::from_std(TRUST).unwrap_or(chrono::Duration::seconds(2));
    while !stop.load(Ordering::SeqCst) {
        let started = clock.now();
        report(cached, listener.sync()?);
        cached.in_sync_until(started + trust);
        report(cached, listener.wait(ROUND_TRIP_INTERVAL)?);
    }
    Ok(())
}

fn report(cached: &CachedStore, touched: Vec<Touched>) {
    for touched in touched {
        match touched {
            Touched::Computers(computers) => {
                cached.touched_elsewhere(Elsewhere::Computers(&computers));
            }
            Touched::Containers(containers) => {
                for container in containers {
                    cached.touched_elsewhere(Elsewhere::Origin(Origin::Container(container)));
                }
            }
            Touched::Rules(rules) => {
                for rule in rules {
                    cached.touched_elsewhere(Elsewhere::Origin(Origin::Rule(rule)));
                }
            }
            Touched::Everything => cached.touched_elsewhere(Elsewhere::Everything),
        }
    }
}

/// Housekeeping's lead among processes on one PostgreSQL database: an advisory lock, taken when
/// free and confirmed before each run.
#[derive(Debug)]
pub struct PgLeadership {
    store: Arc<PgStore>,
    held: Mutex<Option<Leadership>>,
}

impl PgLeadership {
    /// The lead of housekeeping among the processes on `store`'s database; not yet taken.
    pub fn new(store: Arc<PgStore>) -> Self {
        PgLeadership {
            store,
            held: Mutex::new(None),
        }
    }
}

impl Lead for PgLeadership {
    fn lead(&self) -> Result<bool, StoreError> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(leadership) = held.as_mut() {
            match leadership.confirm() {
                Ok(()) => return Ok(true),
                Err(error) => {
                    *held = None;
                    tracing::warn!(
                        "lost the lead of housekeeping ({error}); another process may take it"
                    );
                }
            }
        }
        match self.store.try_lead(HOUSEKEEPING_LOCK)? {
            Some(leadership) => {
                *held = Some(leadership);
                tracing::info!("this process leads housekeeping");
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
