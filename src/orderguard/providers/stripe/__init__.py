"""Stripe: the adapter, its mapping, errors, amount rules, webhook signing, test methods and
the Stripe-compatible sandbox."""
