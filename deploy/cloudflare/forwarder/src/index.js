// videofleet forwarder: a Queues push consumer that POSTs each batch of R2 event notifications
// to the producer's HTTP endpoint, for deployments that prefer push over the HTTP pull consumer.
//
// Body sent: [{id, attempts, timestamp, body}, ...] (timestamp as an ISO-8601 string).
// Auth: "Authorization: Bearer <INGEST_TOKEN>", plus the Cloudflare Access service-token headers
// when CF_ACCESS_CLIENT_ID / CF_ACCESS_CLIENT_SECRET are set (origin behind Access).
// 2xx -> ackAll(); anything else, or a network error -> retryAll() with an exponential delay.
// After max_retries (wrangler.toml) Queues moves the messages to the dead-letter queue.

export const BASE_DELAY_S = 30;
export const MAX_DELAY_S = 43200; // Queues' ceiling for delaySeconds (12 h)

/** Delay before the next attempt: 30 s, 60 s, 120 s ... capped at 12 h. */
export function retryDelaySeconds(attempts) {
  const exponent = Math.max(0, (attempts || 1) - 1);
  return Math.min(BASE_DELAY_S * 2 ** exponent, MAX_DELAY_S);
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

export default {
  async queue(batch, env) {
    const attempts = Math.max(...batch.messages.map((m) => m.attempts || 1));
    let status = "no response";
    try {
      const response = await fetch(env.INGEST_URL, {
        method: "POST",
        headers: requestHeaders(env),
        body: JSON.stringify(batchPayload(batch.messages)),
      });
      if (response.ok) {
        batch.ackAll();
        return;
      }
      status = `HTTP ${response.status}`;
    } catch (error) {
      status = String(error);
    }
    const delaySeconds = retryDelaySeconds(attempts);
    console.warn(
      `videofleet forwarder: ${batch.messages.length} messages not accepted (${status}); ` +
        `retrying in ${delaySeconds} s (attempt ${attempts})`,
    );
    batch.retryAll({ delaySeconds });
  },
};
