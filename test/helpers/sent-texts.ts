// The texts berth sent GitHub: every write's comment body, status
// description and check-run title, summary and text. What the secret and
// escaping tests search for a leak (and for the message that proves the
// search is real).
import type { RecordedRequest } from './fake-github.js';

export function sentTexts(requests: readonly RecordedRequest[]): string[] {
  return requests
    .filter((r) => r.method !== 'GET')
    .flatMap((r) => {
      const b = (r.body ?? {}) as { body?: string; description?: string; output?: { title?: string; summary?: string; text?: string } };
      return [b.body, b.description, b.output?.title, b.output?.summary, b.output?.text].filter((x): x is string => typeof x === 'string');
    });
}
