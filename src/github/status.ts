// `/status [env]` (issue 14): what Atlantis shows on its locks page, in the
// thread — per environment, who holds the lock and since when, the apply
// running now with its progress, and the last completed applies (who, PR,
// head, result, duration). Pure: the caller reads the store, this renders.
// Every value that reaches the reply is a code span or a fixed word (no
// mentions, no links but berth's own PR links).
import { code, formatDuration, lockHolder, MARKER, prLink, shortSha } from './messages.js';
import type { ApplyRow, LockRow, TaskRow } from '../store/store.js';
import { TERMINAL_TASK_STATES } from '../store/store.js';

export interface EnvironmentStatus {
  name: string;
  lock: LockRow | undefined;
  running: { apply: ApplyRow; tasks: TaskRow[] } | undefined;
  /** completed, failed or stopped applies, newest first */
  recent: ApplyRow[];
}

/** How many completed applies `/status` lists per environment. */
export const STATUS_RECENT = 5;

const RESULT: Record<string, string> = { completed: '✅ completed', failed: '❌ failed', stopped: '⏹️ stopped' };

const when = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');


function origin(repo: string, a: ApplyRow): string {
  return a.pr !== null && a.pr > 0 ? prLink(repo, a.pr) : '—';
}

export function renderStatus(repo: string, envs: readonly EnvironmentStatus[], now: number): string {
  const out = [`${MARKER}`, '### berth status', ''];
  for (const e of envs) {
    out.push(`#### ${code(e.name)}`, '');
    out.push(e.lock ? `🔒 **Locked** by ${lockHolder(repo, e.lock)} since ${when(e.lock.createdAt)}.` : '🔓 **Unlocked.**');
    if (e.running) {
      const { apply: a, tasks } = e.running;
      const done = tasks.filter((t) => TERMINAL_TASK_STATES.includes(t.state)).length;
      const failed = tasks.filter((t) => t.state === 'failed').length;
      const since = formatDuration(now - (a.startedAt ?? a.createdAt));
      out.push(
        '',
        `▶️ **Applying** ${code(a.id)} (${a.kind}) from ${origin(repo, a)} at ${a.headSha ? code(shortSha(a.headSha)) : '—'} by ${code(a.actor)}: ${done}/${tasks.length} steps, state ${code(a.state)}${failed ? `, ${failed} failed` : ''}, for ${since}.`,
      );
    } else out.push('', 'No apply running.');
    if (e.recent.length) {
      out.push('', '| Apply | Kind | By | PR | Head | Result | Duration | Ended |', '| --- | --- | --- | --- | --- | --- | --- | --- |');
      for (const a of e.recent) {
        const dur = a.finishedAt !== null ? formatDuration(a.finishedAt - (a.startedAt ?? a.createdAt)) : '—';
        out.push(
          `| ${code(a.id.slice(0, 8))} | ${a.kind} | ${code(a.actor)} | ${origin(repo, a)} | ${a.headSha ? code(shortSha(a.headSha)) : '—'} | ${RESULT[a.state] ?? code(a.state)} | ${dur} | ${a.finishedAt !== null ? when(a.finishedAt) : '—'} |`,
        );
      }
    } else out.push('', 'No completed applies yet.');
    out.push('');
  }
  return out.join('\n').trimEnd();
}
