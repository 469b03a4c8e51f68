"""Alipay (Open Platform, ``gateway.do``, RSA2 in public-key mode): redirect payments."""
