-- Schema version 2: every committed write that changes what a computer's hello hands out sends a
-- notification on the channel `oco_touched:<schema>`, so that server processes sharing the
-- database can forget what they cached about it (oco-store-postgres's `Listener`). The functions
-- keep the search path of the migration, so that a write by hand from a session with another
-- search path notifies too.
--
-- A notification's payload is `<writer> <kind> <ids>`: the writing session's `oco.writer`
-- setting (empty when unset: a write by hand), then `c` (the jobs of these computers), `k`
-- (these containers) or `r` (these rules) and comma-separated ids; or `<writer> *`: anything may
-- have changed (a statement touched more ids than it is worth listing). Notifications are sent
-- when the transaction commits, and not at all when it rolls back.
--
-- What is notified follows the hello cache's rules: a job inserted, updated or deleted touches
-- its computer; a container or rule updated or deleted touches that origin; a computer updated
-- touches its jobs, except when only its last-seen time or its assignments' revision changed (the
-- agent path writes the former for every polling computer). Credentials, assignments, packages
-- and groups are in no cached hello.

-- The channel of this schema's notifications (a channel name has at most 63 bytes).
CREATE FUNCTION oco_touched_channel() RETURNS text
LANGUAGE sql STABLE SET search_path FROM CURRENT
AS $$ SELECT 'oco_touched:' || left(current_schema(), 51) $$;

CREATE FUNCTION oco_notify(kind text, ids bigint[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    -- One channel per schema: stores in other schemas of the database are not concerned.
    channel text := oco_touched_channel();
    writer  text := coalesce(current_setting('oco.writer', true), '');
    total  int  := coalesce(cardinality(ids), 0);
    chunk  constant int := 300;   -- 300 ids of up to 20 characters: within the 8000-byte payload
    first  int  := 1;
BEGIN
    IF total = 0 THEN
        RETURN;
    END IF;
    -- More than this, and one notification saying "everything" costs the listeners less than
    -- forgetting the ids one by one.
    IF total > 20 * chunk THEN
        PERFORM pg_notify(channel, writer || ' *');
        RETURN;
    END IF;
    WHILE first <= total LOOP
        PERFORM pg_notify(channel,
            writer || ' ' || kind || ' ' || array_to_string(ids[first:first + chunk - 1], ','));
        first := first + chunk;
    END LOOP;
END
$$;

CREATE FUNCTION oco_jobs_touched() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM oco_notify('c', ARRAY(SELECT DISTINCT computer_id FROM old_rows));
    ELSE
        PERFORM oco_notify('c', ARRAY(SELECT DISTINCT computer_id FROM new_rows));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_touched_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION oco_jobs_touched();
CREATE TRIGGER jobs_touched_update AFTER UPDATE ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION oco_jobs_touched();
CREATE TRIGGER jobs_touched_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION oco_jobs_touched();

CREATE FUNCTION oco_origins_touched() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    -- TG_ARGV[0]: `k` for containers, `r` for rules.
    PERFORM oco_notify(TG_ARGV[0], ARRAY(SELECT id FROM old_rows));
    RETURN NULL;
END
$$;

CREATE TRIGGER containers_touched_update AFTER UPDATE ON containers
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION oco_origins_touched('k');
CREATE TRIGGER containers_touched_delete AFTER DELETE ON containers
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION oco_origins_touched('k');
CREATE TRIGGER rules_touched_update AFTER UPDATE ON rules
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION oco_origins_touched('r');
CREATE TRIGGER rules_touched_delete AFTER DELETE ON rules
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION oco_origins_touched('r');

CREATE FUNCTION oco_computers_touched() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM oco_notify('c', ARRAY(SELECT id FROM old_rows));
    ELSE
        PERFORM oco_notify('c', ARRAY(
            SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE to_jsonb(n) - ARRAY['last_seen', 'assignment_revision']
                  IS DISTINCT FROM to_jsonb(o) - ARRAY['last_seen', 'assignment_revision']));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER computers_touched_update AFTER UPDATE ON computers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION oco_computers_touched();
CREATE TRIGGER computers_touched_delete AFTER DELETE ON computers
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION oco_computers_touched();
