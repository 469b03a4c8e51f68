/**
 * The shopper-facing words, copied from orderguard's catalog (the same words as the
 * shopper's page) by `scripts/texts.py`; a test fails when the two differ.
 */
import catalog from "./texts.json";

/** The languages orderguard speaks to shoppers. */
export type Locale = "en" | "zh-CN";

const TEXTS: Record<Locale, Record<string, string>> = catalog;

/** `locale`'s text for `key` with its `{name}` placeholders filled, English when the
 * language lacks it, the key itself when the catalog has no such key. */
export function translate(locale: Locale, key: string, values: Record<string, string> = {}): string {
  const text = TEXTS[locale][key] ?? TEXTS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name: string) => values[name] ?? whole);
}

/** Whether the catalog has `key`. */
export function hasText(key: string): boolean {
  return key in TEXTS.en;
}

/** The locale of `wanted` (an order's `locale`, a browser's language), English by default. */
export function pickLocale(wanted: string | undefined): Locale {
  return wanted?.toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}
