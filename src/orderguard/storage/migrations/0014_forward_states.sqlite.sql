CREATE TRIGGER orders_state_forward BEFORE UPDATE OF state ON orders
WHEN NEW.state <> OLD.state AND NOT EXISTS (
    SELECT 1 FROM state_reachable
    WHERE machine = 'order' AND from_state = OLD.state AND to_state = NEW.state)
BEGIN SELECT RAISE(ABORT, 'illegal state move: a stored order never moves backwards on the state machine'); END;
CREATE TRIGGER payment_attempts_state_forward BEFORE UPDATE OF state ON payment_attempts
WHEN NEW.state <> OLD.state AND NOT EXISTS (
    SELECT 1 FROM state_reachable
    WHERE machine = 'attempt' AND from_state = OLD.state AND to_state = NEW.state)
BEGIN SELECT RAISE(ABORT, 'illegal state move: a stored payment attempt never moves backwards on the state machine'); END;
CREATE TRIGGER state_reachable_no_update BEFORE UPDATE ON state_reachable
BEGIN SELECT RAISE(ABORT, 'state_reachable is append-only'); END;
CREATE TRIGGER state_reachable_no_delete BEFORE DELETE ON state_reachable
BEGIN SELECT RAISE(ABORT, 'state_reachable is append-only'); END;
