// Whether a command comment may act on what berth shows now: a person applies
// what they saw. The PR head and berth's plan comment must be as they were
// when the command comment was written. The comment's `created_at` (GitHub's
// clock, whole seconds) is compared with what berth recorded in its store —
// when it first saw each head, when it last finished writing its plan comment
// — never with commit dates, which the commit's author chooses. Pure: the
// caller reads the store.
import { code, shortSha } from './messages.js';

export interface CommandTimes {
  /** GitHub's `created_at` of the command comment (ISO 8601) */
  createdAt: string;
  /** the comment's id: what an apply records of the command that made it (undefined: no comment, e.g. a merge) */
  id?: number;
}

export interface WhatBerthShowed {
  /** the head the command would act on */
  headSha: string;
  /** every head of the PR berth has seen, with when it first saw it (epoch ms), oldest first */
  heads: readonly { headSha: string; seenAt: number }[];
  /** when berth last finished writing its plan comment (epoch ms); undefined when it never did */
  commentWrittenAt: number | undefined;
  /** when the plan about to be applied was made (epoch ms); undefined when none is applied (rollback) */
  planMadeAt?: number | undefined;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * The reasons the command must not act (empty: it may). `created_at` has
 * whole seconds, so a change within the second the comment was written
 * cannot be told from one just before it: it counts as after (fail closed).
 */
export function staleCommand(cmd: CommandTimes, now: WhatBerthShowed): string[] {
  const written = Date.parse(cmd.createdAt);
  if (!Number.isFinite(written)) return [`the command comment has no creation time berth can read (${code(cmd.createdAt)}), so what it was written against is unknown`];
  const reasons: string[] = [];
  const head = now.heads.find((h) => h.headSha === now.headSha);
  if (!head || head.seenAt >= written) {
    const before = [...now.heads].reverse().find((h) => h.seenAt < written);
    reasons.push(
      `the PR head is now ${code(shortSha(now.headSha))}, which berth first saw at ${head ? iso(head.seenAt) : 'this moment'}; ` +
        (before ? `when the command was written (${cmd.createdAt}) the head was ${code(shortSha(before.headSha))}` : `the command was written at ${cmd.createdAt}, before berth saw any head of this PR`),
    );
  }
  if (now.planMadeAt !== undefined && (now.commentWrittenAt === undefined || now.commentWrittenAt < now.planMadeAt))
    reasons.push(`the plan made at ${iso(now.planMadeAt)} has not been written to berth's plan comment, so nobody has seen it`);
  else if (now.commentWrittenAt !== undefined && now.commentWrittenAt >= written)
    reasons.push(`berth's plan comment was rewritten at ${iso(now.commentWrittenAt)}, after the command was written (${cmd.createdAt})`);
  return reasons;
}
