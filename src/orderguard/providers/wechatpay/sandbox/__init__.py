"""A WeChat Pay API v3 sandbox: same paths, signatures, encrypted notifications, error codes
and trade states; a simulated shopper (scan, open, pay, abandon) and a ``/ledger`` oracle.

Serve it with :func:`serve` (``python -m orderguard.providers.wechatpay.sandbox``) or in a
thread with :func:`run_sandbox`; :func:`create_app` is the ASGI app itself.
"""
