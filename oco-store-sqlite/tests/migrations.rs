//! Schema versions: a new file gets the schema at `SCHEMA_VERSION`, recorded in the database; a
//! newer schema is refused with an error naming both versions and the file is left untouched; an
//! older database (an empty file, or one built by running only the first migrations' SQL) is
//! migrated with its data, atomically.

// Tests report failures by panicking: unwrap and expect are their assertions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use oco_core::model::{ComputerId, MacAddress, PackageId, Payload, Sha256Digest};
use oco_core::store::testkit::{at, name, new_computer};
use oco_core::store::{Page, Store, StoreError};
use oco_store_sqlite::{Options, SqliteStore, Synchronous, SCHEMA_VERSION};
use rusqlite::Connection;

use common::raw_dump;

/// The migration scripts in order, as shipped in `migrations/`.
fn migration_scripts() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

fn user_version(path: &Path) -> u32 {
    let conn = Connection::open(path).unwrap();
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap()
}

/// The schema as SQLite records it: every object's type, name and SQL.
fn schema(path: &Path) -> Vec<(String, String, Option<String>)> {
    let conn = Connection::open(path).unwrap();
    let mut statement = conn
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A database at `version` built with a raw connection, running only the first migrations.
fn database_at(path: &Path, version: usize) {
    let scripts = migration_scripts();
    let conn = Connection::open(path).unwrap();
    for script in &scripts[..version] {
        conn.execute_batch(script).unwrap();
    }
    conn.execute_batch(&format!("PRAGMA user_version = {version}"))
        .unwrap();
}

#[test]
fn the_migration_scripts_are_the_schema_versions() {
    assert_eq!(
        migration_scripts().len(),
        usize::try_from(SCHEMA_VERSION).unwrap(),
        "one script per schema version"
    );
}

#[test]
fn a_new_file_gets_the_current_schema_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let computer = store.create_computer(new_computer("pc1")).unwrap();
    drop(store);

    assert_eq!(user_version(&path), SCHEMA_VERSION, "recorded in the file");
    let conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);
    // Exactly the schema the migration scripts describe.
    let scripted = dir.path().join("scripted.sqlite");
    database_at(&scripted, migration_scripts().len());
    assert_eq!(schema(&path), schema(&scripted));

    let before = schema(&path);
    let reopened = SqliteStore::open(&path).unwrap();
    assert_eq!(reopened.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(reopened.computer(computer.id).unwrap(), computer);
    drop(reopened);
    assert_eq!(schema(&path), before, "reopening changes no schema");
}

#[test]
fn an_empty_file_is_a_version_0_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.sqlite");
    std::fs::write(&path, b"").unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    store.create_computer(new_computer("pc1")).unwrap();
}

#[test]
fn every_option_opens_and_migrates() {
    let dir = tempfile::tempdir().unwrap();
    for (i, synchronous) in [Synchronous::Normal, Synchronous::Full]
        .into_iter()
        .enumerate()
    {
        for readers in [0, 1, 3] {
            let path = dir.path().join(format!("options-{i}-{readers}.sqlite"));
            let options = Options {
                synchronous,
                readers,
                ..Options::default()
            };
            let store = SqliteStore::open_with(&path, &options).unwrap();
            assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
            let pc = store.create_computer(new_computer("pc1")).unwrap();
            assert_eq!(store.computer(pc.id).unwrap(), pc, "{options:?}");
        }
    }
    let memory = SqliteStore::open_in_memory().unwrap();
    assert_eq!(memory.schema_version().unwrap(), SCHEMA_VERSION);
}

/// Panics unless `result` refuses a newer schema, naming both versions.
fn assert_refused_as_newer(result: Result<SqliteStore, StoreError>) {
    let newer = SCHEMA_VERSION + 1;
    match result {
        Err(error @ StoreError::Invalid { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains(&newer.to_string())
                    && message.contains(&SCHEMA_VERSION.to_string()),
                "the message names neither version {newer} nor {SCHEMA_VERSION}: {message}"
            );
        }
        Err(other) => panic!("a newer schema gave {other:?}, not Invalid"),
        Ok(_) => panic!("a database of schema version {newer} was opened"),
    }
}

#[test]
fn a_newer_schema_is_refused_and_the_file_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    store.create_computer(new_computer("pc1")).unwrap();
    drop(store);
    // The last connection to close checkpoints the WAL into the file.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
        .unwrap();
    drop(conn);
    let bytes = std::fs::read(&path).unwrap();
    let dump = raw_dump(&path);

    assert_refused_as_newer(SqliteStore::open(&path));
    assert_refused_as_newer(SqliteStore::open_with(
        &path,
        &Options {
            readers: 0,
            ..Options::default()
        },
    ));

    assert_eq!(user_version(&path), SCHEMA_VERSION + 1);
    assert_eq!(raw_dump(&path), dump);
    assert!(
        std::fs::read(&path).unwrap() == bytes,
        "the refused database file was modified"
    );
}

#[test]
fn a_newer_schema_in_rollback_journal_mode_is_left_in_that_mode() {
    // A database written by a newer release that chose another journal mode: refusing it must
    // not convert it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer-journal.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE future (x INTEGER); INSERT INTO future VALUES (42);
         PRAGMA user_version = {};",
        SCHEMA_VERSION + 1
    ))
    .unwrap();
    drop(conn);
    let bytes = std::fs::read(&path).unwrap();

    assert_refused_as_newer(SqliteStore::open(&path));

    let conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    drop(conn);
    assert_eq!(
        mode, "delete",
        "the refused database was switched to another journal mode"
    );
    assert!(
        std::fs::read(&path).unwrap() == bytes,
        "the refused database file was modified"
    );
}

#[test]
fn every_older_version_is_migrated_to_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let current = dir.path().join("current.sqlite");
    database_at(&current, migration_scripts().len());
    for version in 0..migration_scripts().len() {
        let path = dir.path().join(format!("v{version}.sqlite"));
        database_at(&path, version);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        drop(store);
        assert_eq!(
            user_version(&path),
            SCHEMA_VERSION,
            "from version {version}"
        );
        assert_eq!(schema(&path), schema(&current), "from version {version}");
    }
}

#[test]
fn data_written_at_schema_version_1_survives_migration() {
    // Schema version 1 is fixed forever (migrations are append-only), so rows written with its
    // SQL stay valid input for every later version.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    database_at(&path, 1);
    let seen = at(3_600);
    let nanos = seen.timestamp_nanos_opt().unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO computers (id, hostname, hostname_key, os, os_version, architecture, macs,
             last_seen, assignment_revision)
         VALUES (7, 'PC-Seven', 'pc-seven', 'Windows', '11', 'x86_64',
             'aa:bb:cc:dd:ee:01, aa:bb:cc:dd:ee:02', ?1, 3)",
        [nanos],
    )
    .unwrap();
    conn.execute("INSERT INTO families (id, name) VALUES (2, 'app')", [])
        .unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let computer = store.computer(ComputerId(7)).unwrap();
    assert_eq!(computer.hostname, name("PC-Seven"));
    assert_eq!(
        (
            computer.os.as_str(),
            computer.os_version.as_str(),
            computer.architecture.as_str()
        ),
        ("Windows", "11", "x86_64")
    );
    let macs: Vec<MacAddress> = vec![
        "aa:bb:cc:dd:ee:01".parse().unwrap(),
        "aa:bb:cc:dd:ee:02".parse().unwrap(),
    ];
    assert_eq!(computer.macs, macs);
    assert_eq!(computer.last_seen, Some(seen));
    assert_eq!(store.assignments(ComputerId(7)).unwrap().1 .0, 3);
    assert_eq!(
        store
            .computer_by_hostname("pc-SEVEN")
            .unwrap()
            .map(|c| c.id),
        Some(ComputerId(7))
    );
    assert_eq!(
        store.list_families(Page::first(10)).unwrap()[0].name,
        name("app")
    );
    // New ids continue after the migrated ones.
    let next = store.create_computer(new_computer("pc8")).unwrap();
    assert!(next.id > ComputerId(7));
}

/// Version 2 keeps reply timestamps per agent: every agent that had credentials continues above
/// the server-wide reservation of version 1, which every reply sent before was below.
#[test]
fn the_server_wide_reply_reservation_becomes_each_agents_last_reply() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    database_at(&path, 1);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO computers (id, hostname, hostname_key, os, os_version, architecture, macs)
             VALUES (1, 'pc1', 'pc1', '', '', '', ''), (2, 'pc2', 'pc2', '', '', '', '');
         INSERT INTO credentials (computer_id, agent_key, server_key, last_hello)
             VALUES (1, 'agent', 'server', 1764849000.5);
         INSERT INTO server_state (id, last_response_timestamp, admin_token_hash)
             VALUES (1, 1764849610.25, 'hash');",
    )
    .unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).unwrap();
    let credentials = store.credentials(ComputerId(1)).unwrap();
    assert_eq!(credentials.last_reply, Some(1_764_849_610.25));
    assert_eq!(credentials.last_hello, Some(1_764_849_000.5));
    assert_eq!(credentials.agent_key.as_deref(), Some("agent"));
    assert_eq!(credentials.last_contact, None);
    // A computer that never said hello had no reply: it has no credentials yet.
    assert_eq!(store.credentials(ComputerId(2)).unwrap().last_reply, None);
    assert_eq!(
        store.server_state().unwrap().admin_token_hash.as_deref(),
        Some("hash")
    );
}

/// Version 4 keeps a payload's size and digest: a package with a payload stored before it reads
/// as having a payload of unknown size and digest, one without as having none, and both can be
/// written with a size and digest afterwards.
#[test]
fn payloads_stored_before_digests_were_kept_are_of_unknown_digest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.sqlite");
    database_at(&path, 3);
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO families (id, name) VALUES (1, 'app');
         INSERT INTO packages (id, family_id, version, install_command, install_success_codes,
             install_post_action, uninstall_command, uninstall_success_codes,
             uninstall_post_action, has_payload, download_for_uninstall, upgrade_behavior,
             compatible_os, compatible_os_versions, compatible_architectures, dependencies)
         VALUES (1, 1, '1.0', 'setup', '0', 'none', '', '0', 'none', 1, 0, 'keep-others',
                 '[]', '[]', '[]', ''),
                (2, 1, '2.0', 'setup', '0', 'none', '', '0', 'none', 0, 0, 'keep-others',
                 '[]', '[]', '[]', '');",
    )
    .unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).unwrap();
    let mut stored = store.package(PackageId(1)).unwrap();
    assert_eq!(stored.payload, Some(Payload::Unknown));
    assert!(stored.has_payload());
    let mut without = store.package(PackageId(2)).unwrap();
    assert_eq!(without.payload, None);
    stored.payload = Some(Payload::new(10, Sha256Digest([1; 32])));
    store.update_package(&stored).unwrap();
    without.payload = Some(Payload::new(0, Sha256Digest([2; 32])));
    store.update_package(&without).unwrap();
    assert_eq!(store.package(PackageId(1)).unwrap(), stored);
    assert_eq!(store.package(PackageId(2)).unwrap(), without);
}

#[test]
fn a_failing_migration_changes_nothing() {
    // A version-0 file that already has a table the first migration creates: the migration
    // fails, and no part of it stays behind.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clash.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE jobs (unrelated TEXT); INSERT INTO jobs VALUES ('kept');")
        .unwrap();
    drop(conn);
    let before = raw_dump(&path);
    let schema_before = schema(&path);

    let result = SqliteStore::open(&path);
    assert!(
        matches!(result, Err(StoreError::Backend(_))),
        "opening a clashing version-0 file gave {:?}",
        result.as_ref().map(|_| ())
    );

    assert_eq!(user_version(&path), 0);
    assert_eq!(
        schema(&path),
        schema_before,
        "a half-run migration left objects behind"
    );
    assert_eq!(raw_dump(&path), before);
}

/// The database holds every agent's keys: it and the files SQLite keeps beside it are readable
/// and writable by their owner only, whatever the umask.
#[cfg(unix)]
#[test]
fn a_new_database_and_its_wal_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oco.db");
    let store = SqliteStore::open(&path).unwrap();
    store.create_computer(new_computer("pc1")).unwrap();
    for name in ["oco.db", "oco.db-wal", "oco.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
    }
}

#[test]
fn names_stored_before_version_3_are_made_valid_and_stay_unique() {
    // Version 2 accepted any text as a name: control characters, reordering characters, and
    // names that only such a character told apart.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.sqlite");
    database_at(&path, 2);
    let conn = Connection::open(&path).unwrap();
    let computer = "INSERT INTO computers (id, hostname, hostname_key, os, os_version, \
                    architecture, macs) VALUES (?1, ?2, ?3, '', '', '', '')";
    for (id, hostname) in [
        (1, "pc1"),
        (2, "PC1\u{7}"),
        (3, "evil\u{202E}txt.exe"),
        (4, "\u{0}\n"),
        (5, "fine"),
    ] {
        conn.execute(
            computer,
            rusqlite::params![id, hostname, hostname.to_lowercase()],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO families (id, name) VALUES (1, ?1)",
        ["Fire\u{0}fox\r\n"],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO computer_groups (id, name) VALUES (1, ?1)",
        [format!("lab{}", "\u{202A}x".repeat(300))],
    )
    .unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).unwrap();
    let hostnames: Vec<String> = store
        .list_computers(Page::first(10))
        .unwrap()
        .into_iter()
        .map(|computer| computer.hostname.as_str().to_owned())
        .collect();
    assert_eq!(
        hostnames,
        ["pc1", "PC1 #2", "eviltxt.exe", "computer 4", "fine"]
    );
    // The case-insensitive key follows the new hostname: lookups find it.
    assert_eq!(
        store.computer_by_hostname("pc1 #2").unwrap().unwrap().id,
        ComputerId(2)
    );
    assert_eq!(
        store.list_families(Page::first(10)).unwrap()[0].name,
        name("Firefox")
    );
    let group = &store.computer_groups().unwrap()[0].0;
    assert_eq!(group.name.as_str().chars().count(), 255);
    assert!(group.name.as_str().starts_with("labxx"));
    drop(store);
    // A valid row is not rewritten: opening again changes nothing.
    let dump = raw_dump(&path);
    drop(SqliteStore::open(&path).unwrap());
    assert_eq!(raw_dump(&path), dump);
}

/// Migration 0005 counts the rule jobs a database already holds: a store's rule jobs, with the
/// database put back to version 4 (the migration's objects dropped), are summarised as their
/// jobs say once the store opens it again.
#[test]
fn rule_jobs_written_before_the_job_counts_are_counted() {
    use oco_core::housekeeping::JobSummary;
    use oco_core::model::{Origin, RuleId};
    use oco_core::rules::{RuleWorld, Scope};
    use oco_core::store::testkit::{fixture, rule};
    use oco_core::store::JobFilter;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.sqlite");
    let rule_id = {
        let store = SqliteStore::open(&path).unwrap();
        let f = fixture(&store);
        let group = store.create_computer_group(name("all"), None).unwrap();
        store
            .set_computer_group_members(group.id, &[f.computers[0].id, f.computers[1].id])
            .unwrap();
        let packages = store.create_package_group(name("all"), None).unwrap();
        store
            .set_package_group_members(packages.id, &[f.packages[0].id, f.other.id])
            .unwrap();
        let mut new = rule("r", group.id, packages.id);
        new.enabled = true;
        let id = store.create_rule(new).unwrap().id;
        let world = RuleWorld::from_snapshot(&store.rule_snapshot().unwrap());
        let diff = world.evaluate(id, &Scope::full(), at(10));
        assert!(!diff.insert.is_empty());
        store.apply(&diff.into_change_set()).unwrap();
        id
    };
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TRIGGER credentials_keep_last_contact;
         DROP TRIGGER rule_job_counted; DROP TRIGGER rule_job_uncounted;
         DROP TRIGGER rule_job_recounted; DROP TABLE rule_job_counts;
         DROP INDEX jobs_rule_finished; DROP INDEX jobs_rule_started;
         DROP INDEX jobs_by_container;
         CREATE INDEX jobs_by_container ON jobs (container_id, state)
             WHERE container_id IS NOT NULL;
         DROP TABLE admin_tokens;
         PRAGMA user_version = 4;",
    )
    .unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let origin = Origin::Rule(rule_id);
    let jobs = store
        .list_jobs(
            &JobFilter {
                origin: Some(origin),
                ..JobFilter::default()
            },
            Page::first(100),
        )
        .unwrap();
    assert!(!jobs.is_empty());
    assert_eq!(
        store.job_summary(origin).unwrap().normalized(),
        JobSummary::of(&jobs).normalized()
    );
    assert!(store
        .job_summary(Origin::Rule(RuleId(rule_id.0 + 1)))
        .unwrap()
        .counts
        .is_empty());
}
