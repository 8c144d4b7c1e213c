-- Admin API tokens: a unique name, what the token may do, and the SHA-256 digest of its secret
-- as 64 hexadecimal digits (never the secret itself), by which a request's token is found.
CREATE TABLE admin_tokens (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text   NOT NULL CONSTRAINT admin_tokens_name UNIQUE,
    access     text   NOT NULL CHECK (access IN ('full', 'read-only')),
    digest     text   NOT NULL CONSTRAINT admin_tokens_digest UNIQUE,
    created_at bigint NOT NULL
);
