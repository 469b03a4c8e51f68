# ruff: noqa: RUF001 -- Chinese text uses full-width punctuation on purpose
"""Every word a person reads, in English and Simplified Chinese: the one translation catalog.

The shopper's page and the console (``page.``, ``state.``, ``next.``, ``why.``,
``console.``, ...), the shop's checkout script (``checkout.``, and the page's state,
next-step and decline words, copied into ``clients/js`` by its ``scripts/texts.py``), the
API's problem texts (``amount.``) and the settlement reports (``report.``) read their words
here; the e-mails' locales are :data:`LANGUAGES` too (their
words are the templates in ``outbox/templates/<language>/``, which a shop may replace).
Keys are stable and namespaced by who shows them; :func:`translate` falls back to English,
and a test checks that every key has every language. Standard library only, so every layer
may read it.
"""

from __future__ import annotations

from typing import Any

#: The languages orderguard speaks, as :func:`locale` names them.
LANGUAGES: dict[str, str] = {"en": "English", "zh-CN": "简体中文"}

#: key -> language -> text (``{name}`` placeholders are filled by :func:`translate`).
CATALOG: dict[str, dict[str, str]] = {
    # test mode: the shopper's page of a test order, every console page of a test deployment
    "mode.test": {
        "en": "TEST MODE — no money moves",
        "zh-CN": "测试模式 — 不会产生真实扣款",
    },
    # the shopper's page
    "page.title": {"en": "Your order {id}", "zh-CN": "您的订单 {id}"},
    "page.language": {"en": "Language", "zh-CN": "语言"},
    "page.status": {"en": "Status", "zh-CN": "状态"},
    "page.next": {"en": "What happens next", "zh-CN": "接下来"},
    "page.items": {"en": "Your items", "zh-CN": "您的商品"},
    "page.item": {"en": "Item", "zh-CN": "商品"},
    "page.quantity": {"en": "Quantity", "zh-CN": "数量"},
    "page.amount": {"en": "Amount", "zh-CN": "金额"},
    "page.total": {"en": "Total", "zh-CN": "合计"},
    "page.history": {"en": "History", "zh-CN": "记录"},
    "page.updated": {"en": "Updated {at}", "zh-CN": "更新于 {at}"},
    "page.refreshing": {
        "en": "This page updates by itself.",
        "zh-CN": "本页面会自动更新。",
    },
    "page.support": {"en": "Need help?", "zh-CN": "需要帮助？"},
    "page.support_contact": {
        "en": "Contact the shop's support: {contact}",
        "zh-CN": "联系商店客服：{contact}",
    },
    "page.support_none": {
        "en": "Use the form below and the shop's support will look at your order.",
        "zh-CN": "请使用下面的表单，商店客服会查看您的订单。",
    },
    "page.report": {"en": "Report a problem", "zh-CN": "报告问题"},
    "page.report_label": {"en": "What went wrong?", "zh-CN": "出了什么问题？"},
    "page.report_send": {"en": "Send to support", "zh-CN": "发送给客服"},
    "page.report_sent": {
        "en": "Thank you. Support will look at your order.",
        "zh-CN": "谢谢。客服会查看您的订单。",
    },
    "page.report_empty": {
        "en": "Please describe the problem.",
        "zh-CN": "请描述问题。",
    },
    "page.report_later": {
        "en": "Thank you, support already has your report on this order. "
        "You can send another one later.",
        "zh-CN": "谢谢，客服已经收到您对此订单的报告。您可以稍后再发送。",
    },
    "page.pay_again": {"en": "Pay with another method", "zh-CN": "使用其他支付方式"},
    "page.pay_method": {"en": "Payment method", "zh-CN": "支付方式"},
    "page.pay_again_shop": {
        "en": "Return to the shop to choose another payment method for this order.",
        "zh-CN": "请返回商店，为此订单选择其他支付方式。",
    },
    "page.pay_refused": {
        "en": "This order cannot be paid again now: {why}",
        "zh-CN": "此订单现在无法再次支付：{why}",
    },
    "page.pay_unavailable": {
        "en": "The payment service is busy. Nothing was charged; please try again in a minute.",
        "zh-CN": "支付服务繁忙。未扣款；请一分钟后再试。",
    },
    "page.authenticate": {"en": "Confirm the payment with your bank", "zh-CN": "向银行确认付款"},
    "page.open_wallet": {"en": "Open {wallet} to pay", "zh-CN": "打开{wallet}付款"},
    "page.pay_by": {
        "en": "You can pay until {at}; after that the order is cancelled.",
        "zh-CN": "请在 {at} 之前付款；逾期订单将被取消。",
    },
    "page.qr_label": {
        "en": "QR code to scan with {wallet}",
        "zh-CN": "用{wallet}扫描的二维码",
    },
    "page.refused": {
        "en": "The form expired. Please reload the page and try again.",
        "zh-CN": "表单已过期。请刷新页面后重试。",
    },
    "page.not_found": {"en": "Order not found", "zh-CN": "未找到订单"},
    "page.not_found_text": {
        "en": "Check the link in your confirmation email.",
        "zh-CN": "请检查确认邮件中的链接。",
    },
    "page.flagged": {
        "en": "Support has been asked to look at this order.",
        "zh-CN": "已请客服查看此订单。",
    },
    # the shop's checkout page, through the checkout script (clients/js): before the
    # order is answered
    "checkout.sending": {"en": "Placing your order…", "zh-CN": "正在提交订单…"},
    "checkout.offline": {
        "en": "You are offline. Your order is kept and is sent once you are back online; "
        "you will not be charged twice.",
        "zh-CN": "您已离线。您的订单已保留，恢复联网后会自动提交；您不会被扣款两次。",
    },
    "checkout.retrying": {
        "en": "The connection is slow. We are sending your order again; "
        "you will not be charged twice.",
        "zh-CN": "网络连接较慢。我们正在重新提交您的订单；您不会被扣款两次。",
    },
    "method.pm_card_visa": {"en": "Test card: Visa", "zh-CN": "测试卡：Visa"},
    "method.pm_card_chargeDeclined": {
        "en": "Test card: always declined",
        "zh-CN": "测试卡：总被拒绝",
    },
    "method.pm_card_authenticationRequired": {
        "en": "Test card: needs bank confirmation",
        "zh-CN": "测试卡：需要银行确认",
    },
    "method.alipay_page": {"en": "Alipay (computer)", "zh-CN": "支付宝（电脑网站）"},
    "method.alipay_wap": {"en": "Alipay (phone browser)", "zh-CN": "支付宝（手机网站）"},
    # wallets, by payment method: their names, and how to scan a method's code
    "wallet.alipay_page": {"en": "Alipay", "zh-CN": "支付宝"},
    "wallet.alipay_wap": {"en": "Alipay", "zh-CN": "支付宝"},
    "wallet.wechatpay_native": {"en": "WeChat", "zh-CN": "微信"},
    "wallet.wechatpay_h5": {"en": "WeChat Pay", "zh-CN": "微信支付"},
    "scan.wechatpay_native": {
        "en": "Open WeChat and scan this QR code (Scan, in WeChat's + menu), then confirm "
        "the payment in WeChat. Nothing is charged until you confirm. Already paid? "
        "Please do not pay again: this page updates by itself once WeChat Pay confirms.",
        "zh-CN": "请使用微信扫一扫扫描此二维码，然后在微信中确认付款。在您确认之前不会扣款。"
        "已经付款？请不要重复付款：微信支付确认后本页面会自动更新。",
    },
    "scan.any": {
        "en": "Scan this QR code with {wallet} and confirm the payment there. "
        "Nothing is charged until you confirm. Already paid? Please do not pay again: "
        "this page updates by itself.",
        "zh-CN": "请用{wallet}扫描此二维码并确认付款。在您确认之前不会扣款。"
        "已经付款？请不要重复付款：本页面会自动更新。",
    },
    # states, as a shopper reads them
    "state.received": {"en": "Order received", "zh-CN": "已收到订单"},
    "state.payment_pending": {"en": "Payment in progress", "zh-CN": "正在付款"},
    "state.action_required": {
        "en": "Your bank needs you to confirm the payment",
        "zh-CN": "银行需要您确认付款",
    },
    "state.action_required.wallet": {
        "en": "Waiting for your payment with {wallet}",
        "zh-CN": "等待您使用{wallet}付款",
    },
    "state.action_required.scan": {"en": "Scan the code to pay", "zh-CN": "请扫码付款"},
    "state.payment_unknown": {"en": "Confirming your payment", "zh-CN": "正在确认您的付款"},
    "state.payment_failed": {"en": "Payment not accepted", "zh-CN": "付款未成功"},
    "state.paid": {"en": "Paid — thank you!", "zh-CN": "已付款——谢谢！"},
    "state.refunded": {"en": "Refunded", "zh-CN": "已退款"},
    "state.cancelled": {"en": "Cancelled", "zh-CN": "已取消"},
    # what to do next, per state
    "next.received": {
        "en": "We have your order and will take the payment shortly. "
        "You do not need to do anything.",
        "zh-CN": "我们已收到您的订单，将很快完成扣款。您无需任何操作。",
    },
    "next.payment_pending": {
        "en": "Your payment is being processed. Please do not pay again: "
        "you will not be charged twice.",
        "zh-CN": "您的付款正在处理中。请不要重复付款：您不会被扣款两次。",
    },
    "next.action_required": {
        "en": "Your bank asks you to confirm this payment. Press the button to finish; "
        "nothing is charged until you do.",
        "zh-CN": "您的银行要求您确认此笔付款。请按下按钮完成；在您确认之前不会扣款。",
    },
    "next.action_required.wallet": {
        "en": "Press the button to pay with {wallet}. Nothing is charged until you confirm "
        "there; this page shows the result when you come back.",
        "zh-CN": "请按下按钮，使用{wallet}付款。在您确认之前不会扣款；返回本页面即可看到结果。",
    },
    "next.action_required.unavailable": {
        "en": "We cannot show how to finish this payment here. Nothing has been charged; "
        "please contact the shop's support below.",
        "zh-CN": "我们无法在此显示如何完成付款。尚未扣款；请通过下方联系商店客服。",
    },
    "next.payment_pending.wallet": {
        "en": "If you have paid with {wallet}, we are confirming it now. Please do not pay "
        "again: you will not be charged twice.",
        "zh-CN": "如果您已使用{wallet}付款，我们正在确认。请不要重复付款：您不会被扣款两次。",
    },
    "next.payment_unknown.wallet": {
        "en": "We are confirming your payment with {wallet}. If you have paid, please do "
        "not pay again: you will not be charged twice.",
        "zh-CN": "我们正在向{wallet}确认您的付款。如果您已付款，请不要重复付款：您不会被扣款两次。",
    },
    "next.payment_unknown": {
        "en": "We are confirming your payment with your bank. Please do not pay again: "
        "you will not be charged twice.",
        "zh-CN": "我们正在与您的银行确认付款。请不要重复付款：您不会被扣款两次。",
    },
    "next.payment_failed": {
        "en": "You were not charged. {why} You can pay with another method below.",
        "zh-CN": "您没有被扣款。{why}您可以在下面使用其他支付方式付款。",
    },
    "next.paid": {
        "en": "Your payment went through and your order is confirmed. "
        "A confirmation is on its way to your email.",
        "zh-CN": "您的付款已成功，订单已确认。确认信息将发送到您的邮箱。",
    },
    "next.refunded": {
        "en": "Your payment was refunded. Depending on your bank, the money is back "
        "on your account within 5 to 10 days.",
        "zh-CN": "您的付款已退款。根据您的银行，款项将在 5 到 10 天内退回您的账户。",
    },
    "next.cancelled": {
        "en": "This order was cancelled and you were not charged for it. "
        "If you still want these items, please place a new order at the shop.",
        "zh-CN": "此订单已取消，您未因此被扣款。如果您仍需要这些商品，请在商店重新下单。",
    },
    # why a payment failed, from the decline code
    "why.generic_decline": {
        "en": "Your bank declined the payment without giving a reason.",
        "zh-CN": "您的银行拒绝了此笔付款，未说明原因。",
    },
    "why.insufficient_funds": {
        "en": "Your bank says there is not enough money available on this card.",
        "zh-CN": "您的银行表示此卡余额不足。",
    },
    "why.expired_card": {"en": "The card has expired.", "zh-CN": "此卡已过期。"},
    "why.incorrect_cvc": {
        "en": "The card's security code was not correct.",
        "zh-CN": "卡的安全码不正确。",
    },
    "why.incorrect_number": {
        "en": "The card number was not correct.",
        "zh-CN": "卡号不正确。",
    },
    "why.lost_card": {
        "en": "Your bank declined the card. Please contact your bank.",
        "zh-CN": "您的银行拒绝了此卡。请联系您的银行。",
    },
    "why.processing_error": {
        "en": "The payment could not be processed.",
        "zh-CN": "付款无法处理。",
    },
    "why.authentication_abandoned": {
        "en": "The payment was not confirmed with your bank in time.",
        "zh-CN": "未能及时向银行确认付款。",
    },
    "why.authentication_failed": {
        "en": "The confirmation with your bank did not succeed.",
        "zh-CN": "向银行确认付款未成功。",
    },
    "why.canceled": {"en": "The payment was cancelled.", "zh-CN": "付款已取消。"},
    "why.unknown": {"en": "The payment was not accepted.", "zh-CN": "付款未被接受。"},
    # the console
    "console.title": {"en": "Support console", "zh-CN": "客服控制台"},
    "console.login": {"en": "Log in", "zh-CN": "登录"},
    "console.logout": {"en": "Log out", "zh-CN": "退出"},
    "console.user": {"en": "User name", "zh-CN": "用户名"},
    "console.password": {"en": "Password", "zh-CN": "密码"},
    "console.bad_login": {
        "en": "Wrong user name or password, or too many failed log-ins: "
        "check them, or wait a while and try again.",
        "zh-CN": "用户名或密码错误，或登录失败次数过多：请检查后重试，或稍后再试。",
    },
    "console.busy": {
        "en": "Too many log-ins are being checked right now: try again in a moment.",
        "zh-CN": "当前正在验证的登录过多：请稍后再试。",
    },
    "console.bad_request": {
        "en": "This request could not be read.",
        "zh-CN": "无法读取此请求。",
    },
    "console.dashboard": {"en": "Dashboard", "zh-CN": "概览"},
    "console.stuck": {"en": "Stuck orders", "zh-CN": "卡住的订单"},
    "console.flagged": {"en": "Flagged orders", "zh-CN": "待审核订单"},
    "console.webhooks": {"en": "Failed webhooks", "zh-CN": "失败的 Webhook"},
    "console.dead_letters": {"en": "Dead-lettered notifications", "zh-CN": "投递失败的通知"},
    "console.reconciliation": {"en": "Reconciliation exceptions", "zh-CN": "对账异常"},
    "console.search": {"en": "Search", "zh-CN": "搜索"},
    "console.search_label": {
        "en": "Order id, merchant reference, email or provider reference",
        "zh-CN": "订单号、商户参考号、邮箱或支付机构参考号",
    },
    "console.guide": {"en": "Support guide", "zh-CN": "客服指南"},
    "console.by_state": {"en": "Orders by state", "zh-CN": "各状态订单数"},
    "console.providers": {"en": "Payment providers", "zh-CN": "支付机构"},
    "console.backlogs": {"en": "Backlogs", "zh-CN": "积压"},
    "console.webhook_backlog": {"en": "Webhooks not processed yet", "zh-CN": "未处理的 Webhook"},
    "console.outbox_backlog": {"en": "Notifications waiting", "zh-CN": "待发送的通知"},
    "console.not_wired": {"en": "not available in this build", "zh-CN": "此版本不可用"},
    "console.none": {"en": "Nothing here.", "zh-CN": "这里没有内容。"},
    "console.order": {"en": "Order", "zh-CN": "订单"},
    "console.state": {"en": "State", "zh-CN": "状态"},
    "console.total": {"en": "Total", "zh-CN": "合计"},
    "console.customer": {"en": "Customer", "zh-CN": "顾客"},
    "console.created": {"en": "Created", "zh-CN": "创建时间"},
    "console.updated": {"en": "Last change", "zh-CN": "最后变更"},
    "console.flag": {"en": "Flag", "zh-CN": "标记"},
    "console.flags": {"en": "Review flags", "zh-CN": "审核标记"},
    "console.flag_raised": {"en": "raised by {who}, {when}", "zh-CN": "由 {who} 提出，{when}"},
    "console.flag_cleared": {"en": "cleared by {who}, {when}", "zh-CN": "由 {who} 清除，{when}"},
    "console.unknown_flag": {"en": "no such review reason", "zh-CN": "没有这个审核原因"},
    "console.timeline": {"en": "Timeline", "zh-CN": "时间线"},
    "console.attempts": {"en": "Payment attempts", "zh-CN": "支付尝试"},
    "console.raw_webhooks": {"en": "Webhook events", "zh-CN": "Webhook 事件"},
    "console.webhook_pruned": {
        "en": "Body removed by retention on {at}; the event id is kept to refuse duplicates.",
        "zh-CN": "正文已于 {at} 按保留期限删除；事件 ID 仍保留，用于拒绝重复推送。",
    },
    "console.notifications": {"en": "Notifications", "zh-CN": "通知"},
    "console.deliveries": {"en": "Deliveries per sink", "zh-CN": "各渠道的投递"},
    "console.actions": {"en": "Actions", "zh-CN": "操作"},
    "console.recheck": {"en": "Recheck now", "zh-CN": "立即重新查询"},
    "console.refund": {"en": "Refund", "zh-CN": "退款"},
    "console.refund_confirm": {
        "en": "Refund {amount} to the shopper? This cannot be undone.",
        "zh-CN": "向顾客退款 {amount}？此操作无法撤销。",
    },
    "console.refund_yes": {"en": "Yes, refund", "zh-CN": "确认退款"},
    "console.refund_amount": {
        "en": "Amount in {currency} (empty: all that is left, {left})",
        "zh-CN": "金额（{currency}，留空：剩余全部 {left}）",
    },
    "console.refund_reason": {"en": "Reason (required)", "zh-CN": "原因（必填）"},
    "console.refund_next": {"en": "Review the refund", "zh-CN": "检查退款"},
    "console.refund_reason_shown": {"en": "Reason: {reason}", "zh-CN": "原因：{reason}"},
    "console.refund_amount_invalid": {
        "en": "Give an amount in {currency} with at most {digits} decimals, above zero.",
        "zh-CN": "请输入大于零的 {currency} 金额，最多 {digits} 位小数。",
    },
    "console.refund_reason_needed": {
        "en": "Give a reason: 1 to {most} characters.",
        "zh-CN": "请填写原因：1 到 {most} 个字符。",
    },
    "console.refunded_so_far": {
        "en": "Refunded {refunded} of {paid}; {left} left to refund.",
        "zh-CN": "已退款 {refunded}（共 {paid}）；还可退款 {left}。",
    },
    "console.refunds": {"en": "Refunds", "zh-CN": "退款记录"},
    "console.partially_refunded": {"en": "partially refunded", "zh-CN": "部分退款"},
    "page.partially_refunded": {
        "en": "Partially refunded: {amount} was given back to you.",
        "zh-CN": "部分退款：已向您退回 {amount}。",
    },
    "console.back": {"en": "Back", "zh-CN": "返回"},
    "console.cancel": {"en": "Cancel order", "zh-CN": "取消订单"},
    "console.clear_flag": {"en": "Clear flag", "zh-CN": "清除标记"},
    "console.comment": {"en": "Comment (required)", "zh-CN": "备注（必填）"},
    "console.viewer_note": {
        "en": "You can look but not act (role: viewer).",
        "zh-CN": "您只能查看，不能操作（角色：viewer）。",
    },
    "console.forbidden": {
        "en": "Your role may not do this.",
        "zh-CN": "您的角色无权执行此操作。",
    },
    "console.done": {"en": "Done: {what}", "zh-CN": "已完成：{what}"},
    "console.failed": {"en": "Not done: {why}", "zh-CN": "未完成：{why}"},
    "console.when": {"en": "When", "zh-CN": "时间"},
    "console.what": {"en": "What", "zh-CN": "内容"},
    "console.who": {"en": "Who", "zh-CN": "操作者"},
    "console.received_at": {"en": "Received", "zh-CN": "接收时间"},
    "console.error": {"en": "Error", "zh-CN": "错误"},
    "console.provider": {"en": "Provider", "zh-CN": "支付机构"},
    "console.reference": {"en": "Reference", "zh-CN": "参考号"},
    "console.decline": {"en": "Decline code", "zh-CN": "拒绝代码"},
    "console.shopper_page": {"en": "Shopper's page", "zh-CN": "顾客页面"},
    "console.results": {"en": "{count} found", "zh-CN": "找到 {count} 个"},
    "console.minutes": {"en": "Unchanged for at least (minutes)", "zh-CN": "至少多少分钟未变化"},
    "console.show": {"en": "Show", "zh-CN": "显示"},
    "console.resend": {"en": "Resend", "zh-CN": "重新发送"},
    "console.circuit": {"en": "Circuit", "zh-CN": "熔断器"},
    "console.failures": {"en": "Failures in a row", "zh-CN": "连续失败"},
    "page.skip": {"en": "Skip to content", "zh-CN": "跳到正文"},
    # an order the payment provider cannot charge (API problem, 422)
    "amount.title": {"en": "Amount cannot be charged", "zh-CN": "金额无法扣款"},
    "amount.unsupported_currency": {
        "en": "The payment provider does not charge in {currency}.",
        "zh-CN": "支付机构不支持以 {currency} 扣款。",
    },
    "amount.minimum": {
        "en": "{amount} is below the smallest amount the payment provider charges in "
        "{currency}: {nearest}.",
        "zh-CN": "{amount} 低于支付机构以 {currency} 扣款的最低金额：{nearest}。",
    },
    "amount.maximum": {
        "en": "{amount} is above the largest amount the payment provider charges in "
        "{currency}: {nearest}.",
        "zh-CN": "{amount} 高于支付机构以 {currency} 扣款的最高金额：{nearest}。",
    },
    "amount.granularity": {
        "en": "The payment provider cannot charge {amount} exactly in {currency}; "
        "the nearest amounts it can charge: {nearest}.",
        "zh-CN": "支付机构无法以 {currency} 精确扣款 {amount}；最接近的可扣款金额：{nearest}。",
    },
    "amount.none": {"en": "none", "zh-CN": "无"},
    # a payment method no configured provider takes (API problem, 422)
    "method.title": {"en": "Payment method not accepted", "zh-CN": "不支持的支付方式"},
    "method.not_taken": {
        "en": "No payment provider configured here takes the payment method {method}; "
        "nothing was stored.",
        "zh-CN": "此处配置的支付机构均不接受支付方式 {method}；未保存任何内容。",
    },
    # settlement reports (reconcile/report.py: the terminal summary and the report files)
    "report.matched": {"en": "matched", "zh-CN": "已匹配"},
    "report.amount_mismatch": {"en": "amount mismatch", "zh-CN": "金额不符"},
    "report.currency_mismatch": {"en": "currency mismatch", "zh-CN": "币种不符"},
    "report.missing_in_orders": {
        "en": "missing in orders (orphan charge)",
        "zh-CN": "订单缺失\uff08孤立扣款\uff09",
    },
    "report.missing_at_provider": {"en": "missing at the provider", "zh-CN": "渠道未确认"},
    "report.duplicate": {"en": "duplicate", "zh-CN": "重复"},
    "report.refund": {"en": "refunds", "zh-CN": "退款"},
    "report.chargeback": {"en": "chargebacks and disputes", "zh-CN": "拒付与争议"},
    "report.fee": {"en": "fees", "zh-CN": "手续费"},
    "report.other": {"en": "payouts and other lines", "zh-CN": "结算及其他"},
    "report.title": {"en": "Settlement reconciliation", "zh-CN": "结算对账"},
    "report.category": {"en": "category", "zh-CN": "类别"},
    "report.currency": {"en": "currency", "zh-CN": "币种"},
    "report.lines": {"en": "lines", "zh-CN": "行数"},
    "report.gross": {"en": "gross", "zh-CN": "总额"},
    "report.fee_total": {"en": "fee", "zh-CN": "手续费"},
    "report.net": {"en": "net", "zh-CN": "净额"},
    "report.errors": {"en": "lines not reconciled", "zh-CN": "未能对账的行"},
    "report.exceptions": {"en": "exceptions", "zh-CN": "异常"},
    "report.period": {"en": "period", "zh-CN": "期间"},
    "report.files": {"en": "files", "zh-CN": "文件"},
    # reconcile --fetch (cli/bill_fetch.py): a wallet's daily bill, downloaded
    "report.fetch_bad_date": {
        "en": "{value!r} is not a date (YYYY-MM-DD)",
        "zh-CN": "{value!r} 不是日期（YYYY-MM-DD）",
    },
    "report.fetch_future": {
        "en": "{day} is in the future (today is {today} in China, where bills are made)",
        "zh-CN": "{day} 是将来的日期（账单按中国时间生成，今天是 {today}）",
    },
    "report.fetch_today": {
        "en": "{day} is not over yet in China: its bill comes the next day after 10:00",
        "zh-CN": "{day} 在中国尚未结束：账单次日 10 点后才可下载",
    },
    "report.fetch_unconfigured": {
        "en": "{provider} is not configured: set {variable} and its keys first",
        "zh-CN": "未配置 {provider}：请先设置 {variable} 及其密钥",
    },
    "report.fetch_no_account": {
        "en": "no configured account is named {name!r} (configured: {names})",
        "zh-CN": "没有名为 {name!r} 的已配置账户（已配置：{names}）",
    },
    "report.fetch_account_unusable": {
        "en": "the account {account} cannot be used",
        "zh-CN": "账户 {account} 无法使用",
    },
    "report.fetch_failed": {"en": "the bill could not be had", "zh-CN": "无法获取账单"},
    "report.fetch_not_ready": {
        "en": "the bill is not ready yet, ask again later",
        "zh-CN": "账单尚未生成，请稍后再试",
    },
    "report.fetch_no_bill": {
        "en": "there is no bill for that day (no trades)",
        "zh-CN": "该日没有账单（无交易）",
    },
    "report.fetch_refused": {
        "en": "the bill was refused, nothing was reconciled",
        "zh-CN": "账单未通过校验，未进行对账",
    },
    "report.fetch_unavailable": {
        "en": "the provider could not be reached, nothing was downloaded",
        "zh-CN": "无法连接支付机构，未下载任何内容",
    },
}


def translate(language: str, key: str, **values: Any) -> str:
    """The text of ``key`` in ``language`` (English when missing), with ``values`` filled in."""
    texts = CATALOG.get(key)
    if texts is None:
        return key
    text = texts.get(language) or texts["en"]
    return text.format(**values) if values else text


def locale(explicit: str | None, accept_language: str | None) -> str:
    """The shopper's language: the explicit field, else the best Accept-Language match."""
    if explicit:
        return explicit
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = params.strip().removeprefix("q=") if params.strip().startswith("q=") else "1"
        try:
            ranked.append((-float(quality), position, tag.strip().lower()))
        except ValueError:
            continue
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return "en"
