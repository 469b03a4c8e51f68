-- The payment method an order waits to be charged with while no provider is available.
ALTER TABLE orders ADD COLUMN payment_method TEXT;
