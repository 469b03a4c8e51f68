/**
 * Pure policies: how long to wait before the next try, what an answer from the shop's
 * back end means for a request sent with an Idempotency-Key, and what an order's state
 * means to the shopper. Kept apart so each is tested without timers or a network.
 */

/** An exponential schedule, capped. */
export interface Backoff {
  /** The first wait, in milliseconds. */
  firstMs: number;
  /** The longest wait. */
  maxMs: number;
  /** How much longer each wait is than the one before. */
  factor: number;
}

/**
 * The wait before retry number `attempt` (0: the first retry): exponential and capped,
 * then cut to between half and all of it by `random` (0..1), so that shoppers dropped by
 * one outage do not all come back at the same instant.
 */
export function backoffDelay(attempt: number, backoff: Backoff, random: number): number {
  const full = Math.min(backoff.maxMs, backoff.firstMs * Math.pow(backoff.factor, attempt));
  return Math.round(full * (0.5 + random / 2));
}

/** What the shop's page shows when the checkout settles. */
export type OutcomeStatus = "paid" | "failed" | "confirming";

/**
 * What an order's state means at the checkout. Only a definite answer is `failed`: a
 * declined payment (`payment_failed`) or an order that will never be paid (`cancelled`).
 * Everything else, a payment in progress, waiting on the shopper, an unknown outcome and
 * any state this version does not know, is `confirming`: never a false failure.
 */
export function outcomeOf(state: string | undefined): OutcomeStatus {
  if (state === "paid" || state === "refunded") return "paid";
  if (state === "payment_failed" || state === "cancelled") return "failed";
  return "confirming";
}

/** What to do with an answer to a keyed request. */
export type Verdict = "accepted" | "retry" | "refused" | "key_reused";

/** The 409 problems that are definite: the merchant reference is another order's, or the
 * order may not be paid again in its state. */
const DEFINITE_CONFLICTS = ["duplicate-merchant-reference", "payment-not-allowed"];

/**
 * An answer's meaning for a request sent with an Idempotency-Key. 2xx: accepted. 408, 425,
 * 429, any 5xx and any other 409 (orderguard's `request-in-flight`, or a back end that
 * passes on no problem body): the answer is not known yet, retry with the same key. 422 `idempotency-key-reused`: the key already made an
 * order with another body. Any other status: refused, nothing was stored.
 */
export function verdict(status: number, problemType: string | undefined): Verdict {
  const type = problemType ?? "";
  if (status >= 200 && status < 300) return "accepted";
  if (status === 409) {
    return DEFINITE_CONFLICTS.some((slug) => type.endsWith(slug)) ? "refused" : "retry";
  }
  if (status === 422 && type.endsWith("idempotency-key-reused")) return "key_reused";
  if (status === 408 || status === 425 || status === 429 || status >= 500) return "retry";
  return "refused";
}
