"""``python -m orderguard.providers.alipay.sandbox``."""

from orderguard.providers.alipay.sandbox.server import main

main()
