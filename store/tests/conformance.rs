//! Runs the conformance suite against every backend of this crate.

use govtrust_store::{MemoryStore, RedbStore, conformance};

#[test]
fn memory_store_conforms() {
    conformance::run(&MemoryStore::new());
}

#[test]
fn redb_store_conforms() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = RedbStore::open(&dir.path().join("store.redb"))?;
    conformance::run(&store);
    Ok(())
}
