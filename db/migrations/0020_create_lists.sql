-- 0020: allow and block lists (issue 17).
--
--   lists / list_entries: named lists of accounts or merchants, kind allow
--       or block. Entries are never deleted: one is in force from added_at
--       until removed_at or expires_at, so what applied at any time can be
--       read again.
-- Small shared tables (reference tables on Citus), written only by
-- create_list, add_list_entry and remove_list_entry (SECURITY DEFINER).

CREATE TABLE lists (
    list_name text NOT NULL,
    subject text NOT NULL,
    kind text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT lists_pkey PRIMARY KEY (list_name),
    CONSTRAINT lists_list_name_check CHECK (list_name ~ '^[a-z][a-z0-9_]{0,62}$'),
    CONSTRAINT lists_subject_check CHECK (subject IN ('account', 'merchant')),
    CONSTRAINT lists_kind_check CHECK (kind IN ('allow', 'block')),
    CONSTRAINT lists_description_check CHECK (length(description) <= 2000)
);

COMMENT ON TABLE lists IS
    'Named allow/block lists of accounts or merchants (block forces decline, allow forces approve).';

CREATE TABLE list_entries (
    entry_id bigint GENERATED ALWAYS AS IDENTITY,
    list_name text NOT NULL,
    value bigint NOT NULL,
    reason text NOT NULL,
    added_by text NOT NULL,
    added_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz,
    removed_by text,
    removed_at timestamptz,
    CONSTRAINT list_entries_pkey PRIMARY KEY (entry_id),
    CONSTRAINT list_entries_list_name_fkey FOREIGN KEY (list_name) REFERENCES lists (list_name),
    CONSTRAINT list_entries_value_check CHECK (value >= 0),
    CONSTRAINT list_entries_reason_check CHECK (length(reason) BETWEEN 1 AND 2000),
    CONSTRAINT list_entries_expires_at_check CHECK (expires_at > added_at),
    CONSTRAINT list_entries_removed_at_check CHECK (removed_at >= added_at)
);

-- What applies to a value at a time: the entries for it, by list.
CREATE INDEX list_entries_value_idx ON list_entries (value, list_name, added_at);
-- At most one entry in force per value and list (until removed; an expired
-- one is replaced by adding again, which removes it first).
CREATE UNIQUE INDEX list_entries_live_key ON list_entries (list_name, value) WHERE removed_at IS NULL;

COMMENT ON TABLE list_entries IS
    'Entries of lists, never deleted: in force from added_at until removed_at or expires_at.';

GRANT SELECT ON lists, list_entries TO pgfraud_app, pgfraud_readonly;
