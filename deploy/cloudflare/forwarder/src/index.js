// videofleet forwarder: a Queues push consumer that POSTs each batch of R2 event notifications
// to the producer's HTTP endpoint, for deployments that prefer push over the HTTP pull consumer.
//
// Body sent: [{id, attempts, timestamp, body}, ...] (timestamp as an ISO-8601 string).
// Auth: "Authorization: Bearer <INGEST_TOKEN>", plus the Cloudflare Access service-token headers
// when CF_ACCESS_CLIENT_ID / CF_ACCESS_CLIENT_SECRET are set (origin behind Access).
// 2xx -> ackAll(); anything else, or a network error -> retryAll() with an exponential delay
// (RETRY_BASE_DELAY_S, 30 s unless set, doubling per attempt).
// After max_retries (wrangler.toml) Queues moves the messages to the dead-letter queue.

import { baseDelaySeconds, batchPayload, requestHeaders, retryDelaySeconds } from "./batch.js";

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
    const delaySeconds = retryDelaySeconds(attempts, { baseDelayS: baseDelaySeconds(env) });
    console.warn(
      `videofleet forwarder: ${batch.messages.length} messages not accepted (${status}); ` +
        `retrying in ${delaySeconds} s (attempt ${attempts})`,
    );
    batch.retryAll({ delaySeconds });
  },
};
