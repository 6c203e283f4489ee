-- close_case(p_case_id bigint, p_resolution text, p_note text DEFAULT '')
--     -> jsonb
--
-- Closes a case that is not closed with p_resolution 'fraud', 'not_fraud'
-- or 'withdrawn' and a note (at most 2,000 characters): closed_at now(),
-- closed_by current_actor(). For fraud and not_fraud, in the same database
-- transaction every transaction that has an alert in the case (and is still
-- stored) is reviewed, one row each in `reviews` in one statement (status
-- confirmed_fraud for fraud, false_positive for not_fraud; the case's note;
-- reviewer current_actor()), so the reviews' trigger re-scores what the
-- known fraud changes (reviewed_at is when it became known) and `pgfraud
-- evaluate` counts them as labels. Withdrawn (migration 0101) is for a case
-- none of whose alerts is raised any more (a rule change re-scored them
-- away): nothing is reviewed, so no label is made that no one judged; an
-- alert of it raised again later joins the account's open case. Locks in
-- the order every re-scoring path takes them (the merchants' when a rule
-- reads them, the shared rule-change lock, the account's account_states
-- row), then the case's row: a store on the account waits for the close
-- (its new alerts then open a new case), and of two closes of one case the
-- second waits and then finds it closed.
-- Returns the closed case (_case_json) with "reviewed": the number of
-- transactions reviewed (0 when withdrawn). Errors: PF001 (invalid_input)
-- naming resolution (also: withdrawn while an alert of the case is still
-- raised), note or actor; PF040 (case_not_found) naming case_id; PF041
-- (case_conflict) when the case is already closed.
CREATE OR REPLACE FUNCTION close_case(p_case_id bigint, p_resolution text, p_note text DEFAULT '')
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_before jsonb;
    v_review reviews;
    v_actor text := current_actor();
    v_account_id bigint;
    v_case cases;
    v_reviewed bigint;
    v_raised bigint;
BEGIN
    IF p_resolution IS NULL OR p_resolution NOT IN ('fraud', 'not_fraud', 'withdrawn') THEN
        RAISE EXCEPTION 'resolution must be fraud, not_fraud or withdrawn'
            USING ERRCODE = 'PF001', COLUMN = 'resolution';
    END IF;
    IF length(coalesce(p_note, '')) > 2000 THEN
        RAISE EXCEPTION 'note must be at most 2000 characters' USING ERRCODE = 'PF001', COLUMN = 'note';
    END IF;
    IF length(v_actor) > 200 THEN
        RAISE EXCEPTION 'actor must be at most 200 characters' USING ERRCODE = 'PF001', COLUMN = 'actor';
    END IF;
    SELECT c.account_id INTO v_account_id FROM cases AS c WHERE c.case_id = p_case_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no case %', p_case_id USING ERRCODE = 'PF040', COLUMN = 'case_id';
    END IF;
    IF _merchant_rules_delay() IS NOT NULL THEN
        PERFORM _lock_merchants(ARRAY(
            SELECT t.merchant_id
            FROM case_alerts AS ca
            JOIN transactions AS t ON t.transaction_id = ca.transaction_id
            WHERE ca.account_id = v_account_id AND ca.case_id = p_case_id));
    END IF;
    PERFORM pg_advisory_xact_lock_shared(7231546390112208);
    PERFORM FROM account_states AS a WHERE a.account_id = v_account_id FOR UPDATE;
    SELECT c.* INTO v_case
    FROM cases AS c
    WHERE c.account_id = v_account_id AND c.case_id = p_case_id
    FOR UPDATE;
    IF v_case.status = 'closed' THEN
        RAISE EXCEPTION 'case % is already closed (%)', p_case_id, v_case.resolution
            USING ERRCODE = 'PF041', COLUMN = 'case_id',
                  HINT = 'new alerts on the account open a new case';
    END IF;
    IF p_resolution = 'withdrawn' THEN
        SELECT count(*) INTO v_raised
        FROM case_alerts AS ca
        WHERE ca.account_id = v_account_id AND ca.case_id = p_case_id
          AND EXISTS (
              SELECT FROM alerts AS a
              WHERE a.account_id = ca.account_id
                AND a.transaction_id = ca.transaction_id
                AND a.rule_id = ca.rule_id);
        IF v_raised > 0 THEN
            RAISE EXCEPTION 'case % has % alert(s) still raised: close it as fraud or not_fraud',
                p_case_id, v_raised
                USING ERRCODE = 'PF001', COLUMN = 'resolution',
                      HINT = 'withdrawn is for a case none of whose alerts is raised any more';
        END IF;
    END IF;
    v_before := to_jsonb(v_case);
    UPDATE cases AS c
    SET status = 'closed', resolution = p_resolution, note = coalesce(p_note, ''),
        closed_at = now(), closed_by = v_actor
    WHERE c.account_id = v_case.account_id AND c.case_id = v_case.case_id
    RETURNING c.* INTO v_case;
    PERFORM _audit_instead('cases', 'cases_audit', 'update', 'case', v_case.case_id::text,
                           v_before, to_jsonb(v_case));
    v_reviewed := 0;
    IF p_resolution = 'withdrawn' THEN
        RETURN _case_json(v_case) || jsonb_build_object('reviewed', v_reviewed);
    END IF;
    FOR v_review IN
        INSERT INTO reviews AS r (transaction_id, account_id, status, note, reviewer)
        SELECT t.transaction_id, t.account_id,
               CASE p_resolution WHEN 'fraud' THEN 'confirmed_fraud' ELSE 'false_positive' END,
               coalesce(p_note, ''), v_actor
        FROM transactions AS t
        WHERE t.account_id = v_account_id
          AND t.transaction_id IN (
              SELECT ca.transaction_id FROM case_alerts AS ca
              WHERE ca.account_id = v_account_id AND ca.case_id = p_case_id)
        ORDER BY t.ts, t.transaction_id
        RETURNING r.*
    LOOP
        v_reviewed := v_reviewed + 1;
        PERFORM _audit_instead('reviews', 'reviews_audit', 'insert', 'review',
                               v_review.transaction_id::text, NULL, to_jsonb(v_review));
    END LOOP;
    RETURN _case_json(v_case) || jsonb_build_object('reviewed', v_reviewed);
END;
$$;

COMMENT ON FUNCTION close_case(bigint, text, text) IS
    'Closes a case with resolution fraud or not_fraud and a note, reviewing its transactions (confirmed_fraud / false_positive) by current_actor(), or withdrawn (no alert still raised; nothing reviewed); PF001 naming resolution or note, PF040 no such case, PF041 already closed.';

REVOKE ALL ON FUNCTION close_case(bigint, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION close_case(bigint, text, text) TO pgfraud_app;
