-- Statistics of a rule's or a container's jobs (counts by state, first execution start, last
-- finish) without reading every job.
--
-- A rule's jobs (up to millions, rarely all changing at once): counts kept by triggers, and the
-- instants read at an end of an index each. `jobs_rule_finished` also answers the last finish
-- of the jobs that started, walking back from the last finish to the first job that started.
-- Both indexes leave out the jobs without the instant, so that inserting a rule's Waiting jobs
-- (what a computer joining a rule does) writes neither.
CREATE TABLE rule_job_counts (
    rule_id INTEGER NOT NULL,
    state   TEXT    NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (rule_id, state)
) WITHOUT ROWID;

INSERT INTO rule_job_counts (rule_id, state, count)
    SELECT rule_id, state, COUNT(*) FROM jobs WHERE rule_id IS NOT NULL GROUP BY rule_id, state;

CREATE TRIGGER rule_job_counted AFTER INSERT ON jobs WHEN NEW.rule_id IS NOT NULL BEGIN
    INSERT INTO rule_job_counts (rule_id, state, count) VALUES (NEW.rule_id, NEW.state, 1)
        ON CONFLICT (rule_id, state) DO UPDATE SET count = count + 1;
END;

CREATE TRIGGER rule_job_uncounted AFTER DELETE ON jobs WHEN OLD.rule_id IS NOT NULL BEGIN
    UPDATE rule_job_counts SET count = count - 1
        WHERE rule_id = OLD.rule_id AND state = OLD.state;
END;

CREATE TRIGGER rule_job_recounted AFTER UPDATE OF state ON jobs
    WHEN OLD.rule_id IS NOT NULL AND OLD.state <> NEW.state BEGIN
    UPDATE rule_job_counts SET count = count - 1
        WHERE rule_id = OLD.rule_id AND state = OLD.state;
    INSERT INTO rule_job_counts (rule_id, state, count) VALUES (NEW.rule_id, NEW.state, 1)
        ON CONFLICT (rule_id, state) DO UPDATE SET count = count + 1;
END;

CREATE INDEX jobs_rule_finished ON jobs (rule_id, finished, execution_started)
    WHERE rule_id IS NOT NULL AND finished IS NOT NULL;
CREATE INDEX jobs_rule_started ON jobs (rule_id, execution_started)
    WHERE rule_id IS NOT NULL AND execution_started IS NOT NULL;

-- A container's jobs (a deploy writes up to a million at once, so no trigger and one index):
-- one aggregate by state over the container's index, which gains the two instants so that the
-- aggregate reads no job row. Its name and leading columns stay, for the queries that name it.
DROP INDEX jobs_by_container;
CREATE INDEX jobs_by_container ON jobs (container_id, state, execution_started, finished)
    WHERE container_id IS NOT NULL;
