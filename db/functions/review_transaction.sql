-- review_transaction(p_transaction_id bigint, p_status text, p_note text,
--                    p_reviewer text) -> reviews
--
-- An analyst's decision on a stored transaction: p_status 'confirmed_fraud'
-- or 'false_positive', with a note (at most 2,000 characters) and who made it
-- (p_reviewer, 1..200 characters; NULL: current_actor(), the pgfraud.actor
-- setting that the service sets from the caller's token name and the CLI
-- from --actor, else the database login). Kept as a new
-- row of `reviews` with the time; the latest review of a transaction is its
-- decision, counted as a label by evaluate_rules. Reviews live beside alerts,
-- so re-scoring never changes them. Returns the stored review.
-- Errors: PF005 (transaction_not_found) when no such transaction is stored;
-- PF001 (invalid_input) for another status or an over-long note or reviewer,
-- naming the field.
CREATE OR REPLACE FUNCTION review_transaction(
    p_transaction_id bigint,
    p_status text,
    p_note text DEFAULT '',
    p_reviewer text DEFAULT NULL
)
RETURNS reviews
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_account_id bigint;
    v_review reviews;
    v_reviewer text := coalesce(p_reviewer, current_actor());
BEGIN
    IF p_status IS NULL OR p_status NOT IN ('confirmed_fraud', 'false_positive') THEN
        RAISE EXCEPTION 'status must be confirmed_fraud or false_positive'
            USING ERRCODE = 'PF001', COLUMN = 'status';
    END IF;
    IF length(coalesce(p_note, '')) > 2000 THEN
        RAISE EXCEPTION 'note must be at most 2000 characters' USING ERRCODE = 'PF001', COLUMN = 'note';
    END IF;
    IF length(v_reviewer) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'reviewer must be 1 to 200 characters' USING ERRCODE = 'PF001', COLUMN = 'reviewer';
    END IF;
    SELECT t.account_id INTO v_account_id FROM transactions AS t WHERE t.transaction_id = p_transaction_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'transaction % is not stored', p_transaction_id
            USING ERRCODE = 'PF005', COLUMN = 'transaction_id';
    END IF;
    INSERT INTO reviews AS r (transaction_id, account_id, status, note, reviewer)
    VALUES (p_transaction_id, v_account_id, p_status, coalesce(p_note, ''), v_reviewer)
    RETURNING r.* INTO v_review;
    -- On Citus the audit trigger cannot run on the review's shard (it is off:
    -- pgfraud db distribute); the entry it would write is written here.
    PERFORM _audit_instead('reviews', 'reviews_audit', 'insert', 'review',
                           v_review.transaction_id::text, NULL, to_jsonb(v_review));
    RETURN v_review;
END;
$$;

COMMENT ON FUNCTION review_transaction(bigint, text, text, text) IS
    'Records an analyst''s decision (confirmed_fraud or false_positive, note, reviewer) on a stored transaction; PF005 if it is not stored, PF001 for a bad status, note or reviewer.';

REVOKE ALL ON FUNCTION review_transaction(bigint, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION review_transaction(bigint, text, text, text) TO pgfraud_app;
