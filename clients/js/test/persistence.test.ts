import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CheckoutError } from "../src/index";
import { CART, FakeShop, FakeStorage } from "./fakes";
import { orderKeys, settled, setup } from "./helpers";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

const quick = { retry: { giveUpAfterMs: 3_000 } };

describe("one key per checkout, kept across pages", () => {
  it("a refresh after the answer was lost sends the same key again and gets the same order", async () => {
    const shop = new FakeShop();
    shop.faults = ["lose_answer", "lose_answer", "lose_answer", "lose_answer", "lose_answer"];
    const first = setup({ shop, name: "refresh", ...quick });
    const before = await settled(first.checkout.submit(CART));
    expect(before.status).toBe("confirming");
    expect(before.orderId).toBeUndefined();

    shop.faults = [];
    // the page reloads: a new instance on the same tab's storage
    const again = setup({ shop, name: "refresh", session: first.session, local: first.local });
    const after = await settled(again.checkout.resume());

    expect(after?.status).toBe("paid");
    expect(shop.orderIds).toEqual(["ord_1"]);
    const keys = orderKeys(shop);
    expect(keys.length).toBeGreaterThan(1);
    expect(new Set(keys).size).toBe(1);
  });

  it("back from the 3-D Secure page, the checkout resumes without opening the page again", async () => {
    const shop = new FakeShop();
    shop.placedState = "action_required";
    shop.nextAction = { type: "redirect", redirect_url: "https://bank.test/3ds/1" };
    shop.states = ["action_required"];
    const first = setup({ shop, name: "back", watch: { giveUpAfterMs: 2_000 } });
    const waiting = await settled(first.checkout.submit(CART));
    expect(first.navigated).toEqual(["https://bank.test/3ds/1"]);
    expect(waiting.status).toBe("confirming");

    shop.states = ["paid"];
    const back = setup({ shop, name: "back", session: first.session, local: first.local });
    const outcome = await settled(back.checkout.resume());

    expect(outcome?.status).toBe("paid");
    expect(back.navigated).toEqual([]);
    expect(shop.orderIds).toEqual(["ord_1"]);
  });

  it("a closed tab: a new tab submitting the same cart uses the kept key, never a second order", async () => {
    const shop = new FakeShop();
    shop.faults = ["lose_answer", "lose_answer", "lose_answer", "lose_answer", "lose_answer"];
    const first = setup({ shop, name: "tab", ...quick });
    await settled(first.checkout.submit(CART));
    const firstId = first.checkout.id;

    shop.faults = [];
    const tab = setup({ shop, name: "tab", session: new FakeStorage(), local: first.local });
    expect(tab.checkout.id).toBe(firstId);
    const outcome = await settled(tab.checkout.submit(CART));

    expect(outcome.status).toBe("paid");
    expect(shop.orderIds).toEqual(["ord_1"]);
    expect(new Set(orderKeys(shop)).size).toBe(1);
  });

  it("keeps no shopper details in localStorage", async () => {
    const shop = new FakeShop();
    shop.faults = ["lose_answer", "lose_answer", "lose_answer", "lose_answer", "lose_answer"];
    const { checkout, local, session } = setup({ shop, ...quick });
    await settled(checkout.submit(CART));

    expect(session.dump()).toContain("ana@example.com"); // the tab may send it again
    expect(local.dump()).not.toContain("ana@example.com");
    expect(local.dump()).toContain(orderKeys(shop)[0]);
  });

  it("once the order is answered, the shopper's details are no longer kept anywhere", async () => {
    const { checkout, session, local } = setup();
    await settled(checkout.submit(CART));

    expect(session.dump()).toContain("ord_1");
    expect(session.dump() + local.dump()).not.toContain("ana@example.com");
  });

  it("another cart while the first one's outcome is unknown is refused, and nothing is sent", async () => {
    const shop = new FakeShop();
    shop.faults = ["lose_answer", "lose_answer", "lose_answer", "lose_answer", "lose_answer"];
    const { checkout } = setup({ shop, ...quick });
    await settled(checkout.submit(CART));
    const sent = shop.requests.length;

    const other = { ...CART, items: [{ sku: "MUG", name: "Mug", quantity: 1, unit_amount: 900 }] };
    await expect(checkout.submit(other)).rejects.toMatchObject({ code: "order_changed" });
    expect(shop.requests.length).toBe(sent);
  });

  it("another cart after a paid order is a new checkout with a new key", async () => {
    const { checkout, shop } = setup();
    await settled(checkout.submit(CART));
    const other = { ...CART, items: [{ sku: "MUG", name: "Mug", quantity: 1, unit_amount: 900 }] };
    const second = await settled(checkout.submit(other));

    expect(second.status).toBe("paid");
    expect(shop.orderIds).toEqual(["ord_1", "ord_2"]);
  });

  it("the same cart after a paid order answers the same order without a new request", async () => {
    const { checkout, shop } = setup();
    const first = await settled(checkout.submit(CART));
    const again = await settled(checkout.submit(CART));

    expect(again.orderId).toBe(first.orderId);
    expect(orderKeys(shop).length).toBe(1);
  });

  it("works in memory when storage throws (private mode), within the page", async () => {
    const broken = new FakeStorage();
    broken.setItem = () => {
      throw new DOMException("quota", "QuotaExceededError");
    };
    const shop = new FakeShop();
    shop.faults = ["lose_answer"];
    const { checkout } = setup({ shop, session: broken, local: broken });
    const outcome = await settled(checkout.submit(CART));

    expect(outcome.status).toBe("paid");
    expect(new Set(orderKeys(shop)).size).toBe(1);
  });

  it("a refused order (422) frees the checkout for a corrected cart, on the same key", async () => {
    const shop = new FakeShop();
    shop.faults = [{ status: 422 }];
    const { checkout } = setup({ shop });
    const refused = await settled(checkout.submit(CART).catch((e: unknown) => e));
    expect(refused).toBeInstanceOf(CheckoutError);
    expect(refused).toMatchObject({ code: "refused", status: 422 });

    const fixed = { ...CART, customer: { ...CART.customer, name: "Ana S." } };
    const outcome = await settled(checkout.submit(fixed));
    expect(outcome.status).toBe("paid");
    expect(new Set(orderKeys(shop)).size).toBe(1);
  });

  it("reset starts a new checkout, and is refused while a request is in flight", async () => {
    const { checkout, shop } = setup();
    const running = checkout.submit(CART);
    expect(() => checkout.reset()).toThrow(CheckoutError);
    await settled(running);
    checkout.reset();
    expect(checkout.id).toBeUndefined();
    await settled(checkout.submit(CART));
    expect(shop.orderIds).toEqual(["ord_1", "ord_2"]);
  });
});
