// A stand-in for Cloudflare's D1 REST query route, in front of a real local D1 database
// (workerd's own D1, through the DB binding). Cloudflare's API is not emulated by Miniflare;
// this Worker answers the one route the fleet calls, in the API's envelope:
//   POST /client/v4/accounts/:account/d1/database/:database/query  {sql, params} | {batch}
// PUT /__outage with "on" or "off" makes every API call answer 503 (an outage) or not; the
// test's own reads (header x-test-reader) are served throughout.

const QUERY_ROUTE = /^\/client\/v4\/accounts\/([^/]+)\/d1\/database\/([^/]+)\/query$/;
let outage = false;

function envelope(status, result, errors = []) {
  return Response.json(
    { success: status < 400, errors, messages: [], result },
    { status },
  );
}

async function query(request, env) {
  const body = await request.json();
  const items = Array.isArray(body.batch) ? body.batch : [body];
  const statements = items.map((item) =>
    env.DB.prepare(item.sql).bind(...(item.params ?? [])),
  );
  try {
    const results = await env.DB.batch(statements);
    return envelope(
      200,
      results.map((r) => ({ results: r.results, success: r.success, meta: r.meta })),
    );
  } catch (error) {
    return envelope(400, null, [{ code: 7500, message: String(error.message ?? error) }]);
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/__outage" && request.method === "PUT") {
      outage = (await request.text()).trim() === "on";
      return new Response(outage ? "on" : "off");
    }
    if (outage && !request.headers.has("x-test-reader")) {
      return envelope(503, null, [{ code: 10000, message: "outage (test)" }]);
    }
    const match = QUERY_ROUTE.exec(url.pathname);
    if (!match || request.method !== "POST") {
      return envelope(404, null, [{ code: 7003, message: "no such route" }]);
    }
    if (match[2] !== env.DATABASE_ID) {
      return envelope(404, null, [{ code: 7404, message: "no such database" }]);
    }
    if (request.headers.get("authorization") !== `Bearer ${env.API_TOKEN}`) {
      return envelope(403, null, [{ code: 10000, message: "Authentication error" }]);
    }
    return query(request, env);
  },
};
