-- A group of bookings is committed as one statement (`store::group`): its reservations, their
-- `Idempotency-Key` answers, their messages and their events. A booking whose key turns out
-- taken by another request (one that is not a booking) must leave nothing behind, and a
-- statement cannot take back a row it inserted: it fails instead, through this function, with
-- its own SQLSTATE, and the writer finds the taken keys and writes the group again without
-- those bookings.
CREATE FUNCTION parkflow_key_taken(user_id text, idem_key text) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the Idempotency-Key % of user % is taken', idem_key, user_id
        USING ERRCODE = 'PF409';
END
$$;
