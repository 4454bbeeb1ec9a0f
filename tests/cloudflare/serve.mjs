// Runs a Worker in workerd (Miniflare) for the Python tests and writes {"url": ...} to a file
// once it listens; SIGTERM disposes of it (and of workerd).
//   node serve.mjs d1-api <ready-file> <persist-dir> <database-id> <api-token>
//   node serve.mjs forwarder <ready-file> <persist-dir> <ingest-url> <ingest-token>
// d1-api: workers/d1_api.js, Cloudflare's D1 query route over a real local D1 database.
// forwarder: deploy/cloudflare/forwarder as wrangler.toml configures it (wrangler's own
// reading of the file), consuming the local queue "video-events"; workers/queue_sender.js
// (the URL written) puts R2-shaped notifications on that queue, as R2 would.
import { writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const [mode, readyFile, persistTo, ...rest] = process.argv.slice(2);
const common = { host: "127.0.0.1", port: 0, d1Persist: persistTo, queuesPersist: persistTo };

function d1Api([databaseId, apiToken]) {
  return {
    ...common,
    modules: true,
    scriptPath: here("./workers/d1_api.js"),
    compatibilityDate: "2024-09-23",
    d1Databases: { DB: databaseId },
    bindings: { DATABASE_ID: databaseId, API_TOKEN: apiToken },
  };
}

function forwarder([ingestUrl, ingestToken]) {
  const config = unstable_getMiniflareWorkerOptions(here("../../deploy/cloudflare/wrangler.toml"));
  const consumer = {
    ...config.workerOptions,
    modules: true,
    scriptPath: config.main,
    modulesRoot: dirname(config.main),
    // wrangler deploy bundles the modules into one; unbundled, workerd needs to be told.
    modulesRules: [{ type: "ESModule", include: ["**/*.js"] }],
    // Secrets and the test's delays; everything else (queue, batch size, retries) is the file's.
    bindings: {
      ...config.workerOptions.bindings,
      INGEST_URL: ingestUrl,
      INGEST_TOKEN: ingestToken,
      RETRY_BASE_DELAY_S: "1",
    },
  };
  for (const options of Object.values(consumer.queueConsumers)) {
    options.maxBatchTimeout = 1;
  }
  const sender = {
    name: "queue-sender",
    modules: true,
    scriptPath: here("./workers/queue_sender.js"),
    compatibilityDate: config.workerOptions.compatibilityDate,
    queueProducers: { QUEUE: Object.keys(consumer.queueConsumers)[0] },
  };
  return { ...common, workers: [sender, consumer] };
}

const mf = new Miniflare(mode === "forwarder" ? forwarder(rest) : d1Api(rest));
const url = await mf.ready;
writeFileSync(readyFile, JSON.stringify({ url: url.origin }));
process.on("SIGTERM", async () => {
  await mf.dispose();
  process.exit(0);
});
