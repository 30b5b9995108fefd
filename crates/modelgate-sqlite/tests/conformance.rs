//! The store conformance suite against SQLite: in memory, and on a file in
//! rollback-journal mode (the EFS setting) to exercise real file locking.

mod memory {
    modelgate_testkit::store_conformance!(modelgate_sqlite::SqliteStore::in_memory().unwrap());
}

mod file_delete_journal {
    fn store() -> modelgate_sqlite::SqliteStore {
        let dir = std::env::temp_dir().join(format!(
            "mg-conf-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let opts = modelgate_sqlite::Options {
            journal: modelgate_sqlite::Journal::Delete,
            ..Default::default()
        };
        modelgate_sqlite::SqliteStore::open(dir.join("t.db"), opts).unwrap()
    }
    modelgate_testkit::store_conformance!(store());
}
