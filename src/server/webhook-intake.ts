// The webhook endpoint takes requests from anyone who can reach it, and the
// signature that says a delivery is GitHub's is computed over the whole body,
// so the body is read before anything can be checked. Probot's middleware
// buffers it without a bound: a request of a few gigabytes, or many slow ones,
// would take the process down. Here the body of what could be a delivery (a
// JSON POST to the webhook path with GitHub's three headers; anything else is
// answered by Probot's middleware without reading a byte) is read first:
// - up to what GitHub ever sends (it caps a payload at 25 MB and does not
//   deliver larger ones): a larger body is answered 413 from its
//   Content-Length before a byte is read, or once the bytes read pass it;
// - within a deadline (GitHub gives up on a delivery after 10 s): 408;
// - within a budget of bytes held for all requests being read at once: 503,
//   so many half-sent bodies cannot add up.
// The connection of a refused request is closed. A body read whole is checked
// against its signature here, with Probot's secret: one that does not match is
// answered 400 and logged in one short line (its delivery id, event and size).
// Probot's middleware logged such a request as an error carrying the whole
// payload — anyone who can reach the endpoint could write 25 MB log lines of
// their choosing. A signed body is handed to Probot's middleware, which takes
// a request's `body` string as the payload (and checks the signature again).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Probot } from 'probot';

export interface IntakeLimits {
  /** bytes of one body (GitHub caps a payload at 25 MB) */
  maxBodyBytes: number;
  /** bytes held for every body being read at once */
  maxPendingBytes: number;
  /** how long reading one body may take */
  readTimeoutMs: number;
}

export const DEFAULT_INTAKE: IntakeLimits = { maxBodyBytes: 25 * 1024 * 1024, maxPendingBytes: 64 * 1024 * 1024, readTimeoutMs: 30_000 };

/** GitHub caps a webhook payload at 25 MB (it does not deliver larger ones). */
export const MAX_WEBHOOK_BODY_BYTES = DEFAULT_INTAKE.maxBodyBytes;

type Handler = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;
type Refusal = { status: 408 | 413 | 503; why: string };

const DELIVERY_HEADERS = ['x-github-event', 'x-github-delivery', 'x-hub-signature-256'];

/** Reads bodies under the limits; `pending` is what every read under way holds. */
class BodyReader {
  private pending = 0;
  constructor(private readonly limits: IntakeLimits) {}

  read(req: IncomingMessage): Promise<Buffer | Refusal> {
    const { maxBodyBytes, maxPendingBytes, readTimeoutMs } = this.limits;
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBodyBytes) return Promise.resolve({ status: 413, why: `a webhook delivery is at most ${maxBodyBytes} bytes` });
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      const settle = (outcome: Buffer | Refusal | Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.pending -= size;
        req.off('data', onData);
        if (outcome instanceof Error) reject(outcome);
        else if (Buffer.isBuffer(outcome)) resolve(outcome);
        else {
          chunks.length = 0;
          req.pause();
          resolve(outcome);
        }
      };
      const timer = setTimeout(() => settle({ status: 408, why: `a webhook delivery is read within ${readTimeoutMs} ms` }), readTimeoutMs);
      const onData = (chunk: Buffer) => {
        if (size + chunk.length > maxBodyBytes) return settle({ status: 413, why: `a webhook delivery is at most ${maxBodyBytes} bytes` });
        if (this.pending + chunk.length > maxPendingBytes) return settle({ status: 503, why: 'too many webhook bodies are being received at once; try again' });
        size += chunk.length;
        this.pending += chunk.length;
        chunks.push(chunk);
      };
      req.on('data', onData);
      req.once('end', () => settle(Buffer.concat(chunks)));
      req.once('error', (err) => settle(err));
    });
  }
}

/** Answers the refusal and closes the connection, so the rest of the body is never read. */
function refuse(req: IncomingMessage, res: ServerResponse, r: Refusal): true {
  res.writeHead(r.status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close', ...(r.status === 503 ? { 'retry-after': '1' } : {}) });
  res.end(`${r.why}\n`, () => req.socket.destroy());
  return true;
}

const pathOf = (url: string | undefined) => {
  try {
    return new URL(url ?? '/', 'http://localhost').pathname.replace(/\/+$/, '') || '/';
  } catch {
    return undefined;
  }
};

/**
 * Puts the reader in front of Probot's webhook middleware, wherever it is mounted (`probot run`'s server asks
 * the app's Probot for it once the app is loaded; `createNodeMiddleware` does too).
 */
export function limitWebhookBodies(app: Probot, limits: IntakeLimits = DEFAULT_INTAKE): void {
  const reader = new BodyReader(limits);
  const original = app.getNodeMiddleware.bind(app);
  app.getNodeMiddleware = async (...args: Parameters<Probot['getNodeMiddleware']>) => {
    const middleware = (await original(...args)) as Handler;
    // Probot mounts it at WEBHOOK_PATH (its default otherwise), unless told another path.
    const webhookPath = pathOf(args[0]?.path ?? process.env.WEBHOOK_PATH ?? '/api/github/webhooks');
    return async (req: IncomingMessage, res: ServerResponse) => {
      // What is not a delivery (another path or method, no JSON, a header missing) Probot answers without reading a body.
      const delivery =
        req.method === 'POST' && pathOf(req.url) === webhookPath && /^\s*application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '') && DELIVERY_HEADERS.every((h) => req.headers[h] !== undefined);
      if (!delivery) return middleware(req, res);
      const body = await reader.read(req);
      if (!Buffer.isBuffer(body)) return refuse(req, res, body);
      const payload = body.toString('utf8');
      const signature = String(req.headers['x-hub-signature-256']);
      if (!(await app.webhooks.verify(payload, signature).catch(() => false))) {
        const event = String(req.headers['x-github-event']).slice(0, 64);
        const id = String(req.headers['x-github-delivery']).slice(0, 64);
        app.log.warn({ delivery: id, event, bytes: body.length }, 'webhook delivery refused: its signature does not match the payload and the webhook secret');
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'signature does not match event payload and secret' }));
        return true;
      }
      // Probot's middleware (@octokit/webhooks) takes a string `body` as the payload instead of reading the stream.
      (req as IncomingMessage & { body?: string }).body = payload;
      return middleware(req, res);
    };
  };
}
