"""The payment methods WeChat Pay takes here, and what the shopper does with each.

There are no test methods of the card kind: in the sandbox the simulated shopper scans
the QR code (Native) or opens the H5 page, then pays or abandons (its admin routes).
"""

from __future__ import annotations

#: Native: WeChat Pay answers a ``code_url`` the shop shows as a QR code to scan.
NATIVE = "wechatpay_native"
#: H5: WeChat Pay answers an ``h5_url`` the shopper's mobile browser is redirected to.
H5 = "wechatpay_h5"
#: What every Native ``code_url`` starts with (``weixin://wxpay/bizpayurl?pr=...``).
CODE_PREFIX = "weixin://wxpay/"
#: Every method routed to WeChat Pay (the profile takes them by this prefix).
PREFIX = "wechatpay_"

#: Method -> (API path of the order, the answer's URL field, the next action's kind).
ORDERS: dict[str, tuple[str, str, str]] = {
    NATIVE: ("/v3/pay/transactions/native", "code_url", "qr"),
    H5: ("/v3/pay/transactions/h5", "h5_url", "redirect"),
}
