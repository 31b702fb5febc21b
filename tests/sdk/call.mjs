// call.mjs — drives the official OpenAI or Anthropic client against airlock
// for the integration tests. Reads one JSON job on stdin:
//   {"sdk": "openai"|"anthropic", "baseURL": "...", "apiKey": "...",
//    "op": "chat"|"chat_stream"|"embeddings"|"models"|"messages"|"messages_stream",
//    "params": {...}, "headers": {...}}
// and prints one JSON line: {"ok": true, "result": ..., "chunks": [...]} or
// {"ok": false, "error_class": "RateLimitError", "status": 429, "code": ...,
//  "type": ..., "message": ..., "headers": {...}}. Never retries.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

async function readStdin() {
  let s = "";
  for await (const c of process.stdin) s += c;
  return JSON.parse(s);
}

async function run(job) {
  const opts = { baseURL: job.baseURL, apiKey: job.apiKey ?? "none", maxRetries: 0,
                 timeout: job.timeoutMs ?? 20000, defaultHeaders: job.headers ?? {} };
  const p = job.params ?? {};
  if (job.sdk === "anthropic") {
    const c = new Anthropic(opts);
    if (job.op === "messages") return { result: await c.messages.create(p) };
    if (job.op === "messages_stream") {
      const chunks = [];
      const s = await c.messages.create({ ...p, stream: true });
      for await (const ev of s) chunks.push(ev);
      return { chunks };
    }
  } else {
    const c = new OpenAI(opts);
    if (job.op === "chat") {
      const { data, response } = await c.chat.completions.create(p).withResponse();
      return { result: data, headers: Object.fromEntries(response.headers.entries()) };
    }
    if (job.op === "chat_stream") {
      const chunks = [];
      const s = await c.chat.completions.create({ ...p, stream: true });
      for await (const ch of s) chunks.push(ch);
      return { chunks };
    }
    if (job.op === "embeddings") return { result: await c.embeddings.create(p) };
    if (job.op === "models") {
      const out = [];
      for await (const m of c.models.list()) out.push(m);
      return { result: out };
    }
  }
  throw new Error("unknown job " + job.sdk + "/" + job.op);
}

const job = await readStdin();
try {
  const r = await run(job);
  process.stdout.write(JSON.stringify({ ok: true, ...r }) + "\n");
} catch (e) {
  const headers = e.headers ? Object.fromEntries(
    typeof e.headers.entries === "function" ? e.headers.entries() : Object.entries(e.headers)) : {};
  process.stdout.write(JSON.stringify({
    ok: false, error_class: e.constructor?.name ?? "Error", status: e.status ?? null,
    code: e.code ?? e.error?.error?.code ?? null, type: e.type ?? e.error?.error?.type ?? e.error?.type ?? null,
    message: String(e.message ?? e), headers }) + "\n");
}
