"""The support console ``/console``: log-in, queues, search, one order, actions."""
