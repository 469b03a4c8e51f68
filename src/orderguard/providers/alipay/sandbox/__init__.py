"""An Alipay-compatible sandbox: ``gateway.do`` with the Open Platform's methods, RSA2
signatures both ways, trade states and error codes, a simulated shopper, notifications
retried until ``success``, and a ``/ledger`` for tests.

``python -m orderguard.providers.alipay.sandbox --data-dir DIR [--print-config]``.
"""
