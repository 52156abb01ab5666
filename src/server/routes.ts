// The HTTP routes beside the webhook endpoint: /healthz (the process answers),
// /readyz (the store and every target answer) and /metrics (Prometheus).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { metricsHandler } from './metrics.js';
import type { Services } from '../services.js';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;

export function metricsRoute({ metrics }: Services): RouteHandler {
  return metricsHandler(metrics);
}

export function healthz(_s: Services): RouteHandler {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url?.split('?')[0];
    if (req.method !== 'GET') return false;
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok' }));
      return true;
    }
    return false;
  };
}

export function readyz({ store, targets }: Services): RouteHandler {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const path = req.url?.split('?')[0];
    if (req.method !== 'GET') return false;
    if (path === '/readyz') {
      const checks: Record<string, string> = {};
      let ok = true;
      try {
        await store.ping();
        checks.store = 'ok';
      } catch (err) {
        ok = false;
        checks.store = String((err as Error)?.message ?? err);
      }
      // Each target's transport and engine version: which way berth reaches it and what answers.
      const described = await targets.describeAll();
      const engines: Record<string, { transport: string; engine?: string; api?: string }> = {};
      for (const [t, d] of Object.entries(described)) {
        checks[`target:${t}`] = d.error ?? 'ok';
        if (d.error) ok = false;
        engines[t] = { transport: d.transport, ...(d.version ? { engine: d.version, api: d.api } : {}) };
      }
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ready' : 'unready', checks, targets: engines }));
      return true;
    }
    return false;
  };
}
