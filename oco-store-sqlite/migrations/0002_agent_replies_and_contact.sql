-- Reply timestamps are kept per agent instead of as one server-wide reservation, and each
-- computer keeps its agent's last accepted hello: when, from which address, which version.
ALTER TABLE credentials ADD COLUMN last_reply REAL;
ALTER TABLE credentials ADD COLUMN contact_at INTEGER;
ALTER TABLE credentials ADD COLUMN contact_address TEXT;
ALTER TABLE credentials ADD COLUMN agent_version TEXT;

-- Every reply sent before this migration is at most the server-wide reservation: each agent's
-- replies go on above it.
UPDATE credentials
   SET last_reply = (SELECT last_response_timestamp FROM server_state WHERE id = 1);

ALTER TABLE server_state DROP COLUMN last_response_timestamp;
