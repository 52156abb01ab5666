// The webhook endpoint takes requests from anyone who can reach it, and the
// signature that says a delivery is GitHub's is computed over the whole body,
// so the body is read before anything can be checked. Probot's middleware
// buffers it without a limit: one request of a few gigabytes would take the
// process down. Here the body is read first, up to what GitHub ever sends
// (it caps a payload at 25 MB and does not deliver larger ones), and a larger
// one is answered 413 as soon as it is known to be larger — from its
// Content-Length before a byte is read, or once the bytes read pass the
// limit — and the connection closed. The body read is handed to Probot's
// middleware, which takes a request's `body` string as the payload.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Probot } from 'probot';

/** GitHub caps a webhook payload at 25 MB (it does not deliver larger ones). */
export const MAX_WEBHOOK_BODY_BYTES = 25 * 1024 * 1024;

type Handler = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

/** The body of `req`, or undefined once it is known to be over `limit` bytes (the rest is not read). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        chunks.length = 0;
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/** Answers 413 and closes the connection, so the rest of the body is never read. */
function tooLarge(req: IncomingMessage, res: ServerResponse, limit: number): true {
  res.writeHead(413, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
  res.end(`payload too large: a webhook delivery is at most ${limit} bytes\n`, () => req.socket.destroy());
  return true;
}

/**
 * Puts the limit in front of Probot's webhook middleware, wherever it is mounted (`probot run`'s server asks
 * the app's Probot for it once the app is loaded; `createNodeMiddleware` does too).
 */
export function limitWebhookBodies(app: Probot, limit = MAX_WEBHOOK_BODY_BYTES): void {
  const original = app.getNodeMiddleware.bind(app);
  app.getNodeMiddleware = async (...args: Parameters<Probot['getNodeMiddleware']>) => {
    const middleware = (await original(...args)) as Handler;
    return async (req: IncomingMessage, res: ServerResponse) => {
      // Only a POST carries a delivery; berth's other routes (health, metrics) read no body.
      if (req.method !== 'POST') return middleware(req, res);
      const body = await readBody(req, limit);
      if (body === undefined) return tooLarge(req, res, limit);
      // Probot's middleware (@octokit/webhooks) takes a string `body` as the payload instead of reading the stream.
      (req as IncomingMessage & { body?: string }).body = body.toString('utf8');
      return middleware(req, res);
    };
  };
}
