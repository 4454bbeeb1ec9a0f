// Puts message bodies on the local queue the forwarder consumes, as R2's event notifications
// would: POST a JSON list of bodies; they are sent in one sendBatch.
export default {
  async fetch(request, env) {
    if (request.method !== "POST") {
      return new Response("POST a JSON list of message bodies", { status: 405 });
    }
    const bodies = await request.json();
    await env.QUEUE.sendBatch(bodies.map((body) => ({ body })));
    return Response.json({ sent: bodies.length });
  },
};
