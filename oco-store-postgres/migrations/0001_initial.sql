-- Schema version 1: the whole data model of oco-core's Store, as the SQLite store's schema
-- version 6 holds it, in PostgreSQL's types.
--
-- Conventions, the SQLite store's: instants are bigint nanoseconds since the Unix epoch (UTC),
-- so that both stores keep the same instants to the nanosecond and compare them the same way;
-- the agent protocol's timestamps (last hello, last reply) are double precision, as received;
-- enums are their kebab-case text (`waiting`, `explicit-uninstall`, ...); constraints are their
-- canonical text, parsed when read. Ids come from identity columns, whose sequences never hand
-- out a number twice (a late agent report names a job id; a tombstone keeps it). Constraints
-- are named: an error names the constraint, and the store maps it to the reference at fault.

CREATE TABLE computers (
    id                  bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hostname            text    NOT NULL,
    -- The hostname in lower case (Unicode): hostnames are unique ignoring case.
    hostname_key        text    NOT NULL CONSTRAINT computers_hostname_key UNIQUE,
    os                  text    NOT NULL,
    os_version          text    NOT NULL,
    architecture        text    NOT NULL,
    -- Canonical MAC addresses separated by ", ".
    macs                text    NOT NULL,
    last_seen           bigint,
    -- Bumped at every change of the computer's assignments (compare-and-set key).
    assignment_revision bigint  NOT NULL DEFAULT 0
);

CREATE TABLE credentials (
    computer_id        bigint PRIMARY KEY
                       CONSTRAINT credentials_computer REFERENCES computers (id),
    agent_key          text,
    previous_agent_key text,
    server_key         text,
    last_hello         double precision,
    last_reply         double precision,
    -- The agent's last accepted hello: when, from which address, which version.
    contact_at         bigint,
    contact_address    text,
    agent_version      text
);

CREATE TABLE server_state (
    id               bigint PRIMARY KEY CHECK (id = 1),
    admin_token_hash text
);

CREATE TABLE families (
    id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text   NOT NULL CONSTRAINT families_name UNIQUE
);

CREATE TABLE packages (
    id                       bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    family_id                bigint  NOT NULL CONSTRAINT packages_family REFERENCES families (id),
    version                  text    NOT NULL,
    install_command          text    NOT NULL,
    install_success_codes    text    NOT NULL,
    install_post_action      text    NOT NULL,
    uninstall_command        text    NOT NULL,
    uninstall_success_codes  text    NOT NULL,
    uninstall_post_action    text    NOT NULL,
    has_payload              boolean NOT NULL,
    download_for_uninstall   boolean NOT NULL,
    upgrade_behavior         text    NOT NULL,
    -- JSON arrays of strings (text, as the SQLite store keeps them: read back as written).
    compatible_os            text    NOT NULL,
    compatible_os_versions   text    NOT NULL,
    compatible_architectures text    NOT NULL,
    -- Package ids in order, separated by spaces.
    dependencies             text    NOT NULL,
    -- Both NULL for a payload of unknown size and digest.
    payload_size             bigint,
    payload_sha256           text,
    CONSTRAINT packages_version UNIQUE (family_id, version)
);

CREATE TABLE computer_groups (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name      text   NOT NULL,
    parent_id bigint CONSTRAINT computer_groups_parent REFERENCES computer_groups (id)
);

CREATE TABLE computer_group_members (
    group_id    bigint NOT NULL
                CONSTRAINT computer_group_members_group REFERENCES computer_groups (id),
    computer_id bigint NOT NULL
                CONSTRAINT computer_group_members_computer REFERENCES computers (id),
    PRIMARY KEY (group_id, computer_id)
);

-- The groups of some computers (a scoped rule snapshot, deleting a computer).
CREATE INDEX computer_group_members_by_computer ON computer_group_members (computer_id);

CREATE TABLE package_groups (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name      text   NOT NULL,
    parent_id bigint CONSTRAINT package_groups_parent REFERENCES package_groups (id)
);

CREATE TABLE package_group_members (
    group_id   bigint NOT NULL
               CONSTRAINT package_group_members_group REFERENCES package_groups (id),
    position   bigint NOT NULL,
    package_id bigint NOT NULL
               CONSTRAINT package_group_members_package REFERENCES packages (id),
    PRIMARY KEY (group_id, position)
);

CREATE TABLE assignments (
    computer_id  bigint NOT NULL CONSTRAINT assignments_computer REFERENCES computers (id),
    package_id   bigint NOT NULL CONSTRAINT assignments_package REFERENCES packages (id),
    installed_at bigint NOT NULL,
    -- The job whose success recorded it (it may be deleted since: no foreign key).
    job_id       bigint,
    PRIMARY KEY (computer_id, package_id)
);

-- The delivery policy columns (priority .. post_action_timeout) are the same in containers and
-- rules.
CREATE TABLE containers (
    id                  bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text    NOT NULL,
    notes               text    NOT NULL,
    enabled             boolean NOT NULL,
    schedule_start      bigint  NOT NULL,
    schedule_end        bigint,
    priority            bigint  NOT NULL,
    sequence_mode       text    NOT NULL,
    ip_ranges           text    NOT NULL,
    time_frames         text    NOT NULL,
    time_zone           text    NOT NULL,
    post_action_timeout bigint,
    wol_wake            boolean NOT NULL,
    wol_shutdown_after  boolean NOT NULL,
    wol_sent_at         bigint,
    self_service        boolean NOT NULL,
    created_at          bigint  NOT NULL
);

CREATE TABLE rules (
    id                  bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text    NOT NULL,
    notes               text    NOT NULL,
    enabled             boolean NOT NULL,
    computer_group_id   bigint  NOT NULL
                        CONSTRAINT rules_computer_group REFERENCES computer_groups (id),
    package_group_id    bigint  NOT NULL
                        CONSTRAINT rules_package_group REFERENCES package_groups (id),
    priority            bigint  NOT NULL,
    sequence_mode       text    NOT NULL,
    ip_ranges           text    NOT NULL,
    time_frames         text    NOT NULL,
    time_zone           text    NOT NULL,
    post_action_timeout bigint,
    created_at          bigint  NOT NULL,
    -- Deleted while it still has jobs: hidden from listings and rule snapshots, removed with its
    -- last job.
    deleting            boolean NOT NULL DEFAULT false
);

-- What the agent runs for a job, stored once per distinct value: a job row holds its id, so a
-- million jobs of one package share one command text.
CREATE TABLE job_snapshots (
    id               bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command          text    NOT NULL,
    success_codes    text    NOT NULL,
    post_action      text    NOT NULL,
    download         boolean NOT NULL,
    upgrade_behavior text    NOT NULL,
    CONSTRAINT job_snapshots_value
        UNIQUE (command, success_codes, post_action, download, upgrade_behavior)
);

CREATE TABLE jobs (
    id                 bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The origin: exactly one of container_id and rule_id.
    container_id       bigint  CONSTRAINT jobs_container REFERENCES containers (id),
    rule_id            bigint  CONSTRAINT jobs_rule REFERENCES rules (id),
    computer_id        bigint  NOT NULL CONSTRAINT jobs_computer REFERENCES computers (id),
    package_id         bigint  NOT NULL CONSTRAINT jobs_package REFERENCES packages (id),
    -- Byte order, as SQLite compares text: rule snapshots are ordered by kind.
    kind               text    COLLATE "C" NOT NULL,
    snapshot_id        bigint  NOT NULL CONSTRAINT jobs_snapshot REFERENCES job_snapshots (id),
    sequence           bigint  NOT NULL,
    state              text    NOT NULL,
    download_progress  bigint,
    return_code        bigint,
    output             text    NOT NULL,
    message            text,
    download_started   bigint,
    execution_started  bigint,
    finished           bigint,
    last_report        bigint,
    -- `pending` (with wol_shutdown_since) or `confirmed`.
    wol_shutdown       text,
    wol_shutdown_since bigint,
    orphaned           boolean NOT NULL,
    attempt            bigint  NOT NULL,
    revision           bigint  NOT NULL,
    CONSTRAINT jobs_one_origin CHECK ((container_id IS NULL) <> (rule_id IS NULL))
);

-- One computer's jobs by state: the planner's pending jobs (one index range scan, in id order
-- within each state) and Failed jobs, a report's jobs of the computer, deleting a computer.
CREATE INDEX jobs_by_computer ON jobs (computer_id, state, id);

-- A container's jobs by state with both instants: housekeeping (does it have pending jobs?),
-- purge, listings, and the container's job summary from the index alone.
CREATE INDEX jobs_by_container ON jobs (container_id, state, execution_started, finished)
    WHERE container_id IS NOT NULL;

-- A rule's jobs: the unique key of rule jobs, and the order rule evaluation merges them in.
CREATE UNIQUE INDEX jobs_by_rule ON jobs (rule_id, computer_id, package_id, kind)
    WHERE rule_id IS NOT NULL;

-- A rule's last finish and first execution start, each read at an end of an index. Both leave
-- out the jobs without the instant, so that inserting a rule's Waiting jobs writes neither.
CREATE INDEX jobs_rule_finished ON jobs (rule_id, finished, execution_started)
    WHERE rule_id IS NOT NULL AND finished IS NOT NULL;
CREATE INDEX jobs_rule_started ON jobs (rule_id, execution_started)
    WHERE rule_id IS NOT NULL AND execution_started IS NOT NULL;

-- Deleted jobs, kept so that a late report still records an installation. The columns of jobs,
-- without foreign keys, and when the job was deleted.
CREATE TABLE tombstones (
    id                 bigint  PRIMARY KEY,
    container_id       bigint,
    rule_id            bigint,
    computer_id        bigint  NOT NULL,
    package_id         bigint  NOT NULL,
    kind               text    COLLATE "C" NOT NULL,
    snapshot_id        bigint  NOT NULL,
    sequence           bigint  NOT NULL,
    state              text    NOT NULL,
    download_progress  bigint,
    return_code        bigint,
    output             text    NOT NULL,
    message            text,
    download_started   bigint,
    execution_started  bigint,
    finished           bigint,
    last_report        bigint,
    wol_shutdown       text,
    wol_shutdown_since bigint,
    orphaned           boolean NOT NULL,
    attempt            bigint  NOT NULL,
    revision           bigint  NOT NULL,
    deleted_at         bigint  NOT NULL
);

-- The purge cut-off and the oldest tombstone.
CREATE INDEX tombstones_by_age ON tombstones (deleted_at);
CREATE INDEX tombstones_by_computer ON tombstones (computer_id);
CREATE INDEX tombstones_by_container ON tombstones (container_id) WHERE container_id IS NOT NULL;
CREATE INDEX tombstones_by_rule ON tombstones (rule_id) WHERE rule_id IS NOT NULL;

-- Statistics of a rule's jobs (counts by state) without reading every job: kept by triggers.
CREATE TABLE rule_job_counts (
    rule_id bigint NOT NULL,
    state   text   NOT NULL,
    count   bigint NOT NULL,
    PRIMARY KEY (rule_id, state)
);

CREATE FUNCTION oco_count_rule_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.rule_id IS NOT NULL THEN
        UPDATE rule_job_counts SET count = count - 1
            WHERE rule_id = OLD.rule_id AND state = OLD.state;
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.rule_id IS NOT NULL THEN
        INSERT INTO rule_job_counts (rule_id, state, count) VALUES (NEW.rule_id, NEW.state, 1)
            ON CONFLICT (rule_id, state) DO UPDATE SET count = rule_job_counts.count + 1;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER rule_job_counted AFTER INSERT ON jobs
    FOR EACH ROW WHEN (NEW.rule_id IS NOT NULL) EXECUTE FUNCTION oco_count_rule_jobs();
CREATE TRIGGER rule_job_uncounted AFTER DELETE ON jobs
    FOR EACH ROW WHEN (OLD.rule_id IS NOT NULL) EXECUTE FUNCTION oco_count_rule_jobs();
CREATE TRIGGER rule_job_recounted AFTER UPDATE OF state ON jobs
    FOR EACH ROW WHEN (OLD.rule_id IS NOT NULL AND OLD.state <> NEW.state)
    EXECUTE FUNCTION oco_count_rule_jobs();

-- A computer's last-seen time is read as the later of `computers.last_seen` and its credentials'
-- `contact_at`, so a hello, which writes the credentials anyway, needs no second write to the
-- computer's row. When a credentials write would lower or clear the contact (a reset of the
-- agent's keys, not a hello), the contact it replaces is kept in `computers.last_seen` first.
CREATE FUNCTION oco_keep_last_contact() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE computers SET last_seen = greatest(coalesce(last_seen, OLD.contact_at), OLD.contact_at)
        WHERE id = OLD.computer_id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER credentials_keep_last_contact BEFORE UPDATE OF contact_at ON credentials
    FOR EACH ROW
    WHEN (OLD.contact_at IS NOT NULL
          AND (NEW.contact_at IS NULL OR NEW.contact_at < OLD.contact_at))
    EXECUTE FUNCTION oco_keep_last_contact();
