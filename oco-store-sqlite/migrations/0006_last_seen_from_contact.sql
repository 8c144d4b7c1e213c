-- A computer's last-seen time is read as the later of `computers.last_seen` and its credentials'
-- `contact_at`, so a hello, which writes the credentials anyway, needs no second write to the
-- computer's row. When a credentials write would lower or clear the contact (a reset of the
-- agent's keys, not a hello), the contact it replaces is kept in `computers.last_seen` first.
CREATE TRIGGER credentials_keep_last_contact
BEFORE UPDATE OF contact_at ON credentials
WHEN OLD.contact_at IS NOT NULL AND (NEW.contact_at IS NULL OR NEW.contact_at < OLD.contact_at)
BEGIN
    UPDATE computers SET last_seen = max(coalesce(last_seen, OLD.contact_at), OLD.contact_at)
    WHERE id = OLD.computer_id;
END;
