//! Rule re-evaluation after an agent's report, as the agent API calls it: the engine's
//! ([`oco_core::engine`]) over the server's store, with the store's errors. The admin API calls
//! the engine itself.

use oco_core::chrono::{DateTime, Utc};
use oco_core::engine::{Engine, EngineError, Evaluated};
use oco_core::rules::{RuleEvent, RuleWorld};
use oco_core::store::{Store, StoreError, StoreResult};

/// The engine's error as the store's: these operations fail only in the store, or by losing
/// their compare-and-set race too often, which is a conflict.
fn store_error(error: EngineError) -> StoreError {
    match error {
        EngineError::Store(error) => error,
        EngineError::Contended { .. } => StoreError::Conflict {
            what: error.to_string(),
        },
        other => StoreError::Invalid {
            reason: other.to_string(),
        },
    }
}

/// [`Engine::world_for`].
///
/// # Errors
///
/// The store's.
pub fn world_for(store: &dyn Store, event: &RuleEvent) -> StoreResult<RuleWorld> {
    Engine::new(store).world_for(event).map_err(store_error)
}

/// [`Engine::reevaluate`].
///
/// # Errors
///
/// The store's; a conflict if a diff lost its race on every attempt.
pub fn reevaluate(
    store: &dyn Store,
    event: &RuleEvent,
    before: &RuleWorld,
    now: DateTime<Utc>,
) -> StoreResult<Vec<Evaluated>> {
    Engine::new(store)
        .reevaluate(event, before, now)
        .map_err(store_error)
}
