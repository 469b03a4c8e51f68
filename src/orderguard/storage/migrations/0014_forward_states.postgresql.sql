CREATE FUNCTION orderguard_state_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state <> OLD.state AND NOT EXISTS (
        SELECT 1 FROM state_reachable
        WHERE machine = TG_ARGV[0] AND from_state = OLD.state AND to_state = NEW.state
    ) THEN
        RAISE EXCEPTION 'illegal state move: a stored % never moves backwards on the state machine (% -> %)',
            TG_ARGV[1], OLD.state, NEW.state USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER orders_state_forward BEFORE UPDATE OF state ON orders
    FOR EACH ROW EXECUTE FUNCTION orderguard_state_forward('order', 'order');
CREATE TRIGGER payment_attempts_state_forward BEFORE UPDATE OF state ON payment_attempts
    FOR EACH ROW EXECUTE FUNCTION orderguard_state_forward('attempt', 'payment attempt');
CREATE TRIGGER state_reachable_append_only BEFORE UPDATE OR DELETE ON state_reachable
    FOR EACH ROW EXECUTE FUNCTION orderguard_append_only();
