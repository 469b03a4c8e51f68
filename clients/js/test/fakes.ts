/**
 * Fakes for the checkout's tests: Web Storage in memory, and a shop back end in front of
 * an orderguard that keeps one order per Idempotency-Key (as the real one does), whose
 * answers can be lost after the order was made, refused, or never reached.
 */
import type { KeyValue } from "../src/index";

export class FakeStorage implements KeyValue {
  readonly items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
  /** Everything stored, as one text (to look for what must not be there). */
  dump(): string {
    return [...this.items.values()].join("\n");
  }
}

export interface Sent {
  url: string;
  method: string;
  key: string | null;
  body: unknown;
}

/** What the server does with the next order or pay request. */
export type Fault =
  | "lose_answer" // the order is made, the answer never comes back
  | "unreachable" // the request never reaches the server
  | "hang" // no answer at all until the caller gives up (the order is made)
  | { status: number; type?: string; retryAfter?: number }; // answered so, nothing made

export class FakeShop {
  readonly requests: Sent[] = [];
  /** Idempotency-Key -> order id: what orderguard keeps. */
  readonly orders = new Map<string, string>();
  readonly payments = new Map<string, string>();
  /** Applied to the next POSTs, first first. */
  faults: Fault[] = [];
  /** The order's state in the answer to the order request. */
  placedState = "payment_pending";
  nextAction: unknown = null;
  /** The states the status endpoint answers, one per poll (the last one stays). */
  states: (string | { status: number })[] = ["paid"];
  reason: string | null = null;
  paidAgainState = "payment_pending";
  polls = 0;

  readonly fetch = async (url: string, init: RequestInit): Promise<Response> => {
    const headers = new Headers(init.headers);
    const body = init.body ? JSON.parse(String(init.body)) : undefined;
    this.requests.push({ url, method: init.method ?? "GET", key: headers.get("idempotency-key"), body });
    if ((init.method ?? "GET") === "GET") return this.status();
    const fault = this.faults.shift();
    if (fault === "unreachable") throw new TypeError("Failed to fetch");
    if (typeof fault === "object") {
      const problem = { type: `/problems/${fault.type ?? "validation"}`, status: fault.status };
      const extra: Record<string, string> = fault.retryAfter ? { "Retry-After": String(fault.retryAfter) } : {};
      return json(problem, fault.status, extra);
    }
    const answer = url.includes("/payments") ? this.payAgain(url, headers) : this.place(headers);
    if (fault === "lose_answer") throw new TypeError("network connection was lost");
    if (fault === "hang") {
      return new Promise((_, reject) =>
        init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))),
      );
    }
    return answer;
  };

  get orderIds(): string[] {
    return [...new Set(this.orders.values())];
  }

  private place(headers: Headers): Response {
    const key = headers.get("idempotency-key") ?? "";
    const replay = this.orders.has(key);
    if (!replay) this.orders.set(key, `ord_${this.orders.size + 1}`);
    const id = this.orders.get(key) as string;
    return json(
      {
        id,
        state: this.placedState,
        status_url: `https://og.test/orders/${id}?token=tok_${id}`,
        next_action: this.nextAction,
      },
      replay ? 200 : 201,
    );
  }

  private payAgain(url: string, headers: Headers): Response {
    const key = headers.get("idempotency-key") ?? "";
    const parts = url.split("/");
    const id = parts[parts.length - 2] as string;
    if (!this.payments.has(key)) this.payments.set(key, id);
    return json(
      { id, state: this.paidAgainState, status_url: `https://og.test/orders/${id}?token=tok_${id}`, next_action: null },
      201,
    );
  }

  private status(): Response {
    const now = this.states[Math.min(this.polls, this.states.length - 1)];
    this.polls += 1;
    if (typeof now === "object") return json({ detail: "down" }, now.status);
    return json({ state: now, updated_at: "2026-12-04T10:00:00+00:00", reason: this.reason }, 200);
  }
}

function json(body: unknown, status: number, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/** A cart as a shop would send it. */
export const CART = {
  currency: "EUR",
  items: [{ sku: "TS-1", name: "T-shirt", quantity: 2, unit_amount: 1999 }],
  customer: { email: "ana@example.com", name: "Ana Silva" },
  payment: { method: "pm_card_visa" },
};
