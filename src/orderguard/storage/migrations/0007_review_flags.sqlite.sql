CREATE TRIGGER order_flags_never_deleted BEFORE DELETE ON order_flags
BEGIN SELECT RAISE(ABORT, 'order_flags is append-only'); END;
