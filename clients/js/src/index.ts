/**
 * @orderguard/checkout: the shopper's side of orderguard. One order per checkout, whatever
 * the network, the double click, the refresh, the back button or a closed tab do; the
 * shopper's step outside the shop (3-D Secure, a wallet) followed; and an outcome that is
 * never "failed" while the payment's outcome is unknown.
 *
 * The browser never holds an API key: `endpoint` is the shop's own back end, which passes
 * the body and the `Idempotency-Key` header on to orderguard's `POST /v1/orders` and
 * answers orderguard's answer as it came.
 */
import { exchange, type Fetch } from "./http.js";
import { backoffDelay, outcomeOf, verdict, type Backoff } from "./policy.js";
import {
  RecordStore,
  fingerprint,
  newId,
  type CheckoutRecord,
  type KeyValue,
  type NextAction,
} from "./store.js";
import { hasText, pickLocale, translate, type Locale } from "./texts.js";

export type { Backoff, OutcomeStatus } from "./policy.js";
export { backoffDelay, outcomeOf } from "./policy.js";
export type { KeyValue, NextAction, RedirectAction, ScanQrCodeAction } from "./store.js";
export type { Fetch } from "./http.js";
export type { Locale } from "./texts.js";
export { translate } from "./texts.js";

/** The order as the shop's back end takes it (orderguard's `PlaceOrderIn`, or the shop's
 * own cart): sent as JSON, the same bytes again on every retry. */
export interface OrderRequest {
  [field: string]: unknown;
}

/** How long to keep trying before settling on `confirming`. */
export interface Schedule extends Backoff {
  giveUpAfterMs: number;
}

/** What the shop gives `createCheckout`. Only `endpoint` is needed. */
export interface CheckoutOptions {
  /** The shop's back end that places the order (passes it on to `POST /v1/orders`). */
  endpoint: string;
  /** The shop's back end that pays a declined order again (passes `{"payment": {"method"}}`
   * on to `POST /v1/orders/{id}/payments`); without it a failed order offers no `pay`. */
  payAgainEndpoint?: (orderId: string) => string;
  /** The URL polled for the order's state (default: orderguard's `/orders/{id}/status`
   * beside the status page; give the shop's own when orderguard is on another origin). */
  statusEndpoint?: (statusUrl: string, orderId: string) => string;
  /** Names the checkout in storage: one shop page with two checkouts names them apart. */
  name?: string;
  /** The shopper's language (default: the order's `locale`, else the browser's). */
  locale?: Locale | undefined;
  /** Headers sent with every request to the shop's back end (a CSRF token...). */
  headers?: Record<string, string>;
  fetch?: Fetch;
  /** Storage for the whole checkout (default: sessionStorage; null: memory only). */
  session?: KeyValue | null;
  /** Storage for the resumable checkout (default: localStorage; null: none). */
  local?: KeyValue | null;
  /** Opens a page for the shopper (default: `location.assign`). */
  navigate?: (url: string) => void;
  /** Shows a wallet's QR code; may return a function that hides it again. Without it the
   * shopper is sent to the order's status page, which shows the code. */
  showCode?: (code: ShownCode) => void | (() => void);
  /** Whether the browser is online (default: `navigator.onLine`). */
  online?: () => boolean;
  /** How long one request may take before it counts as lost (default 15 s). */
  timeoutMs?: number;
  /** Retries of a lost order request (default 0.5 s doubling to 8 s, for 60 s). */
  retry?: Partial<Schedule>;
  /** Polling of the order's state (default 1 s, x1.5 up to 10 s, for 120 s; while a QR
   * code waits, until it expires, 30 minutes at most). */
  watch?: Partial<Schedule>;
  /** Jitter source, 0..1 (tests pin it). */
  random?: () => number;
}

/** A wallet's QR code for the shop to show (`codeUrl` drawn as a QR code, never opened). */
export interface ShownCode {
  orderId: string;
  codeUrl: string;
  expiresAt: string;
  /** The code's accessible label, in the shopper's language. */
  label: string;
  /** How to scan and pay, in the shopper's language. */
  instructions: string;
}

interface Settled {
  orderId?: string;
  statusUrl?: string;
  /** orderguard's order state, when known. */
  state?: string;
  /** The state in the shopper's words. */
  title: string;
  /** What happens next, in the shopper's words. */
  message: string;
}

/** Paid: the provider confirmed the charge. */
export interface Paid extends Settled {
  status: "paid";
  orderId: string;
}

/** Failed for certain: declined, or the order was cancelled. Nothing was charged. */
export interface Failed extends Settled {
  status: "failed";
  orderId: string;
  /** Why, in the shopper's words (the status page's words). */
  reason: string;
  /** The catalog key of `reason` (`why.insufficient_funds`...). */
  reasonKey: string;
  /** Paying again: only for a declined order (not a cancelled one). */
  payAgain?: PayAgainHandle;
}

/** Not settled yet: the payment is in progress, waits on the shopper, or its outcome is
 * unknown. Without `orderId` the order's answer never came: submitting the same order
 * again (or `resume()`) sends it with the same key. */
export interface Confirming extends Settled {
  status: "confirming";
  /** The step the shopper still has to take outside the shop, when there is one. */
  nextAction?: NextAction;
}

export type Outcome = Paid | Failed | Confirming;

/** What a declined order offers: its status page, and paying through the shop again. */
export interface PayAgainHandle {
  orderId: string;
  statusUrl?: string;
  pay?: (method: string) => Promise<Outcome>;
}

/** Why a retry waits. */
export type RetryReason = "offline" | "timeout" | "network" | "busy";

/** What the shop's UI may listen to with `checkout.on(type, listener)`. */
export interface CheckoutEvents {
  sending: { checkoutId: string; attempt: number; message: string };
  retrying: { attempt: number; delayMs: number; reason: RetryReason; message: string };
  accepted: { orderId: string; state: string; statusUrl?: string };
  redirect: { orderId: string; url: string };
  scan_qr_code: ShownCode;
  status: { orderId: string; state: string; title: string };
  outcome: Outcome;
}

/** A refusal: nothing happened, or the request cannot be made as asked. */
export class CheckoutError extends Error {
  constructor(
    /** `refused`: the back end refused the request (`status`, `problem`), nothing stored;
     * `order_changed`: this checkout's key already went out with another body (call
     * `reset()` only when the shopper really starts again); `no_order`: nothing to pay
     * again; `busy`: a request of this checkout is in flight. */
    readonly code: "refused" | "order_changed" | "no_order" | "busy",
    readonly status?: number,
    readonly problem?: unknown,
  ) {
    super(code + (status ? ` (${status})` : ""));
    this.name = "CheckoutError";
  }
}

/** A checkout: submit an order once, follow it to an outcome. */
export interface Checkout {
  /** The checkout's id (kept across pages), when one was started. */
  readonly id: string | undefined;
  /** Places `order` once for this checkout; resolves to its outcome. A second call while
   * the first runs returns the same promise. */
  submit(order: OrderRequest): Promise<Outcome>;
  /** Continues a checkout kept from an earlier page (after a refresh, the back button, the
   * return from 3-D Secure or a closed tab); `undefined` when there is none. */
  resume(): Promise<Outcome | undefined>;
  /** Pays the declined order again with `method` (through `payAgainEndpoint`). */
  payAgain(method: string): Promise<Outcome>;
  /** Forgets the checkout: the next `submit` is a new order. */
  reset(): void;
  on<K extends keyof CheckoutEvents>(
    type: K,
    listener: (detail: CheckoutEvents[K]) => void,
  ): () => void;
  /** A catalog text in the shopper's language. */
  text(key: string, values?: Record<string, string>): string;
}

interface Receipt {
  id: string;
  state: string;
  status_url?: string;
  next_action?: NextAction | null;
  payment_attempts?: { method?: string }[];
}

/** Checkouts running in this page, by storage name: two instances never race. */
const running = new Map<string, Promise<Outcome | undefined>>();

/** Creates the checkout named `options.name` (resuming what storage kept of it). */
export function createCheckout(options: CheckoutOptions): Checkout {
  const name = `orderguard.checkout.${options.name ?? "default"}`;
  const store = new RecordStore(
    name,
    storage(options.session, "sessionStorage"),
    storage(options.local, "localStorage"),
  );
  const listeners = new Map<string, Set<(detail: never) => void>>();
  const fetcher: Fetch = options.fetch ?? ((url, init) => fetch(url, init));
  const random = options.random ?? Math.random;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const retry = { firstMs: 500, maxMs: 8_000, factor: 2, giveUpAfterMs: 60_000, ...options.retry };
  const watching = { firstMs: 1_000, maxMs: 10_000, factor: 1.5, giveUpAfterMs: 120_000, ...options.watch };
  const online = options.online ?? (() => globalThis.navigator?.onLine !== false);
  const navigate = options.navigate ?? ((url: string) => globalThis.location.assign(url));
  let locale = options.locale;

  const t = (key: string, values?: Record<string, string>): string =>
    translate(locale ?? pickLocale(globalThis.navigator?.language), key, values);

  function emit<K extends keyof CheckoutEvents>(type: K, detail: CheckoutEvents[K]): void {
    for (const listener of listeners.get(type) ?? []) {
      try {
        (listener as (d: CheckoutEvents[K]) => void)(detail);
      } catch {
        /* a shop's listener never stops the checkout */
      }
    }
  }

  /** Runs `work` unless this checkout already runs something: then that one's promise. */
  function once<T extends Outcome | undefined>(work: () => Promise<T>): Promise<T> {
    const current = running.get(name);
    if (current) return current as Promise<T>;
    const started = work()
      .then((outcome) => {
        if (outcome) emit("outcome", outcome);
        return outcome;
      })
      .finally(() => running.delete(name));
    running.set(name, started);
    return started;
  }

  async function placeOrder(order: OrderRequest): Promise<Outcome> {
    if (typeof order.locale === "string") locale ??= pickLocale(order.locale);
    const fp = fingerprint(order);
    let record = store.load();
    if (record && record.order.fp !== fp) {
      if (record.orderId && outcomeOf(record.state) !== "confirming") record = undefined;
      else if (record.order.sent || record.orderId) throw new CheckoutError("order_changed");
    }
    record ??= { id: newId(), order: { key: newId(), fp, sent: false } };
    if (!record.orderId) {
      record.order = { key: record.order.key, fp, sent: true, body: order };
      store.save(record); // before the request: a refresh mid-flight keeps the key
      const receipt = await send(options.endpoint, record, "order");
      if (!receipt) return unanswered();
      accept(record, receipt, "order");
    }
    return follow(record);
  }

  async function resumeKept(): Promise<Outcome | undefined> {
    const record = store.load();
    if (!record) return undefined;
    if (!record.orderId) {
      if (!record.order.sent) return undefined; // never sent: nothing to resume
      if (record.order.body === undefined) return unanswered(); // closed tab: submit again
      const receipt = await send(options.endpoint, record, "order");
      if (!receipt) return unanswered();
      accept(record, receipt, "order");
    } else if (record.pay?.sent && record.pay.body !== undefined && payUrl(record)) {
      const receipt = await send(payUrl(record) as string, record, "pay");
      if (!receipt) return confirming(record);
      accept(record, receipt, "pay");
    }
    return follow(record);
  }

  async function payOnce(method: string): Promise<Outcome> {
    const record = store.load();
    const url = record && payUrl(record);
    if (!record || !url) throw new CheckoutError("no_order");
    const body = { payment: { method } };
    const fp = fingerprint(body);
    if (record.pay?.sent && record.pay.fp !== fp) throw new CheckoutError("order_changed");
    record.pay = { key: record.pay?.key ?? newId(), fp, sent: true, body };
    store.save(record);
    const receipt = await send(url, record, "pay");
    if (!receipt) return confirming(record); // the new attempt may exist: never "failed"
    accept(record, receipt, "pay");
    return follow(record);
  }

  function payUrl(record: CheckoutRecord): string | undefined {
    return record.orderId && options.payAgainEndpoint?.(record.orderId);
  }

  /** Sends `record[which]` until an answer comes, with the same key every time; undefined
   * when none came within the schedule (the request may have arrived, or not). */
  async function send(
    url: string,
    record: CheckoutRecord,
    which: "order" | "pay",
  ): Promise<Receipt | undefined> {
    const keyed = record[which];
    if (!keyed) return undefined;
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      let reason: RetryReason = "offline";
      let wait: number | undefined;
      if (online()) {
        emit("sending", { checkoutId: record.id, attempt, message: t("checkout.sending") });
        const reply = await exchange(
          fetcher,
          url,
          {
            method: "POST",
            headers: {
              "Content-Type": "application/json",
              Accept: "application/json",
              ...options.headers,
              "Idempotency-Key": keyed.key,
            },
            body: JSON.stringify(keyed.body),
          },
          timeoutMs,
        );
        if (reply.lost) reason = reply.why;
        else {
          const meaning = verdict(reply.status, problemType(reply.body));
          if (meaning === "accepted" && isReceipt(reply.body)) return reply.body;
          if (meaning === "refused") {
            keyed.sent = false; // nothing was stored: the shopper may correct the order
            store.save(record);
          }
          if (meaning === "refused" || meaning === "key_reused") {
            const code = meaning === "refused" ? "refused" : "order_changed";
            throw new CheckoutError(code, reply.status, reply.body);
          }
          reason = meaning === "retry" ? "busy" : "network"; // a 2xx that is no order: lost
          wait = reply.retryAfterMs;
        }
      }
      wait ??= backoffDelay(attempt, retry, random());
      if (Date.now() - started + wait > retry.giveUpAfterMs) return undefined;
      const message = t(reason === "offline" ? "checkout.offline" : "checkout.retrying");
      emit("retrying", { attempt: attempt + 1, delayMs: wait, reason, message });
      await pause(wait, reason === "offline");
    }
  }

  function accept(record: CheckoutRecord, receipt: Receipt, which: "order" | "pay"): void {
    record.orderId = receipt.id;
    record.state = receipt.state;
    if (receipt.status_url) record.statusUrl = receipt.status_url;
    if (receipt.next_action) record.action = receipt.next_action;
    else delete record.action;
    if (which === "order") delete record.order.body; // the shopper's details are not kept
    else delete record.pay; // done: a later decline pays again with a new key
    const attempts = receipt.payment_attempts ?? [];
    const method = attempts[attempts.length - 1]?.method;
    if (method) record.method = method;
    store.save(record);
    const accepted = { orderId: receipt.id, state: receipt.state };
    emit("accepted", record.statusUrl ? { ...accepted, statusUrl: record.statusUrl } : accepted);
  }

  /** Takes the shopper through the step outside the shop, if any, then watches the state. */
  async function follow(record: CheckoutRecord): Promise<Outcome> {
    const orderId = record.orderId as string;
    const action = record.state === "action_required" ? record.action : undefined;
    let hide: void | (() => void) = undefined;
    if (action?.type === "redirect" && record.opened !== action.redirect_url) {
      open(record, action.redirect_url, () => emit("redirect", { orderId, url: action.redirect_url }));
    } else if (action?.type === "scan_qr_code") {
      const wallet = t(walletKey(record.method));
      const scan = `scan.${record.method}`;
      const code: ShownCode = {
        orderId,
        codeUrl: action.code_url,
        expiresAt: action.expires_at,
        label: t("page.qr_label", { wallet }),
        instructions: t(hasText(scan) ? scan : "scan.any", { wallet }),
      };
      emit("scan_qr_code", code);
      if (options.showCode) hide = options.showCode(code);
      else if (record.statusUrl && record.opened !== record.statusUrl) open(record, record.statusUrl);
    }
    try {
      return await watch(record);
    } finally {
      if (typeof hide === "function") hide();
    }
  }

  function open(record: CheckoutRecord, url: string, announce?: () => void): void {
    record.opened = url; // kept first: back from that page, it is not opened again
    store.save(record);
    announce?.();
    navigate(url);
  }

  /** Polls the order's state with backoff until it is paid or failed, or gives up on
   * `confirming`; a poll that fails is only a reason to poll again. */
  async function watch(record: CheckoutRecord): Promise<Outcome> {
    const started = Date.now();
    let giveUpAt = started + watching.giveUpAfterMs;
    if (record.action?.type === "scan_qr_code" && record.state === "action_required") {
      const expires = Date.parse(record.action.expires_at) + 30_000;
      giveUpAt = Math.min(Math.max(giveUpAt, expires || 0), started + 30 * 60_000);
    }
    let reason: string | undefined;
    for (let attempt = 0; outcomeOf(record.state) !== "paid"; attempt++) {
      const seen = await readStatus(record);
      if (seen) {
        reason = seen.reason ?? undefined;
        if (seen.state !== record.state) {
          record.state = seen.state;
          store.save(record);
          emit("status", { orderId: record.orderId as string, state: seen.state, title: title(seen.state) });
        }
      }
      if (outcomeOf(record.state) !== "confirming") break;
      const left = giveUpAt - Date.now();
      if (left <= 0) break;
      await pause(Math.min(backoffDelay(attempt, watching, random()), left), false);
    }
    return settle(record, reason);
  }

  async function readStatus(
    record: CheckoutRecord,
  ): Promise<{ state: string; reason?: string | null } | undefined> {
    if (!record.statusUrl || !record.orderId) return undefined;
    const url =
      options.statusEndpoint?.(record.statusUrl, record.orderId) ??
      record.statusUrl.replace(/(\?|#|$)/, "/status$1");
    const reply = await exchange(
      fetcher,
      url,
      { method: "GET", headers: { Accept: "application/json" }, cache: "no-store" },
      timeoutMs,
    );
    if (reply.lost || reply.status !== 200) return undefined;
    const body = reply.body as { state?: unknown; reason?: unknown } | undefined;
    if (typeof body?.state !== "string") return undefined;
    return { state: body.state, reason: typeof body.reason === "string" ? body.reason : null };
  }

  function title(state: string | undefined): string {
    return t(hasText(`state.${state}`) ? `state.${state}` : "state.payment_unknown");
  }

  function settle(record: CheckoutRecord, why: string | undefined): Outcome {
    const orderId = record.orderId as string;
    const base = {
      orderId,
      ...(record.statusUrl ? { statusUrl: record.statusUrl } : {}),
      ...(record.state ? { state: record.state } : {}),
      title: title(record.state),
    };
    const status = outcomeOf(record.state);
    if (status === "paid") return { ...base, status, message: t("next.paid") };
    if (status === "failed") {
      const declined = record.state === "payment_failed";
      const reasonKey = !declined ? "next.cancelled" : why && hasText(why) ? why : "why.unknown";
      const reason = t(reasonKey);
      const message = declined ? t("next.payment_failed", { why: reason }) : reason;
      const failed: Failed = { ...base, status, reason, reasonKey, message };
      if (declined) failed.payAgain = payAgainHandle(record);
      return failed;
    }
    return confirming(record);
  }

  function payAgainHandle(record: CheckoutRecord): PayAgainHandle {
    const handle: PayAgainHandle = { orderId: record.orderId as string };
    if (record.statusUrl) handle.statusUrl = record.statusUrl;
    if (options.payAgainEndpoint) handle.pay = (method) => checkout.payAgain(method);
    return handle;
  }

  function confirming(record: CheckoutRecord): Confirming {
    const state = record.state ?? "payment_unknown";
    const next = hasText(`next.${state}`) ? `next.${state}` : "next.payment_unknown";
    const outcome: Confirming = {
      status: "confirming",
      title: title(state),
      message: t(next),
      state,
    };
    if (record.orderId) outcome.orderId = record.orderId;
    if (record.statusUrl) outcome.statusUrl = record.statusUrl;
    if (record.action && state === "action_required") outcome.nextAction = record.action;
    return outcome;
  }

  /** The order's answer never came: it may exist or not; the kept key settles it later. */
  function unanswered(): Confirming {
    return {
      status: "confirming",
      title: t("state.payment_unknown"),
      message: t(online() ? "checkout.retrying" : "checkout.offline"),
    };
  }

  const checkout: Checkout = {
    get id() {
      return store.load()?.id;
    },
    submit: (order) => once(() => placeOrder(order)),
    resume: () => once(resumeKept),
    payAgain: (method) => once(() => payOnce(method)),
    reset() {
      if (running.has(name)) throw new CheckoutError("busy");
      store.clear();
    },
    on(type, listener) {
      const set = listeners.get(type) ?? new Set();
      listeners.set(type, set);
      set.add(listener as (detail: never) => void);
      return () => set.delete(listener as (detail: never) => void);
    },
    text: t,
  };
  return checkout;
}

function walletKey(method: string | undefined): string {
  const key = `wallet.${method}`;
  return hasText(key) ? key : "wallet.wechatpay_native"; // the one method showing a code today
}

function storage(given: KeyValue | null | undefined, name: "sessionStorage" | "localStorage") {
  if (given !== undefined) return given ?? undefined;
  try {
    return globalThis[name] as KeyValue | undefined;
  } catch {
    return undefined; // storage disabled: the checkout lives in memory
  }
}

function problemType(body: unknown): string | undefined {
  const type = (body as { type?: unknown } | undefined)?.type;
  return typeof type === "string" ? type : undefined;
}

function isReceipt(body: unknown): body is Receipt {
  const r = body as Partial<Receipt> | undefined;
  return typeof r?.id === "string" && typeof r.state === "string";
}

/** Waits `ms`, or less when `untilOnline` and the browser comes back online first. */
function pause(ms: number, untilOnline: boolean): Promise<void> {
  return new Promise((resolve) => {
    const target = untilOnline ? globalThis.window : undefined;
    const done = (): void => {
      clearTimeout(timer);
      target?.removeEventListener?.("online", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    target?.addEventListener?.("online", done);
  });
}
