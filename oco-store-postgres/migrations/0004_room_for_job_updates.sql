-- Schema version 4: room in the job table's pages for updates in place.
--
-- Every agent report updates its job (state, output, times, revision). PostgreSQL writes an
-- updated row as a new version; when the version fits in the same page and no indexed column
-- changed (a progress report: output and times), it is a heap-only update that touches no index.
-- Pages filled to the brim, as a bulk of inserted jobs leaves them, make every update move the
-- row to another page and write an entry in each of the job table's indexes. Pages of new and
-- rewritten rows are now filled to 80 %.
ALTER TABLE jobs SET (fillfactor = 80);
