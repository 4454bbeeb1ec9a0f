// The forwarder's pure parts: retry delays, the POSTed document, the request headers.
// They live apart from index.js because workerd takes every named export of the main module
// for an entrypoint and refuses to start when one is a constant or a plain function.

export const BASE_DELAY_S = 30;
export const MAX_DELAY_S = 43200; // Queues' ceiling for delaySeconds (12 h)

/** Delay before the next attempt: 30 s, 60 s, 120 s ... capped at 12 h (base: RETRY_BASE_DELAY_S). */
export function retryDelaySeconds(attempts, { baseDelayS = BASE_DELAY_S } = {}) {
  const exponent = Math.max(0, (attempts || 1) - 1);
  return Math.min(baseDelayS * 2 ** exponent, MAX_DELAY_S);
}

/** The first retry delay from the RETRY_BASE_DELAY_S variable, else 30 s. */
export function baseDelaySeconds(env) {
  const value = Number(env.RETRY_BASE_DELAY_S);
  return Number.isFinite(value) && value >= 0 ? value : BASE_DELAY_S;
}

/** The JSON document POSTed for a batch. */
export function batchPayload(messages) {
  return messages.map((m) => ({
    id: m.id,
    attempts: m.attempts,
    timestamp: m.timestamp instanceof Date ? m.timestamp.toISOString() : m.timestamp,
    body: m.body,
  }));
}

/** Request headers, from the Worker's secrets and variables. */
export function requestHeaders(env) {
  if (!env.INGEST_TOKEN) {
    throw new Error("INGEST_TOKEN is not set: npx wrangler secret put INGEST_TOKEN");
  }
  const headers = {
    "content-type": "application/json",
    authorization: `Bearer ${env.INGEST_TOKEN}`,
  };
  if (env.CF_ACCESS_CLIENT_ID && env.CF_ACCESS_CLIENT_SECRET) {
    headers["CF-Access-Client-Id"] = env.CF_ACCESS_CLIENT_ID;
    headers["CF-Access-Client-Secret"] = env.CF_ACCESS_CLIENT_SECRET;
  }
  return headers;
}
