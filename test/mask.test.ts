import { describe, expect, it } from 'vitest';
import { MASK, Masker, isSecretKey, maskSpec } from '../src/plan/mask.js';
import { diffSpecs } from '../src/plan/render.js';
import type { TaintedInput } from '../src/compose/taint.js';
import { isTaintedField, secretFieldsOf } from '../src/compose/taint.js';
import { spec } from './helpers/specs.js';

describe('isSecretKey', () => {
  it.each([
    'DB_PASSWORD',
    'password',
    'MYSQL_ROOT_PASSWD',
    'AWS_SECRET_ACCESS_KEY',
    'client_secret',
    'GITHUB_TOKEN',
    'api_key',
    'ApiKey',
    'SSH_PRIVATE',
    'GOOGLE_APPLICATION_CREDENTIALS',
    '--password',
    'DB_PASS',
    '--requirepass',
  ])('%s is secret', (k) => expect(isSecretKey(k)).toBe(true));

  it.each(['DB_HOST', 'PORT', 'LOG_LEVEL', 'PATH', 'PWD', 'USER'])('%s is not', (k) => expect(isSecretKey(k)).toBe(false));

  it('honours configured keys, case-insensitively, also as flags', () => {
    expect(isSecretKey('DSN', ['dsn'])).toBe(true);
    expect(isSecretKey('--dsn', ['DSN'])).toBe(true);
    expect(isSecretKey('DSN_HOST', ['DSN'])).toBe(false);
  });
});

describe('Masker.value', () => {
  const m = new Masker(['SENTRY_DSN']);
  it('masks by key without revealing the length', () => {
    expect(m.value('DB_PASSWORD', 'x')).toBe(MASK);
    expect(m.value('DB_PASSWORD', 'a-very-long-password-indeed')).toBe(MASK);
    expect(m.value('SENTRY_DSN', 'https://abc@sentry.example/1')).toBe(MASK);
  });
  it('keeps ordinary values but masks secrets inside them', () => {
    expect(m.value('DB_HOST', 'db')).toBe('db');
    expect(m.value('DATABASE_URL', 'postgres://app:hunter22@db:5432/app')).toBe(`postgres://app:${MASK}@db:5432/app`);
    expect(m.value('OPTS', '--log=info --api-token=t0ken --x=1')).toBe(`--log=info --api-token=${MASK} --x=1`);
  });
});

describe('Masker.inline and args', () => {
  const m = new Masker();
  it.each([
    ['--password=hunter22', `--password=${MASK}`],
    ['-password=hunter22', `-password=${MASK}`],
    ['DB_PASSWORD=hunter22', `DB_PASSWORD=${MASK}`],
    ['mysqld --password hunter22 --user app', `mysqld --password ${MASK} --user app`],
    ['export API_KEY="a b c"; run', `export API_KEY=${MASK}; run`],
    ['TOKEN=abc&mode=1', `TOKEN=${MASK}&mode=1`],
    ['redis://:s3cret@cache:6379', `redis://:${MASK}@cache:6379`],
    ['--no-password --verbose', '--no-password --verbose'],
    ['LEVEL=debug', 'LEVEL=debug'],
    ['sleep 3600', 'sleep 3600'],
    // the pre-check before the patterns: a flag's value after a tab, a newline or a no-break space
    ['run --password\thunter22', `run --password\t${MASK}`],
    ['run\n--token\nabc123', `run\n--token\n${MASK}`],
    ['--secret\u00a0abc123', `--secret\u00a0${MASK}`],
    ['no-dash-no-space', 'no-dash-no-space'],
  ])('%s → %s', (input, want) => expect(m.inline(input)).toBe(want));

  it('masks the argument after a secret flag', () => {
    expect(m.args(['app', '--token', 'abc123', '--port', '80', '--secret=x'])).toEqual(['app', '--token', MASK, '--port', '80', `--secret=${MASK}`]);
    expect(m.args(['sh', '-c', 'PGPASSWORD=pw123 psql -h db'])).toEqual(['sh', '-c', `PGPASSWORD=${MASK} psql -h db`]);
  });
});

describe('maskSpec', () => {
  it('masks environment, labels, command, entrypoint and healthcheck, and leaves the input alone', () => {
    const s = spec('api', {
      environment: { DB_HOST: 'db', DB_PASSWORD: 'pw-1' },
      labels: { 'com.example.token': 'lbl-secret', team: 'core' },
      command: ['serve', '--password=cmd-secret'],
      entrypoint: ['env', 'API_KEY=ep-secret', '--'],
      healthcheck: { test: ['CMD', 'check', '--token', 'hc-secret'], intervalMs: 1000, timeoutMs: 1000, retries: 3, startPeriodMs: 0 },
    });
    const copy = structuredClone(s);
    const masked = maskSpec(s);
    expect(s).toEqual(copy);
    expect(masked.environment).toEqual({ DB_HOST: 'db', DB_PASSWORD: MASK });
    expect(masked.labels).toEqual({ 'com.example.token': MASK, team: 'core' });
    expect(masked.command).toEqual(['serve', `--password=${MASK}`]);
    expect(masked.entrypoint).toEqual(['env', `API_KEY=${MASK}`, '--']);
    expect(masked.healthcheck!.test).toEqual(['CMD', 'check', '--token', MASK]);
    const text = JSON.stringify(masked);
    for (const planted of ['pw-1', 'lbl-secret', 'cmd-secret', 'ep-secret', 'hc-secret']) expect(text).not.toContain(planted);
  });
});

describe('Masker.redact', () => {
  it('replaces every secret value it has seen, longest first, and ignores very short ones', () => {
    const m = new Masker();
    m.collect(spec('a', { environment: { PASSWORD: 'hunter2', PASSWORD_LONG: 'hunter2-and-more', TOKEN: 'x1' } }));
    expect(m.redact('cmd hunter2-and-more then hunter2; x1 stays')).toBe(`cmd ${MASK} then ${MASK}; x1 stays`);
  });
  it('treats regex characters in secrets literally', () => {
    const m = new Masker();
    m.value('SECRET', 'a.b*c(d)');
    expect(m.redact('a.b*c(d) aXbbc(d)')).toBe(`${MASK} aXbbc(d)`);
  });
  it('is the identity when nothing secret was seen', () => {
    expect(new Masker().redact('anything')).toBe('anything');
  });
});

// A compose service may be named like a member of Object.prototype: looking it up as a property
// of a plain object found that member, and masking or diffing it threw (a plan that cannot render).
describe('services named like Object.prototype members', () => {
  it.each(['constructor', 'toString', 'hasOwnProperty', 'valueOf'])('%s is masked, diffed and taint-checked like any other', (name) => {
    const m = new Masker([], [], { other: ['image'] });
    const s = spec(name, { environment: { DB_PASSWORD: 'hunter22', MODE: 'x' } });
    expect(m.spec(s).environment).toEqual({ DB_PASSWORD: MASK, MODE: 'x' });
    expect(diffSpecs(undefined, s, { masker: m })).toContain(`+ environment.DB_PASSWORD: ${MASK}`);
    expect(isTaintedField({ other: ['image'] }, name, 'image')).toBe(false);
    const fields = secretFieldsOf([{ path: ['services', name, 'image'], raw: '${IMG}', value: 'x', file: 'compose.yml' } as TaintedInput]);
    expect(fields[name]).toEqual(['image']);
    expect(isTaintedField(fields, name, 'image')).toBe(true);
    expect(new Masker([], [], fields).spec(s).image).toBe(MASK);
  });
});

describe('Docker messages: a secret by its pieces', () => {
  it('withPieces masks each piece a parser could quote (from four characters), and the plan\'s masker does not', () => {
    const m = new Masker([], ['1000:Tr0ub4dorAnd3', 'postgres://app:s3cretpw@db:5432/app']);
    expect(m.text('unable to find group Tr0ub4dorAnd3: no matching entries')).toContain('Tr0ub4dorAnd3');
    m.withPieces();
    expect(m.text('unable to find group Tr0ub4dorAnd3: no matching entries')).toBe(`unable to find group ${MASK}: no matching entries`);
    expect(m.text('password authentication failed for s3cretpw')).not.toContain('s3cretpw');
    // written whole, nothing of it shows; a short piece (app, db) is not a mask of its own
    expect(m.text('url postgres://app:s3cretpw@db:5432/app')).not.toMatch(/s3cretpw|postgres|5432/);
    expect(m.text('the app db')).toBe('the app db');
    // pieces come from the values as given: not from their escaped forms (`&#95;`), nor from a server-side
    // secret's placeholder, whose name is said in messages ("secret DB_PASSWORD … changed after the plan")
    const placeholder = new Masker([], ['berth-secret.DB_PASSWORD.0123456789abcdef0123456789abcdef', 'x_y.z:Pa55_word']).withPieces();
    expect(placeholder.text('secret DB_PASSWORD of acme/shop staging changed')).toBe('secret DB_PASSWORD of acme/shop staging changed');
    expect(placeholder.text('group Pa55_word')).toBe(`group ${MASK}`);
  });
});

describe("a secret as Go's encoding/json writes it", () => {
  it('is masked whole when its <, > and & come as \\u003c, \\u003e and \\u0026 (a message embedding Docker\'s JSON)', () => {
    const secret = 'Amp3rs&nd<Less>Yak9';
    const m = new Masker([], [secret]).withPieces();
    const message = 'registry said: {"errors":[{"detail":"Amp3rs\\u0026nd\\u003cLess\\u003eYak9"}]}';
    expect(m.text(message)).toBe(`registry said: {"errors":[{"detail":"${MASK}"}]}`);
    // and quoted again (a JSON document inside a quoted message), and in a plan's masker without pieces
    expect(new Masker([], [secret]).text(`error: "{\\"p\\":\\"Amp3rs\\\\u0026nd\\\\u003cLess\\\\u003eYak9\\"}"`)).not.toMatch(/Amp3rs|Less|Yak9/);
  });
});
