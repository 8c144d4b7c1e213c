-- Admin API tokens: a unique name, what the token may do, and the SHA-256 digest of its secret
-- as 64 hexadecimal digits (never the secret itself), by which a request's token is found.
CREATE TABLE admin_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    access     TEXT    NOT NULL CHECK (access IN ('full', 'read-only')),
    digest     TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
