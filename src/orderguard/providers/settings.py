"""Every registered provider's settings in one class, the base of
``orderguard.config.Settings``.

A module of its own so that the configuration imports only the providers' settings classes
(leaves), never the registry and what it reaches. Adding a provider adds its settings
class to :class:`ProviderSettings`' bases (see ``docs/adding-a-provider.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

from orderguard.providers.alipay.settings import AlipaySettings
from orderguard.providers.stripe.settings import StripeSettings
from orderguard.providers.wechatpay.settings import WechatPaySettings


@dataclass(frozen=True)
class ProviderSettings(StripeSettings, AlipaySettings, WechatPaySettings):
    """Every registered provider's settings (``orderguard.config.Settings`` extends it)."""
