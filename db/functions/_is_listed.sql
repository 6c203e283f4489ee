-- _is_listed(p_list_name text, p_value bigint, p_at timestamptz) -> boolean
--
-- Whether p_value had an entry in force on list p_list_name at p_at
-- (added_at <= p_at, not removed by then, not expired by then). What users'
-- rules call for account_in_list('…') / merchant_in_list('…')
-- (_bind_list_calls), with p_at the transaction's own time, so a rule sees
-- a list as it was then (event time; adding an entry now never changes how
-- an earlier transaction was judged). NULL p_value: false. Raises nothing.
CREATE OR REPLACE FUNCTION _is_listed(p_list_name text, p_value bigint, p_at timestamptz)
RETURNS boolean
LANGUAGE sql
STABLE
AS $$
    SELECT EXISTS (
        SELECT FROM list_entries AS e
        WHERE e.value = p_value
          AND e.list_name = p_list_name
          AND e.added_at <= p_at
          AND (e.removed_at IS NULL OR e.removed_at > p_at)
          AND (e.expires_at IS NULL OR e.expires_at > p_at)
    );
$$;

COMMENT ON FUNCTION _is_listed(text, bigint, timestamptz) IS
    'Whether a value was on a list (entry in force) at a time; what account_in_list/merchant_in_list in users'' rules compile to.';

REVOKE ALL ON FUNCTION _is_listed(text, bigint, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION _is_listed(text, bigint, timestamptz) TO pgfraud_app, pgfraud_readonly;
