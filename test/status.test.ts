// `/status` replies (issue 14) rendered from fixed store rows: golden files, so
// every change to the reply is reviewed as a diff.
import { expect, it } from 'vitest';
import { parseCommands } from '../src/github/commands.js';
import { renderStatus } from '../src/github/status.js';
import { msg } from '../src/github/messages.js';
import type { ApplyRow, TaskRow } from '../src/store/store.js';
import { expectGolden } from './helpers/golden.js';

const T = Date.UTC(2026, 11, 2, 6, 0, 0);
const REPO = 'acme/shop';

function golden(name: string, text: string) {
  expectGolden(`fixtures/comments/${name}.md`, text);
}

const apply = (over: Partial<ApplyRow>): ApplyRow => ({
  id: '11111111-2222-3333-4444-555555555555',
  repo: REPO,
  pr: 7,
  environment: 'staging',
  kind: 'apply',
  actor: 'alice',
  headSha: 'a'.repeat(40),
  desiredDigest: 'd',
  planFingerprint: null,
  desiredJson: '{}',
  state: 'completed',
  version: 3,
  stopRequested: false,
  checkRunId: 1,
  commentId: null,
  createdAt: T - 600_000,
  startedAt: T - 600_000,
  finishedAt: T - 588_000,
  error: null,
  ...over,
});

const task = (state: TaskRow['state'], nodeId: number): TaskRow => ({
  id: `t${nodeId}`,
  operationId: 'o',
  applyId: 'x',
  nodeId,
  kind: 'CreateContainer',
  resource: `service:web:${nodeId}`,
  reason: '',
  deps: [],
  nodeJson: '{}',
  state,
  version: 1,
  error: null,
  result: null,
  startedAt: null,
  finishedAt: null,
});

it('/status: a lock, an apply running with its progress, recent applies of every kind and result', () => {
  const running = apply({ id: 'aaaaaaaa-0000-0000-0000-000000000000', state: 'running', finishedAt: null, startedAt: T - 42_000, pr: 9, actor: 'carol', headSha: 'c'.repeat(40) });
  const text = renderStatus(
    REPO,
    [
      {
        name: 'staging',
        lock: { repo: REPO, environment: 'staging', owner: `${REPO}#9`, pr: 9, applyId: running.id, createdAt: T - 3_600_000 },
        running: { apply: running, tasks: [task('succeeded', 1), task('running', 2), task('pending', 3), task('failed', 4)] },
        recent: [
          apply({ id: 'bbbbbbbb-0000-0000-0000-000000000000', kind: 'rollback', state: 'completed' }),
          apply({ id: 'cccccccc-0000-0000-0000-000000000000', state: 'failed', pr: 8, actor: 'bob', headSha: 'b'.repeat(40), finishedAt: T - 598_500 }),
          apply({ id: 'dddddddd-0000-0000-0000-000000000000', state: 'stopped', pr: null, actor: 'cli:ops@host', headSha: null }),
        ],
      },
      { name: 'production', lock: { repo: REPO, environment: 'production', owner: 'cli:ops@host', pr: 0, applyId: null, createdAt: T - 60_000 }, running: undefined, recent: [] },
      { name: 'preview', lock: undefined, running: undefined, recent: [] },
    ],
    T,
  );
  golden('status-all', text);
  expect(text).not.toMatch(/@(alice|bob|carol)/); // listed, never pinged
});

it('/status parses with an optional environment, and is in /help', () => {
  expect(parseCommands('/status', ['staging'])).toEqual({ kind: 'command', command: { name: 'status' } });
  expect(parseCommands('/status staging', ['staging'])).toEqual({ kind: 'command', command: { name: 'status', env: 'staging' } });
  expect(parseCommands('/status prod', ['staging', 'production'])).toMatchObject({ kind: 'invalid', suggestion: '/status production' });
  expect(parseCommands('/stauts', ['staging'])).toMatchObject({ kind: 'invalid', suggestion: '/status' });
});

it('a lock an apply on push holds is named as such in a refused /apply, never as PR #0', () => {
  const lock = { repository: 'acme/shop', environment: 'production', owner: 'acme/shop@push', pr: 0, createdAt: Date.UTC(2026, 11, 6) };
  const text = msg.lockHeld('production', lock as never, 'acme/shop');
  expect(text).toContain('is locked by `acme/shop@push`');
  expect(text).not.toMatch(/#0|pull\/0/);
  expect(text).toContain('wait for that apply to end');
  const byPr = msg.lockHeld('production', { ...lock, owner: 'acme/shop#7', pr: 7 } as never, 'acme/shop');
  expect(byPr).toMatch(/pull\/7/);
  expect(byPr).toContain('wait for that PR to be merged or closed');
});
