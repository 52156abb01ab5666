// Global setup of the chaos suite: starts an empty figures file, and at the
// end prints one table of what every chaos file recorded (faults injected /
// survived, hostile inputs tried / handled, webhooks sent / handled, secrets
// leaked), also saved as .chaos/figures.md for the README.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

const FILE = '.chaos/figures.jsonl';

interface Line {
  section: string;
  tried?: number;
  handled?: number;
  injected?: number;
  survived?: number;
  sent?: number;
  leaked?: number;
  [k: string]: unknown;
}

export function renderFigures(lines: Line[]): string {
  const by = new Map<string, Line>();
  for (const l of lines) {
    const prev = by.get(l.section) ?? { section: l.section };
    for (const [k, v] of Object.entries(l)) if (typeof v === 'number') prev[k] = ((prev[k] as number | undefined) ?? 0) + v;
    else if (k !== 'section') prev[k] = v;
    by.set(l.section, prev);
  }
  const rows = [...by.values()].map((l) => {
    const total = l.injected ?? l.tried ?? l.sent ?? 0;
    const ok = l.survived ?? l.handled ?? (l.leaked !== undefined ? l.leaked : 0);
    const what = l.injected !== undefined ? 'injected / survived' : l.leaked !== undefined ? 'planted / leaked' : l.sent !== undefined ? 'sent / handled' : 'tried / handled';
    const extra = Object.entries(l)
      .filter(([k]) => !['section', 'tried', 'handled', 'injected', 'survived', 'sent', 'leaked'].includes(k))
      .map(([k, v]) => `${k}=${v}`)
      .join(', ');
    return `| ${l.section} | ${what} | ${total} / ${ok} | ${extra} |`;
  });
  return ['| section | measure | figures | notes |', '|---|---|---|---|', ...rows].join('\n');
}

export default function setup() {
  mkdirSync('.chaos', { recursive: true });
  rmSync(FILE, { force: true });
  return () => {
    const lines = existsSync(FILE)
      ? readFileSync(FILE, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Line)
      : [];
    const table = renderFigures(lines);
    writeFileSync('.chaos/figures.md', table + '\n');
    console.log(`\nberth chaos figures\n\n${table}\n`);
  };
}
