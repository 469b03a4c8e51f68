CREATE TRIGGER order_flags_never_deleted BEFORE DELETE ON order_flags
    FOR EACH ROW EXECUTE FUNCTION orderguard_append_only();
