// Typed domain errors. A user-facing problem (bad config, bad compose file, a
// refused command) is a BerthError: it carries where it happened and what to do
// so a PR comment, a check run and the CLI can all render it the same way,
// without parsing the message. Anything else thrown is a bug or an outage.

export interface ErrorLocation {
  /** repository-relative file the problem is in */
  file?: string;
  /** 1-based line in `file` */
  line?: number;
  /** where inside the document: `services.web.ports[0]`, `environments[1].requires[0]` */
  path?: string;
}

export interface BerthErrorOptions extends ErrorLocation {
  /** what the user should do about it */
  hint?: string;
  cause?: unknown;
}

/** `file:line: path` (whichever parts are known), the prefix of every located message. */
export function formatLocation(loc: ErrorLocation): string {
  let where = loc.file ?? '';
  if (loc.file && loc.line !== undefined) where += `:${loc.line}`;
  if (loc.path) where = where ? `${where}: ${loc.path}` : loc.path;
  return where;
}

/** `file:line: path: problem — hint`, one line, so it reads the same in logs, comments and tests. */
export function formatProblem(problem: string, opts: BerthErrorOptions = {}): string {
  const where = formatLocation(opts);
  const text = where ? `${where}: ${problem}` : problem;
  return opts.hint ? `${text} — ${opts.hint}` : text;
}

export class BerthError extends Error {
  /** stable machine-readable kind, e.g. `unknown_key`, `missing_variable` */
  readonly code: string;
  /** the problem alone, without location or hint */
  readonly problem: string;
  readonly file?: string;
  readonly line?: number;
  readonly path?: string;
  readonly hint?: string;

  constructor(code: string, problem: string, opts: BerthErrorOptions = {}) {
    super(formatProblem(problem, opts), opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.problem = problem;
    if (opts.file !== undefined) this.file = opts.file;
    if (opts.line !== undefined) this.line = opts.line;
    if (opts.path !== undefined) this.path = opts.path;
    if (opts.hint !== undefined) this.hint = opts.hint;
  }
}

/**
 * `.github/berth.yml` is invalid. When the file has several problems the first
 * (by line) is the error's location and `issues` lists every one of them, so a
 * PR comment can show them all at once.
 */
export class ConfigError extends BerthError {
  readonly issues: readonly string[];

  constructor(code: string, problem: string, opts: BerthErrorOptions & { issues?: readonly string[] } = {}) {
    super(code, problem, opts);
    this.issues = opts.issues ?? [this.message];
    if (this.issues.length > 1) this.message = this.issues.join('\n');
  }
}

/** A compose file is invalid or uses something berth does not support. */
export class ComposeError extends BerthError {
  /**
   * Where the values the problem quotes besides its own line's were written (another line's port, a replicas
   * count): one built from a secret masks the message as its own line would (compose/taint.ts).
   */
  readonly quotes?: readonly { file: string; path: string }[];

  constructor(code: string, problem: string, opts: BerthErrorOptions & { quotes?: readonly { file: string; path: string }[] } = {}) {
    super(code, problem, opts);
    if (opts.quotes?.length) this.quotes = opts.quotes;
  }
}

export function isBerthError(err: unknown): err is BerthError {
  return err instanceof BerthError;
}
