// Golden files for rendered comments: compared byte for byte; written when
// UPDATE_GOLDEN is set (review the diff) or when the file does not exist yet.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { expect } from 'vitest';

export function expectGolden(file: string, text: string): void {
  if (process.env.UPDATE_GOLDEN || !existsSync(file)) writeFileSync(file, text);
  expect(text).toBe(readFileSync(file, 'utf8'));
}
