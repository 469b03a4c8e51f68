// A shop's page as TypeScript sees the published package (dist/ through package.json's
// "exports" and "types"): `npm test` type-checks it after the build, with Node's module
// resolution, the strictest a consumer uses.
import { createCheckout, CheckoutError, type Outcome } from "@orderguard/checkout";

const checkout = createCheckout({ endpoint: "/checkout/orders", locale: "zh-CN" });
checkout.on("retrying", ({ message, delayMs }) => console.log(message, delayMs));

export async function pay(cart: { sku: string; quantity: number }[]): Promise<string> {
  try {
    const outcome: Outcome = await checkout.submit({ items: cart });
    if (outcome.status === "failed") return outcome.reason + (outcome.payAgain?.orderId ?? "");
    return outcome.status === "paid" ? outcome.orderId : outcome.message;
  } catch (error) {
    return error instanceof CheckoutError ? error.code : "?";
  }
}
