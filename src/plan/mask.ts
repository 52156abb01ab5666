// Secret masking for everything berth shows a human or writes to JSON: PR
// comments, check runs, the CLI. A value is secret when its key looks secret
// (PASSWORD, SECRET, TOKEN, KEY, …) or the repository config lists the key;
// secrets inside free text (command arguments, URLs, `KEY=value` pairs) are
// masked too. Masking never reveals a value, not even its length.
import type { SecretFields } from '../compose/taint.js';
import { isTaintedField } from '../compose/taint.js';
import { EXTRA_KEYS } from '../compose/service-keys.js';
import type { DesiredState, ServiceSpec } from '../model/model.js';
import { escapedForms, escapeMarkdown, goJsonQuoted, goQuoted } from '../text/escape.js';
import { Needles, replaceSpans } from '../text/needles.js';

export const MASK = '••••••';

/**
 * Substrings that make a key secret, matched case-insensitively anywhere in the
 * key. `PASS` (which also covers PASSWORD and PASSWD) catches `DB_PASS`,
 * `PGPASS` and redis' `--requirepass`; masking a harmless `COMPASS` is the
 * price of never showing a real one.
 */
export const SECRET_KEY_PARTS = ['PASSWORD', 'PASSWD', 'PASS', 'SECRET', 'TOKEN', 'KEY', 'CREDENTIAL', 'PRIVATE'] as const;

const SECRET_PART_RE = new RegExp(SECRET_KEY_PARTS.join('|'), 'i');

/** Values shorter than this are not redacted from free text (they would match everywhere). */
const MIN_REDACT_LENGTH = 4;

/**
 * Knows which keys are secret and remembers every secret value it masked, so
 * text that should never contain one (plan lines, reasons, names) can be
 * redacted afterwards as a second line of defence.
 */
/** A server-side secret's placeholder (secrets/placeholder.ts), with its keyed hash prefix. */
const PLACEHOLDER_RE = /berth-secret\.[A-Za-z_][A-Za-z0-9_]*\.[0-9a-f]{32}/g;

export class Masker {
  private readonly extra: Set<string>;
  private readonly seen = new Set<string>();
  /** the secret values as they were given (seen holds their shown and escaped forms too) */
  private readonly values = new Set<string>();
  /**
   * Those of them berth was told are secret (the environment's secret values, what a secret made, what an apply
   * revealed), not those it found in what it masked (a PR writing `X_PASSWORD: app-` makes `app-` one): only
   * these let covered() skip a text — a PR-written value could otherwise stand in for a secret it does not hold.
   */
  private readonly given = new Set<string>();
  /**
   * Texts remembered because a secret fed them (taintDerived): redacted like the values, but never a secret a
   * later text is judged against — or the text a PR author wrote next to a secret (a command's other word, a
   * path's other part) would, once remembered, make any text holding it count as secret too.
   */
  private readonly derived = new Set<string>();
  /** how redact() finds what `seen` holds: built when first needed after `seen` grew */
  private needles: Needles | undefined;
  /** null prototype: a service named `constructor` or `toString` must not find Object.prototype's member */
  private readonly fields: SecretFields = Object.create(null) as SecretFields;
  /**
   * The services with any secret-derived field: asked once per service shown (thousands in a large
   * plan), and a Set answers without looking a service name up as a property of `fields`.
   */
  private readonly taintedServices = new Set<string>();
  /** spec object → its own secret-derived fields (addSpecFields); keyed by identity, not by service */
  private readonly specFields = new WeakMap<ServiceSpec, SecretFields>();

  constructor(secretKeys: readonly string[] = [], secretValues: readonly string[] = [], secretFields?: SecretFields) {
    this.extra = new Set(secretKeys.map((k) => k.toUpperCase()));
    for (const v of secretValues) this.remember(v, 'given');
    if (secretFields) this.addFields(secretFields);
  }

  /** Fields a secret variable fed (compose/taint.ts), per service: shown only as a mask, as a whole. */
  addFields(fields: SecretFields): void {
    for (const [service, list] of Object.entries(fields)) {
      this.fields[service] = [...new Set([...(this.fields[service] ?? []), ...list])];
      if (this.fields[service].length) this.taintedServices.add(service);
    }
  }

  /**
   * Fields a secret fed in one spec object only: a deployed spec read back from its containers (their
   * io.berth.secret-fields label). The desired state may no longer feed those fields from a secret, or the
   * secret has another value now; the deployed side of the diff stays masked all the same.
   */
  addSpecFields(spec: ServiceSpec, fields: readonly string[]): void {
    if (fields.length) this.specFields.set(spec, { [spec.name]: [...fields] });
  }

  /** Whether any field of `service` is secret-derived (false: `tainted` is false for each of its fields). */
  hasTainted(service: string): boolean {
    return this.taintedServices.has(service);
  }

  /** Whether `field` (a diff label: `ports`, `environment.X`, `healthcheck.test`) of `service` is secret-derived. */
  tainted(service: string, field: string): boolean {
    return isTaintedField(this.fields, service, field);
  }

  /** Whether `spec` has secret-derived fields of its own (addSpecFields). */
  hasOwnFields(spec: ServiceSpec): boolean {
    return this.specFields.has(spec);
  }

  /** Whether any field of `spec` is secret-derived: its service's, or its own (addSpecFields). */
  hasTaintedIn(spec: ServiceSpec): boolean {
    return this.taintedServices.has(spec.name) || this.specFields.has(spec);
  }

  /** tainted() for the fields of one spec object: its service's, or its own (addSpecFields). */
  taintedIn(spec: ServiceSpec, field: string): boolean {
    return isTaintedField(this.fields, spec.name, field) || isTaintedField(this.specFields.get(spec), spec.name, field);
  }

  /** Learns another masker's secret keys and values (not its fields, which are per desired state). */
  absorb(other: Masker): void {
    for (const k of other.extra) this.extra.add(k);
    for (const v of other.values) this.remember(v, other.given.has(v) ? 'given' : 'found');
    for (const v of other.derived) this.remember(v, 'derived');
  }

  /** A value derived from a secret: redacted from free text wherever it appears (second line of defence). */
  taint(value: string): void {
    this.remember(value, 'given');
  }

  /**
   * What a field a secret fed shows (its raw text, a part of it): remembered like taint() only when it still
   * carries a secret — its letters and digits holding those of a whole secret value (`02:42:ac:…` for
   * `02-42-AC-…`), or being those of a piece of one (a word of a command split at the secret's spaces). A
   * field's text that parsing cleaned the secret out of (`image:1/x${S}/..` is `image:1`) reveals nothing of
   * it, and remembered it would hide that text everywhere else in the plan.
   */
  taintDerived(value: string): void {
    if (this.derived.has(value) || this.values.has(value)) return;
    // A text holding a secret as it was given (a command word `q1z${S}`) is masked by that secret's own entry: a
    // PR writing thousands of such words would otherwise make the masker remember (and scan for) each of them.
    if (this.carriesSecret(value) && !this.covered(value)) this.remember(value, 'derived');
  }

  /**
   * Whether `text` carries a secret: its letters and digits hold those of a whole secret value (`02:42:ac:…` for
   * `02-42-AC-…`, a lower-cased image name), or are those of one of its pieces as the whole text (a word of a
   * command split at the secret's spaces). A text that only holds a piece (`5432` of a database URL in
   * `ghcr.io/…:5432`, a host a PR author knows in `auth.example.com/miner:1`) is the author's own text, and
   * remembered it would be masked everywhere.
   */
  private carriesSecret(text: string): boolean {
    const skeleton = skeletonOf(text);
    if (!skeleton) return false;
    for (const v of this.values) {
      const whole = skeletonOf(v);
      if (whole.length >= MIN_DERIVED_SKELETON && skeleton.includes(whole)) return true;
      for (const piece of secretPieces(v)) {
        const s = skeletonOf(piece);
        if (s.length >= MIN_DERIVED_SKELETON && skeleton === s) return true;
      }
    }
    return false;
  }

  /**
   * Whether redacting the secret values berth was given hides all `text` carries of a secret, in every form
   * remember() keeps: it holds such a value as given (case aside), its Markdown-escaped form holds the value's
   * (that escaping depends on what precedes: `www` before a `.`), and with those values taken out nothing left
   * carries a secret. redact() masks every occurrence of every value, overlapping ones too.
   */
  private covered(text: string): boolean {
    const lower = text.toLowerCase();
    let shown: string | undefined;
    const found: string[] = [];
    for (const v of this.given) {
      if (v.length < MIN_REDACT_LENGTH) continue;
      const lv = v.toLowerCase();
      if (!lower.includes(lv)) continue;
      shown ??= escapeMarkdown(text).toLowerCase();
      if (!shown.includes(escapeMarkdown(v).toLowerCase())) return false;
      found.push(v);
    }
    // what is left once the values are taken out, as redact() takes them out (every occurrence, case aside)
    return found.length > 0 && !this.carriesSecret(replaceSpans(text, new Needles(found).find(text), ' '));
  }

  isSecretKey(key: string): boolean {
    return SECRET_PART_RE.test(key) || this.extra.has(key.replace(/^-+/, '').toUpperCase());
  }

  /** The value of `key` as it may be shown. */
  value(key: string, value: string): string {
    if (this.isSecretKey(key)) {
      this.remember(value);
      return MASK;
    }
    return this.inline(value);
  }

  /**
   * Secrets inside free text: `--password=x`, `DB_PASSWORD=x`, `--token x`,
   * `scheme://user:password@host`. Everything else is kept as it is.
   */
  inline(text: string): string {
    // Each pattern needs a character most values (an image, a port, a number) lack: such text
    // comes back as it is without running the three replacements (this runs for every shown value).
    if (!mayHoldInlineSecret(text)) return text;
    let out = text.replace(URL_USERINFO_RE, (_m, head: string, pass: string, at: string) => {
      this.remember(pass);
      return `${head}${MASK}${at}`;
    });
    out = out.replace(ASSIGNMENT_RE, (m, lead: string, key: string, value: string) => {
      if (!this.isSecretKey(key) || value === '' || value === MASK) return m;
      this.remember(unquote(value));
      return `${lead}${key}=${MASK}`;
    });
    out = out.replace(FLAG_SPACE_VALUE_RE, (m, flag: string, space: string, value: string) => {
      if (!this.isSecretKey(flag) || value === MASK) return m;
      this.remember(unquote(value));
      return `${flag}${space}${MASK}`;
    });
    return out;
  }

  /** Command-like argument vectors: each argument masked inline, and the argument after a secret flag (`--password x`). */
  args(args: readonly string[]): string[] {
    const out: string[] = [];
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      const prev = i > 0 ? args[i - 1] : undefined;
      if (prev !== undefined && SECRET_FLAG_RE.test(prev) && this.isSecretKey(prev) && !a.startsWith('-')) {
        this.remember(a);
        out.push(MASK);
      } else out.push(this.inline(a));
    }
    return out;
  }

  /**
   * A copy of `spec` safe to show: secret environment and label values, and
   * secrets in command lines, masked; a field a secret variable fed is
   * replaced by the mask as a whole (its shape is lost: it is for showing only).
   */
  spec(spec: ServiceSpec): ServiceSpec {
    const maskMap = (kind: 'environment' | 'labels', m: Record<string, string> | undefined) => {
      if (!m) return m;
      // Keys themselves came from a secret (`- "${S}=x"`): nothing of the map can be shown.
      if (this.taintedIn(spec, kind)) return Object.keys(m).length ? { [MASK]: MASK } : m;
      return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, this.taintedIn(spec, `${kind}.${k}`) ? (this.taintDerived(v), MASK) : this.value(k, v)]));
    };
    const out: Record<string, unknown> = {
      ...spec,
      environment: maskMap('environment', spec.environment),
      labels: maskMap('labels', spec.labels),
      ...(spec.command ? { command: this.args(spec.command) } : {}),
      ...(spec.entrypoint ? { entrypoint: this.args(spec.entrypoint) } : {}),
      ...(spec.healthcheck ? { healthcheck: { ...spec.healthcheck, test: this.args(spec.healthcheck.test) } } : {}),
      // A secret's digest is not its value, but a short value could be guessed from it: shown masked, like the value.
      // So is a config's: its content may come from a secret variable (`configs: {c: {environment: DB_PASSWORD}}`).
      ...(spec.files ? { files: spec.files.map((f) => ({ ...f, digest: MASK })) } : {}),
    };
    for (const [field, key] of Object.entries(SPEC_KEY_OF_FIELD)) if (out[key] !== undefined && this.taintedIn(spec, field)) out[key] = MASK;
    // a network's aliases and addresses are written under networks: too
    if (out.networkOptions !== undefined && this.taintedIn(spec, 'networks')) out.networkOptions = MASK;
    // what deploy: sets besides the fields above
    if (this.taintedIn(spec, 'deploy')) for (const key of ['rollout', 'deviceRequests', 'restartMaxRetries'] as const) if (out[key] !== undefined) out[key] = MASK;
    return out as unknown as ServiceSpec;
  }

  /** Every secret value masked so far, plus those of `specs` (so redaction also covers values never shown). */
  collect(...specs: (ServiceSpec | undefined)[]): void {
    for (const s of specs) if (s) this.spec(s);
  }

  /** Free text as it may leave berth: `KEY=secret`-like text masked, then every known secret value redacted. */
  text(text: string): string {
    // Known secrets first: inline() ends a value at a space, quote, `&`, `;` or `,`, and would leave the rest of a
    // secret holding one (`X_PASSWORD=s3cr3t;Qz9v` → `X_PASSWORD=••••••;Qz9v`) where redact() no longer finds it.
    return this.redact(this.inline(this.redact(text)));
  }

  /** Replaces every remembered secret value that occurs in `text`, and every server-side secret's placeholder (its hash is never shown). */
  redact(text: string): string {
    if (text.includes('berth-secret.')) text = text.replace(PLACEHOLDER_RE, MASK);
    if (!this.seen.size) return text;
    // Every occurrence of every text, overlapping ones too, is found; their union is masked: a value that
    // overlaps a secret (a PR's `X_PASSWORD: app-Tr` before `Tr0ub4dor`) cannot take the start of the secret
    // and leave its end, as a leftmost match would.
    this.needles ??= new Needles(this.seen);
    const spans = this.needles.find(text);
    return spans.length ? replaceSpans(text, spans, MASK) : text;
  }

  /**
   * Every secret known so far also by its pieces: Docker and runc parse what they are given and may quote one
   * piece of a value (`user: "${S}"` with S = `1000:Tr0ub4dor` fails with "unable to find group Tr0ub4dor"),
   * and a piece is as secret as the whole. Pieces are cut where such parsers cut (`:`, `/`, `=`, `@`, `,`,
   * `;`, `?`, `&`, `#`, `|`, spaces) and kept from four characters on. For Docker's messages: a plan, which
   * shows whole fields, would mask too much (the `postgres` of a database URL).
   */
  withPieces(): this {
    // From the values as they were given, not their escaped forms (`&#46;` would give pieces of its own), and
    // not a server-side secret's placeholder: its name and keyed hash are no piece of the secret.
    for (const v of [...this.values]) {
      if (v.includes('berth-secret.')) continue;
      for (const piece of secretPieces(v)) if (piece !== v) this.remember(piece, 'found');
    }
    return this;
  }

  /** `given`: berth was told it is secret; `found`: a value it masked (a secret-looking key's); `derived`: taintDerived's */
  private remember(value: string, how: 'given' | 'found' | 'derived' = 'found'): void {
    if (how === 'derived') this.derived.add(value);
    else this.values.add(value);
    if (how === 'given') this.given.add(value);
    // Also as JSON / Go %q would quote it: Docker's messages and JSON output escape `"` and `\` (Go's JSON
    // `<`, `>`, `&` too, as `\u003c`…), Go's %q (and %+q) writes control characters as `\x01`, those it
    // does not print as `\u00a0`/`\U000e0041` — once, or
    // twice where a quoted message is quoted again (containerd quoting runc's `exec: "…"`: `\"…\\x01…\"`);
    // and as prose quotes it (escape.ts inert: punctuation as numeric entities, which GitHub renders back);
    // and as a code span or block shows it, its control and invisible characters written as escapes.
    const quoted = [JSON.stringify(value).slice(1, -1), goJsonQuoted(value), goQuoted(value), goQuoted(value, true)];
    for (const v of new Set([value, ...quoted, ...quoted.map((q) => goQuoted(q)), escapeMarkdown(value), ...escapedForms(value)])) {
      if (v.length >= MIN_REDACT_LENGTH && v !== MASK && !this.seen.has(v)) {
        this.seen.add(v);
        this.needles = undefined;
      }
    }
  }
}

/** taint field id → the ServiceSpec property it shows (environment and labels are masked per key). */
const SPEC_KEY_OF_FIELD: Record<string, keyof ServiceSpec> = {
  image: 'image',
  command: 'command',
  entrypoint: 'entrypoint',
  ports: 'ports',
  volumes: 'volumes',
  networks: 'networks',
  depends_on: 'dependsOn',
  healthcheck: 'healthcheck',
  restart: 'restart',
  user: 'user',
  working_dir: 'workingDir',
  replicas: 'replicas',
  privileged: 'privileged',
  network_mode: 'networkMode',
  pid: 'pid',
  cap_add: 'capAdd',
  devices: 'devices',
  // a config's or a secret's target (or source) built from a secret: the files they become
  configs: 'files',
  secrets: 'files',
  // every key berth reads beside these (tmpfs, hostname, extra_hosts, sysctls, logging, …): its spec field
  ...Object.fromEntries(Object.entries(EXTRA_KEYS).map(([key, spec]) => [key, spec.field as keyof ServiceSpec])),
};

export const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Letters and digits, lower case: what survives the clean-ups parsing does (case, separators, quotes). */
const skeletonOf = (s: string) => s.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '');
/** The least of a secret that counts as carried by a derived text (shorter runs occur by chance). */
const MIN_DERIVED_SKELETON = 4;

/** A secret value's pieces, cut where parsers of paths, URLs and lists cut it (see Masker.withPieces). */
export const secretPieces = (value: string): string[] => value.split(/[\s:/=@,;?&#|]+/);

// Each pattern below starts a match only where its first run of characters starts (a lookbehind, or the
// character before it): tried at every position of a long run (`--a--a--a…`, `aaaa…://`), it would scan the
// rest of the run from each one, the square of a PR-written value's length.
/** `scheme://user:password@` → the password. */
const URL_USERINFO_RE = /(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*:\/\/[^\s:@/]*:)([^\s@/]+)(@)/gi;
/** `KEY=value`, `--key=value`, `-key=value`; the value may be quoted. */
const ASSIGNMENT_RE = /(^|[^\w.-])(-{0,2}[A-Za-z_][\w.-]*)=("[^"]*"|'[^']*'|[^\s"'&;,]*)/g;
/** `--password value` inside one argument (e.g. `sh -c "mysqld --password x"`). */
const FLAG_SPACE_VALUE_RE = /(?<![\w.-])(--?[A-Za-z_][\w.-]*)(\s+)("[^"]*"|'[^']*'|[^\s"'-][^\s"']*)/g;
/**
 * Whether `text` holds what every match of the three patterns above needs: `://` (userinfo), `=`
 * (an assignment), or a `-` with whitespace after it (a flag and its value). Linear in the text.
 */
function mayHoldInlineSecret(text: string): boolean {
  if (text.includes('=') || text.includes('://')) return true;
  const dash = text.indexOf('-');
  return dash >= 0 && /\s/.test(text.slice(dash + 1));
}
/** A whole argument that is a flag without a value. */
const SECRET_FLAG_RE = /^--?[A-Za-z_][\w.-]*$/;

function unquote(v: string): string {
  return (v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'")) ? v.slice(1, -1) : v;
}

/**
 * The values of an environment's config variables that are secret (by name, or
 * listed in secret_keys): interpolated into any key of a compose file, they are
 * redacted wherever they appear.
 */
/** The values of a desired state's secrets (compose `secrets:`): redacted wherever they appear. */
export function secretContents(desired: Pick<DesiredState, 'contents'> | undefined): string[] {
  return Object.entries(desired?.contents ?? {})
    .filter(([k]) => k.startsWith('secret:'))
    .map(([, v]) => v);
}

export function secretVariableValues(variables: Record<string, string>, secretKeys: readonly string[] = []): string[] {
  const m = new Masker(secretKeys);
  return Object.entries(variables)
    .filter(([k]) => m.isSecretKey(k))
    .map(([, v]) => v);
}

/** Convenience for one-off checks. */
export function isSecretKey(key: string, secretKeys: readonly string[] = []): boolean {
  return new Masker(secretKeys).isSecretKey(key);
}

export function maskSpec(spec: ServiceSpec, secretKeys: readonly string[] = []): ServiceSpec {
  return new Masker(secretKeys).spec(spec);
}
