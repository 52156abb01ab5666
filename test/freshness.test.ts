// The command-freshness rule on its own (src/github/freshness.ts): what counts as
// "after the command was written" when GitHub's created_at has whole seconds.
import { describe, expect, it } from 'vitest';
import { staleCommand } from '../src/github/freshness.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const at = (iso: string) => Date.parse(iso);
const CREATED = '2026-01-01T12:00:10Z';

describe('staleCommand', () => {
  it('a head and plan comment older than the command: may act', () => {
    expect(staleCommand({ createdAt: CREATED }, { headSha: A, heads: [{ headSha: A, seenAt: at('2026-01-01T12:00:09.999Z') }], commentWrittenAt: at('2026-01-01T12:00:09.999Z'), planMadeAt: at('2026-01-01T12:00:09.5Z') })).toEqual([]);
  });

  it('a head first seen within the second the command was written counts as after it, and names the head before', () => {
    const r = staleCommand({ createdAt: CREATED }, { headSha: B, heads: [{ headSha: A, seenAt: at('2026-01-01T12:00:01Z') }, { headSha: B, seenAt: at('2026-01-01T12:00:10.2Z') }], commentWrittenAt: at('2026-01-01T12:00:02Z') });
    expect(r).toHaveLength(1);
    expect(r[0]).toContain('`bbbbbbb`');
    expect(r[0]).toContain('`aaaaaaa`');
    expect(r[0]).toContain(CREATED);
  });

  it('a head berth never recorded, a plan comment rewritten after, a plan never written to the comment, an unreadable time: all refuse', () => {
    expect(staleCommand({ createdAt: CREATED }, { headSha: A, heads: [], commentWrittenAt: undefined })).toHaveLength(1);
    expect(staleCommand({ createdAt: CREATED }, { headSha: A, heads: [{ headSha: A, seenAt: 0 }], commentWrittenAt: at('2026-01-01T12:00:10Z') })[0]).toContain('plan comment was rewritten');
    expect(staleCommand({ createdAt: CREATED }, { headSha: A, heads: [{ headSha: A, seenAt: 0 }], commentWrittenAt: 5, planMadeAt: 6 })[0]).toContain('has not been written');
    expect(staleCommand({ createdAt: '' }, { headSha: A, heads: [{ headSha: A, seenAt: 0 }], commentWrittenAt: 0 })).toHaveLength(1);
  });
});
