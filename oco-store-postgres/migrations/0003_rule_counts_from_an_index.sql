-- Schema version 3: a rule's job counts by state come from an index, no longer from counters
-- kept by triggers.
--
-- The counters (`rule_job_counts`, one row per rule and state, kept by row-level triggers on
-- `jobs`) made every write of a rule's job also update its rule's counter row. In PostgreSQL
-- that row is a new version at each update: within one transaction that inserts many jobs of
-- one rule (a rule evaluated over a large group), each insert's conflict check walks the versions
-- the previous ones left, so n jobs cost O(n²), hours for a million; and every report of every
-- agent on a rule's jobs wrote the same few rows, which serializable transactions of several
-- processes then conflict on. Counting the rule's jobs by state in this index reads only the
-- index (as a container's summary does), at the time an administrator asks for statistics.

DROP TRIGGER rule_job_counted ON jobs;
DROP TRIGGER rule_job_uncounted ON jobs;
DROP TRIGGER rule_job_recounted ON jobs;
DROP FUNCTION oco_count_rule_jobs();
DROP TABLE rule_job_counts;

CREATE INDEX jobs_rule_states ON jobs (rule_id, state) WHERE rule_id IS NOT NULL;
