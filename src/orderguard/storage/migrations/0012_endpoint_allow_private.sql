-- Whether a merchant endpoint may be reached on a private, loopback or link-local address
-- (`orderguard endpoints add --allow-private`); every other endpoint must resolve to public
-- addresses, checked at add and again before each delivery.
ALTER TABLE webhook_endpoints ADD COLUMN allow_private BOOLEAN NOT NULL DEFAULT FALSE;
