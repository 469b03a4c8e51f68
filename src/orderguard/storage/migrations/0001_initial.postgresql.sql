CREATE FUNCTION orderguard_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER timeline_append_only BEFORE UPDATE OR DELETE ON timeline
    FOR EACH ROW EXECUTE FUNCTION orderguard_append_only();
CREATE TRIGGER orders_never_deleted BEFORE DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION orderguard_append_only();
