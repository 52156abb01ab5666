// The ComposeError a call throws, for tests that assert on its file, line and text.
import { ComposeError } from '../../src/errors.js';

export function errorOf(f: () => unknown): ComposeError {
  try {
    f();
  } catch (e) {
    if (e instanceof ComposeError) return e;
    throw e;
  }
  throw new Error('expected a ComposeError');
}
