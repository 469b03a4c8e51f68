import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { outcomeOf, type Failed, type ShownCode } from "../src/index";
import { CART, FakeShop, FakeStorage } from "./fakes";
import { settled, setup } from "./helpers";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("what an order's state means to the shopper", () => {
  it("only a decline or a cancellation is failed; unknown and unheard-of states are confirming", () => {
    expect(outcomeOf("paid")).toBe("paid");
    expect(outcomeOf("refunded")).toBe("paid");
    expect(outcomeOf("payment_failed")).toBe("failed");
    expect(outcomeOf("cancelled")).toBe("failed");
    for (const state of ["received", "payment_pending", "action_required", "payment_unknown"]) {
      expect(outcomeOf(state)).toBe("confirming");
    }
    for (const state of ["", "PAYMENT_FAILED", "failed", "payment_failed ", "disputed", undefined]) {
      expect(outcomeOf(state)).toBe("confirming");
    }
  });

  it("an outcome that stays unknown ends 'confirming' with the confirming words", async () => {
    const shop = new FakeShop();
    shop.states = ["payment_unknown"];
    const { checkout } = setup({ shop, watch: { giveUpAfterMs: 30_000 } });

    const outcome = await settled(checkout.submit(CART));

    expect(outcome).toMatchObject({ status: "confirming", state: "payment_unknown", orderId: "ord_1" });
    expect(outcome.title).toBe("Confirming your payment");
    expect(outcome.message).toContain("Please do not pay again");
    expect(shop.polls).toBeGreaterThan(3);
  });

  it("a status page that errors or a state never heard of is never a failure", async () => {
    const shop = new FakeShop();
    shop.states = [{ status: 500 }, "payment_maybe", { status: 404 }, "payment_maybe"];
    const { checkout } = setup({ shop, watch: { giveUpAfterMs: 20_000 } });

    const outcome = await settled(checkout.submit(CART));

    expect(outcome.status).toBe("confirming");
    expect(outcome.title).toBe("Confirming your payment");
  });

  it("unknown, then paid: resolves paid once the status says so", async () => {
    const shop = new FakeShop();
    shop.states = ["payment_unknown", "payment_unknown", "paid"];
    const { checkout } = setup({ shop });
    const seen: string[] = [];
    checkout.on("status", (e) => seen.push(e.state));

    const outcome = await settled(checkout.submit(CART));

    expect(outcome).toMatchObject({ status: "paid", orderId: "ord_1", title: "Paid — thank you!" });
    expect(seen).toEqual(["payment_unknown", "paid"]);
  });

  it("polls the order's status endpoint beside its status page", async () => {
    const { checkout, shop } = setup();
    await settled(checkout.submit(CART));
    const polled = shop.requests.filter((r) => r.method === "GET").map((r) => r.url);
    expect(polled[0]).toBe("https://og.test/orders/ord_1/status?token=tok_ord_1");
  });

  it("a decline resolves failed with the page's reason, in the shopper's language", async () => {
    const shop = new FakeShop();
    shop.states = ["payment_failed"];
    shop.reason = "why.insufficient_funds";
    const { checkout } = setup({ shop, locale: "zh-CN" });

    const outcome = (await settled(checkout.submit(CART))) as Failed;

    expect(outcome.status).toBe("failed");
    expect(outcome.reasonKey).toBe("why.insufficient_funds");
    expect(outcome.reason).toMatch(/余额/);
    expect(outcome.message).toContain(outcome.reason);
    expect(outcome.payAgain?.orderId).toBe("ord_1");
    expect(outcome.payAgain?.statusUrl).toBe("https://og.test/orders/ord_1?token=tok_ord_1");
  });

  it("a reason the catalog does not know is told in general words", async () => {
    const shop = new FakeShop();
    shop.states = ["payment_failed"];
    shop.reason = "why.<script>";
    const { checkout } = setup({ shop });

    const outcome = (await settled(checkout.submit(CART))) as Failed;
    expect(outcome.reasonKey).toBe("why.unknown");
    expect(outcome.reason).toBe("The payment was not accepted.");
  });

  it("pay again through the handle: the shop's pay endpoint, a new key, then paid", async () => {
    const shop = new FakeShop();
    shop.states = ["payment_failed"];
    const { checkout } = setup({ shop });
    const failed = (await settled(checkout.submit(CART))) as Failed;
    shop.states = ["paid"];
    shop.polls = 0;

    const outcome = await settled(failed.payAgain?.pay?.("alipay_page") as Promise<unknown>);

    expect(outcome).toMatchObject({ status: "paid", orderId: "ord_1" });
    const pay = shop.requests.filter((r) => r.url === "/shop/orders/ord_1/payments");
    expect(pay.map((r) => r.body)).toEqual([{ payment: { method: "alipay_page" } }]);
    expect(pay[0]?.key).not.toBe(shop.requests[0]?.key);
    expect(shop.orderIds).toEqual(["ord_1"]);
  });

  it("pay again whose answer never comes is confirming, not failed, and keeps its key", async () => {
    const shop = new FakeShop();
    shop.states = ["payment_failed"];
    const { checkout } = setup({ shop, retry: { giveUpAfterMs: 2_000 } });
    await settled(checkout.submit(CART));
    shop.faults = Array<"unreachable">(20).fill("unreachable");

    const lost = await settled(checkout.payAgain("pm_card_visa"));
    expect(lost.status).toBe("confirming");

    shop.faults = [];
    shop.states = ["paid"];
    shop.polls = 0;
    expect((await settled(checkout.payAgain("pm_card_visa"))).status).toBe("paid");
    const keys = shop.requests.filter((r) => r.url.endsWith("/payments")).map((r) => r.key);
    expect(new Set(keys).size).toBe(1);
  });

  it("a cancelled order is failed with the cancellation's words and offers no pay again", async () => {
    const shop = new FakeShop();
    shop.states = ["cancelled"];
    const { checkout } = setup({ shop });
    const outcome = (await settled(checkout.submit(CART))) as Failed;
    expect(outcome.status).toBe("failed");
    expect(outcome.reasonKey).toBe("next.cancelled");
    expect(outcome.payAgain).toBeUndefined();
  });
});

describe("the shopper's language", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("is the browser's when neither the shop nor the order names one", async () => {
    vi.stubGlobal("navigator", { language: "zh-CN", onLine: true });
    const shop = new FakeShop();
    shop.states = ["payment_unknown"];
    const { checkout } = setup({ shop, locale: undefined, watch: { giveUpAfterMs: 1_000 } });

    const outcome = await settled(checkout.submit(CART));
    expect(outcome.title).toBe("正在确认您的付款");
  });

  it("is the order's locale before the browser's", async () => {
    vi.stubGlobal("navigator", { language: "zh-CN", onLine: true });
    const { checkout } = setup({ locale: undefined });

    const outcome = await settled(checkout.submit({ ...CART, locale: "en" }));
    expect(outcome.title).toBe("Paid — thank you!");
  });
});

describe("following next_action", () => {
  it("3-D Secure: opens the bank's page once, then watches the order to paid", async () => {
    const shop = new FakeShop();
    shop.placedState = "action_required";
    shop.nextAction = { type: "redirect", redirect_url: "https://bank.test/3ds/1" };
    shop.states = ["action_required", "paid"];
    const { checkout, navigated } = setup({ shop });
    const redirects: string[] = [];
    checkout.on("redirect", (e) => redirects.push(e.url));

    const outcome = await settled(checkout.submit(CART));

    expect(navigated).toEqual(["https://bank.test/3ds/1"]);
    expect(redirects).toEqual(["https://bank.test/3ds/1"]);
    expect(outcome.status).toBe("paid");
  });

  it("the redirect is kept before the page is opened, so a return does not open it again", async () => {
    const shop = new FakeShop();
    shop.placedState = "action_required";
    shop.nextAction = { type: "redirect", redirect_url: "https://alipay.test/cashier/9" };
    shop.states = ["action_required"];
    const session = new FakeStorage();
    let keptWhenOpened = "";
    const { checkout } = setup({
      shop,
      session,
      watch: { giveUpAfterMs: 1_000 },
      navigate: () => {
        keptWhenOpened = session.dump();
      },
    });
    await settled(checkout.submit(CART));
    expect(keptWhenOpened).toContain("https://alipay.test/cashier/9");
  });

  it("a session still waiting on the shopper ends confirming with the step to take", async () => {
    const shop = new FakeShop();
    shop.placedState = "action_required";
    shop.nextAction = { type: "redirect", redirect_url: "https://bank.test/3ds/2" };
    shop.states = ["action_required"];
    const { checkout } = setup({ shop, watch: { giveUpAfterMs: 5_000 } });

    const outcome = await settled(checkout.submit(CART));
    expect(outcome).toMatchObject({
      status: "confirming",
      nextAction: { type: "redirect", redirect_url: "https://bank.test/3ds/2" },
    });
  });

  it("WeChat's QR code goes to the shop's display hook, in the shopper's words, and is hidden when paid", async () => {
    const shop = new FakeShop();
    shop.placedState = "action_required";
    const expires = new Date(Date.now() + 5 * 60_000).toISOString();
    shop.nextAction = { type: "scan_qr_code", code_url: "weixin://wxpay/bizpayurl?pr=abc", expires_at: expires };
    shop.states = ["action_required", "action_required", "paid"];
    const shown: ShownCode[] = [];
    let hidden = 0;
    const { checkout, navigated } = setup({
      shop,
      locale: "zh-CN",
      showCode: (code) => {
        shown.push(code);
        return () => {
          hidden += 1;
        };
      },
    });

    const outcome = await settled(checkout.submit(CART));

    expect(outcome.status).toBe("paid");
    expect(shown).toHaveLength(1);
    expect(shown[0]).toMatchObject({ codeUrl: "weixin://wxpay/bizpayurl?pr=abc", expiresAt: expires, orderId: "ord_1" });
    expect(shown[0]?.label).toContain("微信");
    expect(hidden).toBe(1);
    expect(navigated).toEqual([]); // a code is shown, never opened
  });

  it("a QR code keeps being watched until it expires, past the usual watch", async () => {
    const shop = new FakeShop();
    shop.placedState = "action_required";
    const expires = new Date(Date.now() + 10 * 60_000).toISOString();
    shop.nextAction = { type: "scan_qr_code", code_url: "weixin://wxpay/bizpayurl?pr=x", expires_at: expires };
    shop.states = ["action_required"];
    const { checkout } = setup({ shop, showCode: () => undefined, watch: { giveUpAfterMs: 60_000 } });
    const started = Date.now();

    const outcome = await settled(checkout.submit(CART));

    expect(outcome.status).toBe("confirming");
    expect(Date.now() - started).toBeGreaterThanOrEqual(10 * 60_000);
  });

  it("without a display hook the shopper is sent to the status page, which shows the code", async () => {
    const shop = new FakeShop();
    shop.placedState = "action_required";
    shop.nextAction = {
      type: "scan_qr_code",
      code_url: "weixin://wxpay/bizpayurl?pr=abc",
      expires_at: new Date(Date.now() + 60_000).toISOString(),
    };
    const { checkout, navigated } = setup({ shop });
    await settled(checkout.submit(CART));
    expect(navigated).toEqual(["https://og.test/orders/ord_1?token=tok_ord_1"]);
  });
});
