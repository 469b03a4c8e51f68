// Drives the built @orderguard/checkout (clients/js/dist/checkout.js) in Node against a real
// orderguard, as a shop's page would through its back end (here the API itself: Node sends
// no Origin). Prints what happened as one JSON line for tests/e2e/test_js_checkout.py.
//
// node checkout_driver.mjs MODULE_URL BASE_URL SCENARIO ORDER_JSON
//   lost_answer: the first answer to the order request is dropped after it arrived
//   declined:    the order is declined, then paid again with pm_card_visa
//   three_ds:    the order needs 3-D Secure: the page to open, and the outcome meanwhile
const [, , moduleUrl, base, scenario, orderJson] = process.argv;
const { createCheckout } = await import(moduleUrl);

class Memory {
  items = new Map();
  getItem(key) {
    return this.items.get(key) ?? null;
  }
  setItem(key, value) {
    this.items.set(key, value);
  }
  removeItem(key) {
    this.items.delete(key);
  }
}

const posts = [];
const opened = [];
let drop = scenario === "lost_answer" ? 1 : 0;
const fetcher = async (url, init) => {
  const response = await fetch(url, init);
  if (init.method === "POST") {
    const key = new Headers(init.headers).get("idempotency-key");
    const replayed = response.headers.get("idempotent-replayed") === "true";
    posts.push({ url, key, status: response.status, replayed });
    if (drop > 0) {
      drop -= 1;
      await response.text(); // the server answered; the shopper's network lost it
      throw new TypeError("the answer was lost");
    }
  }
  return response;
};

const checkout = createCheckout({
  name: scenario,
  endpoint: `${base}/v1/orders`,
  payAgainEndpoint: (orderId) => `${base}/v1/orders/${orderId}/payments`,
  fetch: fetcher,
  session: new Memory(),
  local: new Memory(),
  navigate: (url) => opened.push(url),
  online: () => true,
  locale: "en",
  // far past what a loaded machine takes; only 3-D Secure waits it out (nobody authenticates)
  retry: { firstMs: 50, giveUpAfterMs: 60_000 },
  watch: { firstMs: 100, maxMs: 500, giveUpAfterMs: scenario === "three_ds" ? 1_500 : 60_000 },
});
const events = [];
for (const type of ["retrying", "accepted", "redirect", "status"]) {
  checkout.on(type, (detail) => events.push({ type, state: detail.state, reason: detail.reason }));
}

const first = await checkout.submit(JSON.parse(orderJson));
const again = scenario === "declined" && first.status === "failed" ? await first.payAgain.pay("pm_card_visa") : null;
const { payAgain, ...shown } = first;
console.log(JSON.stringify({ first: { ...shown, payable: Boolean(payAgain?.pay) }, again, posts, opened, events }));
