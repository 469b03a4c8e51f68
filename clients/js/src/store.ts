/**
 * Where a checkout is kept between pages. The whole record (with the order's body, which
 * holds the shopper's details) goes to sessionStorage: it survives a refresh and the back
 * button, and goes with the tab. A copy without any body goes to localStorage: a checkout
 * whose tab was closed resumes from it with the same key, never a second order.
 */

/** The part of the Web Storage API used here (sessionStorage and localStorage have it). */
export interface KeyValue {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** The shopper must open a page: 3-D Secure, Alipay's cashier, WeChat Pay's H5 page. */
export interface RedirectAction {
  type: "redirect";
  redirect_url: string;
}

/** The shopper must scan `code_url` as a QR code with the wallet's app (WeChat Pay Native). */
export interface ScanQrCodeAction {
  type: "scan_qr_code";
  code_url: string;
  expires_at: string;
}

/** orderguard's `next_action`. */
export type NextAction = RedirectAction | ScanQrCodeAction;

/** One keyed request: its key, the fingerprint of its body, and whether it went out. */
export interface Keyed {
  key: string;
  fp: string;
  /** Sent at least once, with no definite refusal since: the key may have made something. */
  sent: boolean;
  /** The body, to send again after a refresh (sessionStorage only). */
  body?: unknown;
}

/** A checkout as kept between pages. */
export interface CheckoutRecord {
  /** The checkout's id (resumable). */
  id: string;
  /** The order request. */
  order: Keyed;
  /** A pay-again request in progress. */
  pay?: Keyed;
  orderId?: string;
  statusUrl?: string;
  /** The order's last known state. */
  state?: string;
  action?: NextAction;
  /** The payment method of the order's last attempt, when the answer named it. */
  method?: string;
  /** The last page opened for the shopper (opened once, not again on return). */
  opened?: string;
}

/** The checkout's record in both storages; a storage that throws (private mode, disabled)
 * is replaced by memory, so the checkout still works within the page. */
export class RecordStore {
  private readonly memory = new Map<string, string>();

  constructor(
    private readonly name: string,
    private readonly session: KeyValue | undefined,
    private readonly local: KeyValue | undefined,
  ) {}

  load(): CheckoutRecord | undefined {
    const text = this.get(this.session, "s") ?? this.get(this.local, "l");
    try {
      return text ? (JSON.parse(text) as CheckoutRecord) : undefined;
    } catch {
      return undefined;
    }
  }

  save(record: CheckoutRecord): void {
    this.set(this.session, "s", JSON.stringify(record));
    const bare = { ...record, order: withoutBody(record.order) };
    if (record.pay) bare.pay = withoutBody(record.pay);
    this.set(this.local, "l", JSON.stringify(bare));
  }

  clear(): void {
    for (const [storage, tag] of [[this.session, "s"], [this.local, "l"]] as const) {
      this.memory.delete(tag);
      try {
        storage?.removeItem(this.name);
      } catch {
        /* nothing kept there */
      }
    }
  }

  private get(storage: KeyValue | undefined, tag: string): string | null {
    try {
      if (storage) return storage.getItem(this.name);
    } catch {
      /* fall back to memory */
    }
    return this.memory.get(tag) ?? null;
  }

  private set(storage: KeyValue | undefined, tag: string, text: string): void {
    this.memory.set(tag, text);
    try {
      storage?.setItem(this.name, text);
    } catch {
      /* quota or disabled: kept in memory for this page */
    }
  }
}

function withoutBody(keyed: Keyed): Keyed {
  return { key: keyed.key, fp: keyed.fp, sent: keyed.sent };
}

/** A new random id: an Idempotency-Key or a checkout id. */
export function newId(): string {
  const c = globalThis.crypto;
  if (c?.randomUUID) return c.randomUUID();
  const bytes = new Uint8Array(16);
  c.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A short fingerprint of a JSON value, the same whatever the order of its object keys
 * (tells "the same cart again" from "another cart"; not a security measure). */
export function fingerprint(value: unknown): string {
  const text = canonical(value);
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return (h2 >>> 0).toString(16) + (h1 >>> 0).toString(16);
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}
