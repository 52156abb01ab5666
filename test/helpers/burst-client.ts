// Sends a burst of signed webhooks from its own process (so the load
// generator does not share the app's event loop) and prints the response
// times as JSON. argv: <url> <file with [{body, headers}]> [connections]
// With `connections` N, N requests are in flight at any moment (like `wrk -c N`).
import { readFileSync } from 'node:fs';

const [url, file, connections] = process.argv.slice(2);
const requests = JSON.parse(readFileSync(file!, 'utf8')) as { body: string; headers: Record<string, string> }[];
const results: { status: number; ms: number }[] = [];
let next = 0;
const worker = async () => {
  while (next < requests.length) {
    const r = requests[next++]!;
    const t0 = performance.now();
    const res = await fetch(url!, { method: 'POST', headers: r.headers, body: r.body });
    await res.text();
    results.push({ status: res.status, ms: performance.now() - t0 });
  }
};
await Promise.all(Array.from({ length: Number(connections ?? requests.length) }, worker));
process.stdout.write(JSON.stringify(results));
