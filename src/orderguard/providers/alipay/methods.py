"""The payment methods Alipay takes, each an Open Platform product.

There are no test cards: what the shopper does happens at Alipay's cashier (or, in the
sandbox, through its shopper routes), so the same method pays or is abandoned.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Product:
    """One way to pay: the API method that opens the cashier and its product code."""

    #: The API method whose signed URL opens the cashier.
    api_method: str
    #: ``product_code`` in ``biz_content``.
    product_code: str


#: Desktop: the shopper's browser is sent to the cashier page (PC website payment).
PAGE = "alipay_page"
#: Mobile web: the cashier page for phones, which may hand over to the Alipay app.
WAP = "alipay_wap"

PRODUCTS: dict[str, Product] = {
    PAGE: Product("alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"),
    WAP: Product("alipay.trade.wap.pay", "QUICK_WAP_WAY"),
}

#: The method prefix the profile routes here.
METHODS = ("alipay_",)
#: Offered on the shopper's page in test mode.
TEST_METHODS = (PAGE, WAP)
