-- A package's payload is stored with its length and SHA-256 digest (64 lowercase hexadecimal
-- digits), computed by the server as it writes the file. A package that has a payload stored
-- before this migration keeps `has_payload = 1` with both columns NULL: its payload is shown as
-- of unknown size and digest until it is uploaded again.
ALTER TABLE packages ADD COLUMN payload_size INTEGER;
ALTER TABLE packages ADD COLUMN payload_sha256 TEXT;
