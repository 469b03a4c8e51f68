CREATE TRIGGER refunds_never_deleted BEFORE DELETE ON refunds
    FOR EACH ROW EXECUTE FUNCTION orderguard_append_only();
