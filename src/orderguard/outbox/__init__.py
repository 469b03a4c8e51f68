"""The outbox relay and its sinks: shopper email, merchant webhooks, the event stream."""
