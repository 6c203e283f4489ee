-- 0026: named API tokens (issue 18, "Who did what").
--
--   api_tokens: one row per token an analyst or a service holds: its name
--       (recorded as the actor of every write made with it), its role
--       (analyst: reads, backtests, reviews, cases; owner: also rules,
--       policy, lists and tokens), the SHA-256 digest of its secret (never
--       the secret: tokens are random 256-bit secrets, so a plain digest is
--       enough), who made it and when, and when it was revoked. A name is in
--       use by at most one token that is not revoked; a revoked token stays
--       (the audit trail names it), and its name may be given to a new one.
-- Written only by add_api_token and revoke_api_token (SECURITY DEFINER, the
-- owner's); the service reads the digests through get_api_token_digests.
-- The name "default" is the single PGFRAUD_API_TOKEN's, never a row here.

CREATE TABLE api_tokens (
    token_id bigint GENERATED ALWAYS AS IDENTITY,
    token_name text NOT NULL,
    role text NOT NULL,
    secret_sha256 bytea NOT NULL,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_by text,
    revoked_at timestamptz,
    CONSTRAINT api_tokens_pkey PRIMARY KEY (token_id),
    CONSTRAINT api_tokens_token_name_check
        CHECK (token_name ~ '^[a-z][a-z0-9_.-]{0,62}$' AND token_name <> 'default'),
    CONSTRAINT api_tokens_role_check CHECK (role IN ('analyst', 'owner')),
    CONSTRAINT api_tokens_secret_sha256_check CHECK (octet_length(secret_sha256) = 32),
    CONSTRAINT api_tokens_revoked_at_check CHECK (revoked_at >= created_at),
    CONSTRAINT api_tokens_secret_sha256_key UNIQUE (secret_sha256)
);

CREATE UNIQUE INDEX api_tokens_live_name_key ON api_tokens (token_name) WHERE revoked_at IS NULL;

COMMENT ON TABLE api_tokens IS
    'Named API tokens: name, role (analyst or owner), the SHA-256 digest of the secret, created and revoked.';

-- Nobody reads the digests directly but the owner: the service through
-- get_api_token_digests, everyone else through get_api_tokens (no digests).
REVOKE ALL ON api_tokens FROM PUBLIC;
