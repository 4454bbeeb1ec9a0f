// Run with: node --test deploy/cloudflare/forwarder/test/  (Node >= 18, no dependencies)
// The Worker is exercised against a real local HTTP server.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, test } from "node:test";

import { retryDelaySeconds } from "../src/batch.js";
import worker from "../src/index.js";

let server;
let url;
const received = [];
let nextStatus = 200;

before(async () => {
  server = http.createServer((req, res) => {
    let data = "";
    req.on("data", (chunk) => (data += chunk));
    req.on("end", () => {
      received.push({ headers: req.headers, body: JSON.parse(data) });
      res.writeHead(nextStatus, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${server.address().port}/events`;
});

after(() => server.close());

function fakeBatch(attempts) {
  const calls = { ackAll: 0, retryAll: [] };
  const body = { action: "PutObject", bucket: "b", object: { key: "uploads/a.mp4" } };
  return {
    calls,
    messages: [
      { id: "m1", attempts, timestamp: new Date(0), body },
      { id: "m2", attempts: 1, timestamp: new Date(1000), body },
    ],
    ackAll: () => (calls.ackAll += 1),
    retryAll: (options) => calls.retryAll.push(options),
  };
}

test("a 2xx answer acks the whole batch and posts it with the bearer token", async () => {
  nextStatus = 202;
  const batch = fakeBatch(1);
  await worker.queue(batch, { INGEST_URL: url, INGEST_TOKEN: "s3cret" });
  assert.equal(batch.calls.ackAll, 1);
  assert.deepEqual(batch.calls.retryAll, []);
  const last = received.at(-1);
  assert.equal(last.headers.authorization, "Bearer s3cret");
  assert.equal(last.headers["cf-access-client-id"], undefined);
  assert.deepEqual(last.body[0], {
    id: "m1",
    attempts: 1,
    timestamp: "1970-01-01T00:00:00.000Z",
    body: { action: "PutObject", bucket: "b", object: { key: "uploads/a.mp4" } },
  });
  assert.equal(last.body.length, 2);
});

test("Access service-token headers are sent when configured", async () => {
  nextStatus = 200;
  const env = {
    INGEST_URL: url,
    INGEST_TOKEN: "t",
    CF_ACCESS_CLIENT_ID: "id.access",
    CF_ACCESS_CLIENT_SECRET: "secret",
  };
  await worker.queue(fakeBatch(1), env);
  const headers = received.at(-1).headers;
  assert.equal(headers["cf-access-client-id"], "id.access");
  assert.equal(headers["cf-access-client-secret"], "secret");
});

test("an error answer retries the batch with an exponential delay", async () => {
  nextStatus = 503;
  const batch = fakeBatch(3);
  await worker.queue(batch, { INGEST_URL: url, INGEST_TOKEN: "t" });
  assert.equal(batch.calls.ackAll, 0);
  assert.deepEqual(batch.calls.retryAll, [{ delaySeconds: 120 }]);
});

test("an unreachable endpoint retries the batch", async () => {
  const batch = fakeBatch(1);
  await worker.queue(batch, { INGEST_URL: "http://127.0.0.1:1/events", INGEST_TOKEN: "t" });
  assert.deepEqual(batch.calls.retryAll, [{ delaySeconds: 30 }]);
});

test("a missing token is a retry, never a silent ack", async () => {
  const batch = fakeBatch(1);
  await worker.queue(batch, { INGEST_URL: url });
  assert.equal(batch.calls.ackAll, 0);
  assert.equal(batch.calls.retryAll.length, 1);
});

test("the delay doubles from 30 s and stops at 12 h", () => {
  assert.deepEqual([1, 2, 3, 4].map(retryDelaySeconds), [30, 60, 120, 240]);
  assert.equal(retryDelaySeconds(100), 43200);
});
