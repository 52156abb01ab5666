// .env and env_file text as docker compose (compose-go's dotenv) reads it, line by line. Found by the corpus
// round of 2026-12-05 (evening): each of these was refused, cut short or left with its escapes.
import { describe, expect, it } from 'vitest';
import { DotenvError, parseDotenv } from '../src/compose/dotenv.js';

const values = (text: string) => Object.fromEntries([...parseDotenv(text)].map(([k, v]) => [k, v.value]));

describe('env files as compose reads them', () => {
  it('KEY: value (YAML style) is a line like KEY=value; the key ends at the first = or a : before it', () => {
    expect(values('DB_HOST: db\nDB_PORT:5432\nURL=http://x:8080/a\nA:B=C\n')).toEqual({ DB_HOST: 'db', DB_PORT: '5432', URL: 'http://x:8080/a', A: 'B=C' });
  });

  it('single quotes are literal but for an escaped quote, which no longer ends the value', () => {
    expect(values("SQ='it\\'s'\nRAW='a\\nb $X'\n")).toEqual({ SQ: "it's", RAW: 'a\\nb $X' });
  });

  it('double quotes take Go\'s escapes (\\a \\b \\f \\n \\r \\t \\v \\" \\\\ \\$ and \\0NNN); others stay as written', () => {
    expect(values('E="a\\bb\\tc\\vd\\fe\\af\\0101\\q\\$HOME\\\\"\n')).toEqual({ E: 'a\bb\tc\vd\fe\x07fA\\q$HOME\\' });
  });

  it('an unquoted value ends at " #"; a tab before the # is part of it, as in compose', () => {
    expect(values('A=v1 # note\nB=v2\t# kept\nC=v#3\n')).toEqual({ A: 'v1', B: 'v2\t# kept', C: 'v#3' });
  });

  it('export takes any blank after it', () => {
    expect(values('export\tX=1\nexport  Y=2\n')).toEqual({ X: '1', Y: '2' });
  });

  it('what is no variable name is still refused at its line', () => {
    expect(() => parseDotenv('OK=1\nnot a key\n')).toThrow(DotenvError);
    try {
      parseDotenv('OK=1\nnot a key\n');
    } catch (e) {
      expect(e).toMatchObject({ line: 2, hint: 'lines are KEY=VALUE (or KEY: VALUE)' });
    }
  });
});
