-- Whether an order was taken live (a provider account that moves real money) or in test
-- mode (the sandbox, a test key). Orders from before this column were test or live alike;
-- they are marked test mode, as nothing recorded otherwise.
ALTER TABLE orders ADD COLUMN livemode BOOLEAN NOT NULL DEFAULT FALSE;
