/** One HTTP exchange with a deadline, its loss told apart from its answer. */

/** What came back from one try. */
export type Reply =
  | { lost: false; status: number; body: unknown; retryAfterMs?: number }
  | { lost: true; why: "timeout" | "network" };

/** The `fetch` the library calls (the browser's, or the shop's or a test's own). */
export type Fetch = (url: string, init: RequestInit) => Promise<Response>;

/**
 * Sends one request and waits at most `timeoutMs` for its whole answer. A network error, a
 * timeout or a 2xx answer whose body cannot be read are all "lost": the request may have
 * reached the server, so only a retry with the same key may follow.
 */
export async function exchange(
  fetcher: Fetch,
  url: string,
  init: RequestInit,
  timeoutMs: number,
): Promise<Reply> {
  const abort = typeof AbortController === "function" ? new AbortController() : undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => {
      abort?.abort();
      resolve("timeout");
    }, timeoutMs);
  });
  const read = (async () => {
    const response = await fetcher(url, { ...init, signal: abort?.signal ?? null });
    return { response, text: await response.text() };
  })().catch(() => "network" as const);
  const got = await Promise.race([read, deadline]);
  clearTimeout(timer);
  if (got === "timeout" || got === "network") return { lost: true, why: got };
  const { response, text } = got;
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    if (response.ok) return { lost: true, why: "network" };
  }
  const after = Number(response.headers.get("retry-after"));
  return after > 0
    ? { lost: false, status: response.status, body, retryAfterMs: after * 1000 }
    : { lost: false, status: response.status, body };
}
