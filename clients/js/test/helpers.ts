import { vi } from "vitest";
import { createCheckout, type CheckoutOptions } from "../src/index";
import { FakeShop, FakeStorage } from "./fakes";

let count = 0;

/** A checkout on fakes: `navigated` lists the pages opened for the shopper. */
export function setup(
  options: Partial<CheckoutOptions> & { shop?: FakeShop; session?: FakeStorage; local?: FakeStorage } = {},
) {
  const shop = options.shop ?? new FakeShop();
  const session = options.session ?? new FakeStorage();
  const local = options.local ?? new FakeStorage();
  const navigated: string[] = [];
  const checkout = createCheckout({
    name: `test-${++count}`,
    endpoint: "/shop/orders",
    payAgainEndpoint: (id) => `/shop/orders/${id}/payments`,
    fetch: shop.fetch,
    navigate: (url) => navigated.push(url),
    online: () => true,
    random: () => 1,
    locale: "en",
    ...options,
    session,
    local,
  });
  return { checkout, shop, session, local, navigated };
}

/** Runs every timer until `promise` settles (fake timers). */
export async function settled<T>(promise: Promise<T>): Promise<T> {
  await vi.runAllTimersAsync();
  return promise;
}

/** The Idempotency-Keys the order requests carried. */
export function orderKeys(shop: FakeShop): (string | null)[] {
  return shop.requests.filter((r) => r.method === "POST" && r.url === "/shop/orders").map((r) => r.key);
}
