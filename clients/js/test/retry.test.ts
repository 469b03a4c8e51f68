import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { backoffDelay, type RetryReason } from "../src/index";
import { CART, FakeShop } from "./fakes";
import { orderKeys, settled, setup } from "./helpers";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe("lost answers are retried with the same key and backoff", () => {
  it("answers lost after the order was made: one order, one key, waits that grow", async () => {
    const shop = new FakeShop();
    shop.faults = ["lose_answer", "lose_answer", "lose_answer"];
    const { checkout } = setup({ shop });
    const waits: number[] = [];
    checkout.on("retrying", (e) => waits.push(e.delayMs));

    const outcome = await settled(checkout.submit(CART));

    expect(outcome.status).toBe("paid");
    expect(shop.orderIds).toEqual(["ord_1"]);
    const keys = orderKeys(shop);
    expect(keys.length).toBe(4);
    expect(new Set(keys).size).toBe(1);
    expect(waits).toEqual([500, 1000, 2000]); // random pinned to 1: the whole wait
  });

  it("a request that times out counts as lost and goes again with the same key", async () => {
    const shop = new FakeShop();
    shop.faults = ["hang"];
    const { checkout } = setup({ shop, timeoutMs: 5_000 });
    const reasons: RetryReason[] = [];
    checkout.on("retrying", (e) => reasons.push(e.reason));

    const outcome = await settled(checkout.submit(CART));

    expect(outcome.status).toBe("paid");
    expect(reasons).toEqual(["timeout"]);
    expect(shop.orderIds).toEqual(["ord_1"]);
    expect(new Set(orderKeys(shop)).size).toBe(1);
  });

  it("sends nothing while offline, then sends once back online", async () => {
    let online = false;
    const { checkout, shop } = setup({ online: () => online });
    const messages: string[] = [];
    checkout.on("retrying", (e) => messages.push(e.message));
    const outcome = checkout.submit(CART);

    await vi.advanceTimersByTimeAsync(4_000);
    expect(shop.requests).toEqual([]);
    expect(messages[0]).toContain("offline");

    online = true;
    expect((await settled(outcome)).status).toBe("paid");
    expect(orderKeys(shop).length).toBe(1);
  });

  it("a request in flight (409 with Retry-After) is asked again after that wait, same key", async () => {
    const shop = new FakeShop();
    shop.faults = [{ status: 409, type: "request-in-flight", retryAfter: 3 }, { status: 503 }];
    const { checkout } = setup({ shop });
    const waits: [RetryReason, number][] = [];
    checkout.on("retrying", (e) => waits.push([e.reason, e.delayMs]));

    const outcome = await settled(checkout.submit(CART));

    expect(outcome.status).toBe("paid");
    expect(waits).toEqual([
      ["busy", 3000],
      ["busy", 1000],
    ]);
    expect(new Set(orderKeys(shop)).size).toBe(1);
  });

  it("gives up on 'confirming', never 'failed', and the next submit still uses the same key", async () => {
    const shop = new FakeShop();
    shop.faults = Array<"unreachable">(50).fill("unreachable");
    const { checkout } = setup({ shop, retry: { giveUpAfterMs: 10_000 } });

    const outcome = await settled(checkout.submit(CART));
    expect(outcome.status).toBe("confirming");
    expect(outcome.message).toContain("not be charged twice");

    shop.faults = [];
    expect((await settled(checkout.submit(CART))).status).toBe("paid");
    expect(new Set(orderKeys(shop)).size).toBe(1);
  });

  it("a taken merchant reference (409) is a refusal, not retried", async () => {
    const shop = new FakeShop();
    shop.faults = [{ status: 409, type: "duplicate-merchant-reference" }];
    const { checkout } = setup({ shop });

    const refused = await settled(checkout.submit(CART).catch((e: unknown) => e));
    expect(refused).toMatchObject({ code: "refused", status: 409 });
    expect(orderKeys(shop).length).toBe(1);
  });

  it("backoff doubles up to its cap, and jitter keeps at least half", () => {
    const schedule = { firstMs: 500, maxMs: 8_000, factor: 2 };
    expect([0, 1, 2, 3, 4, 5].map((n) => backoffDelay(n, schedule, 1))).toEqual([500, 1000, 2000, 4000, 8000, 8000]);
    expect(backoffDelay(3, schedule, 0)).toBe(2000);
  });
});

describe("double submit", () => {
  it("a second submit while the first runs returns the same promise: one request", async () => {
    const { checkout, shop } = setup();
    const first = checkout.submit(CART);
    const second = checkout.submit(CART);

    expect(second).toBe(first);
    await settled(first);
    expect(orderKeys(shop).length).toBe(1);
  });

  it("two instances of one checkout on a page share the run", async () => {
    const one = setup({ name: "twice" });
    const two = setup({ name: "twice", shop: one.shop, session: one.session, local: one.local });
    const a = one.checkout.submit(CART);
    const b = two.checkout.submit(CART);

    expect(b).toBe(a);
    await settled(a);
    expect(orderKeys(one.shop).length).toBe(1);
  });

  it("a double click on pay again pays once", async () => {
    const shop = new FakeShop();
    shop.states = ["payment_failed"];
    const { checkout } = setup({ shop });
    await settled(checkout.submit(CART));
    shop.states = ["paid"];
    shop.polls = 0;

    const first = checkout.payAgain("pm_card_visa");
    const second = checkout.payAgain("pm_card_visa");
    expect(second).toBe(first);
    expect((await settled(first)).status).toBe("paid");
    expect(shop.payments.size).toBe(1);
  });
});
