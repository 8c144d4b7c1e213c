-- Schema version 1: the whole data model of oco-core's Store.
--
-- Conventions: instants are INTEGER nanoseconds since the Unix epoch (UTC); booleans are 0/1;
-- enums are their kebab-case text (`waiting`, `explicit-uninstall`, ...); constraints are their
-- canonical text, parsed when read. Ids come from AUTOINCREMENT so that none is ever reused (a
-- late agent report names a job id; a tombstone keeps it).

CREATE TABLE computers (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    hostname            TEXT    NOT NULL,
    -- The hostname in lower case (Unicode): hostnames are unique ignoring case.
    hostname_key        TEXT    NOT NULL UNIQUE,
    os                  TEXT    NOT NULL,
    os_version          TEXT    NOT NULL,
    architecture        TEXT    NOT NULL,
    -- Canonical MAC addresses separated by ", ".
    macs                TEXT    NOT NULL,
    last_seen           INTEGER,
    -- Bumped at every change of the computer's assignments (compare-and-set key).
    assignment_revision INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE credentials (
    computer_id        INTEGER PRIMARY KEY REFERENCES computers (id),
    agent_key          TEXT,
    previous_agent_key TEXT,
    server_key         TEXT,
    last_hello         REAL
);

CREATE TABLE server_state (
    id                      INTEGER PRIMARY KEY CHECK (id = 1),
    last_response_timestamp REAL,
    admin_token_hash        TEXT
);

CREATE TABLE families (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT    NOT NULL UNIQUE
);

CREATE TABLE packages (
    id                       INTEGER PRIMARY KEY AUTOINCREMENT,
    family_id                INTEGER NOT NULL REFERENCES families (id),
    version                  TEXT    NOT NULL,
    install_command          TEXT    NOT NULL,
    install_success_codes    TEXT    NOT NULL,
    install_post_action      TEXT    NOT NULL,
    uninstall_command        TEXT    NOT NULL,
    uninstall_success_codes  TEXT    NOT NULL,
    uninstall_post_action    TEXT    NOT NULL,
    has_payload              INTEGER NOT NULL,
    download_for_uninstall   INTEGER NOT NULL,
    upgrade_behavior         TEXT    NOT NULL,
    -- JSON arrays of strings.
    compatible_os            TEXT    NOT NULL,
    compatible_os_versions   TEXT    NOT NULL,
    compatible_architectures TEXT    NOT NULL,
    -- Package ids in order, separated by spaces.
    dependencies             TEXT    NOT NULL,
    UNIQUE (family_id, version)
);

CREATE TABLE computer_groups (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    name      TEXT    NOT NULL,
    parent_id INTEGER REFERENCES computer_groups (id)
);

CREATE TABLE computer_group_members (
    group_id    INTEGER NOT NULL REFERENCES computer_groups (id),
    computer_id INTEGER NOT NULL REFERENCES computers (id),
    PRIMARY KEY (group_id, computer_id)
) WITHOUT ROWID;

-- The groups of some computers (a scoped rule snapshot, deleting a computer).
CREATE INDEX computer_group_members_by_computer ON computer_group_members (computer_id);

CREATE TABLE package_groups (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    name      TEXT    NOT NULL,
    parent_id INTEGER REFERENCES package_groups (id)
);

CREATE TABLE package_group_members (
    group_id   INTEGER NOT NULL REFERENCES package_groups (id),
    position   INTEGER NOT NULL,
    package_id INTEGER NOT NULL REFERENCES packages (id),
    PRIMARY KEY (group_id, position)
) WITHOUT ROWID;

CREATE TABLE assignments (
    computer_id  INTEGER NOT NULL REFERENCES computers (id),
    package_id   INTEGER NOT NULL REFERENCES packages (id),
    installed_at INTEGER NOT NULL,
    -- The job whose success recorded it (it may be deleted since: no foreign key).
    job_id       INTEGER,
    PRIMARY KEY (computer_id, package_id)
) WITHOUT ROWID;

-- The delivery policy columns (priority .. post_action_timeout) are the same in containers and
-- rules.
CREATE TABLE containers (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL,
    notes               TEXT    NOT NULL,
    enabled             INTEGER NOT NULL,
    schedule_start      INTEGER NOT NULL,
    schedule_end        INTEGER,
    priority            INTEGER NOT NULL,
    sequence_mode       TEXT    NOT NULL,
    ip_ranges           TEXT    NOT NULL,
    time_frames         TEXT    NOT NULL,
    time_zone           TEXT    NOT NULL,
    post_action_timeout INTEGER,
    wol_wake            INTEGER NOT NULL,
    wol_shutdown_after  INTEGER NOT NULL,
    wol_sent_at         INTEGER,
    self_service        INTEGER NOT NULL,
    created_at          INTEGER NOT NULL
);

CREATE TABLE rules (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    name                TEXT    NOT NULL,
    notes               TEXT    NOT NULL,
    enabled             INTEGER NOT NULL,
    computer_group_id   INTEGER NOT NULL REFERENCES computer_groups (id),
    package_group_id    INTEGER NOT NULL REFERENCES package_groups (id),
    priority            INTEGER NOT NULL,
    sequence_mode       TEXT    NOT NULL,
    ip_ranges           TEXT    NOT NULL,
    time_frames         TEXT    NOT NULL,
    time_zone           TEXT    NOT NULL,
    post_action_timeout INTEGER,
    created_at          INTEGER NOT NULL,
    -- Deleted while it still has jobs: hidden from listings and rule snapshots, removed with its
    -- last job.
    deleting            INTEGER NOT NULL DEFAULT 0
);

-- What the agent runs for a job, stored once per distinct value: a job row holds its id, so a
-- million jobs of one package share one command text.
CREATE TABLE job_snapshots (
    id               INTEGER PRIMARY KEY,
    command          TEXT    NOT NULL,
    success_codes    TEXT    NOT NULL,
    post_action      TEXT    NOT NULL,
    download         INTEGER NOT NULL,
    upgrade_behavior TEXT    NOT NULL,
    UNIQUE (command, success_codes, post_action, download, upgrade_behavior)
);

CREATE TABLE jobs (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The origin: exactly one of container_id and rule_id.
    container_id       INTEGER REFERENCES containers (id),
    rule_id            INTEGER REFERENCES rules (id),
    computer_id        INTEGER NOT NULL REFERENCES computers (id),
    package_id         INTEGER NOT NULL REFERENCES packages (id),
    kind               TEXT    NOT NULL,
    snapshot_id        INTEGER NOT NULL REFERENCES job_snapshots (id),
    sequence           INTEGER NOT NULL,
    state              TEXT    NOT NULL,
    download_progress  INTEGER,
    return_code        INTEGER,
    output             TEXT    NOT NULL,
    message            TEXT,
    download_started   INTEGER,
    execution_started  INTEGER,
    finished           INTEGER,
    last_report        INTEGER,
    -- `pending` (with wol_shutdown_since) or `confirmed`.
    wol_shutdown       TEXT,
    wol_shutdown_since INTEGER,
    orphaned           INTEGER NOT NULL,
    attempt            INTEGER NOT NULL,
    revision           INTEGER NOT NULL,
    CHECK ((container_id IS NULL) <> (rule_id IS NULL))
);

-- One computer's jobs by state: the planner's pending jobs and Failed jobs, a report's jobs of
-- the computer, deleting a computer.
CREATE INDEX jobs_by_computer ON jobs (computer_id, state);

-- A container's jobs by state: housekeeping (does it have pending jobs?), purge, listings.
CREATE INDEX jobs_by_container ON jobs (container_id, state) WHERE container_id IS NOT NULL;

-- A rule's jobs: the unique key of rule jobs, and the order rule evaluation merges them in.
CREATE UNIQUE INDEX jobs_by_rule ON jobs (rule_id, computer_id, package_id, kind)
    WHERE rule_id IS NOT NULL;

-- Deleted jobs, kept so that a late report still records an installation. The columns of jobs,
-- without foreign keys, and when the job was deleted.
CREATE TABLE tombstones (
    id                 INTEGER PRIMARY KEY,
    container_id       INTEGER,
    rule_id            INTEGER,
    computer_id        INTEGER NOT NULL,
    package_id         INTEGER NOT NULL,
    kind               TEXT    NOT NULL,
    snapshot_id        INTEGER NOT NULL,
    sequence           INTEGER NOT NULL,
    state              TEXT    NOT NULL,
    download_progress  INTEGER,
    return_code        INTEGER,
    output             TEXT    NOT NULL,
    message            TEXT,
    download_started   INTEGER,
    execution_started  INTEGER,
    finished           INTEGER,
    last_report        INTEGER,
    wol_shutdown       TEXT,
    wol_shutdown_since INTEGER,
    orphaned           INTEGER NOT NULL,
    attempt            INTEGER NOT NULL,
    revision           INTEGER NOT NULL,
    deleted_at         INTEGER NOT NULL
);

-- The purge cut-off and the oldest tombstone.
CREATE INDEX tombstones_by_age ON tombstones (deleted_at);
CREATE INDEX tombstones_by_computer ON tombstones (computer_id);
CREATE INDEX tombstones_by_container ON tombstones (container_id) WHERE container_id IS NOT NULL;
CREATE INDEX tombstones_by_rule ON tombstones (rule_id) WHERE rule_id IS NOT NULL;
