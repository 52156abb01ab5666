import { afterEach, describe, expect, it, vi } from 'vitest';
import { githubWebUrl, prLink } from '../src/github/messages.js';
import { checkRunUrl } from '../src/github/deployments.js';

describe('links to GitHub follow the instance Probot talks to', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('github.com by default', () => {
    vi.stubEnv('GHE_HOST', '');
    expect(githubWebUrl()).toBe('https://github.com');
    expect(prLink('acme/shop', 3)).toBe('[acme/shop#3](https://github.com/acme/shop/pull/3)');
  });

  it('GitHub Enterprise Server: GHE_HOST and GHE_PROTOCOL, in comments and in deployment log URLs', () => {
    vi.stubEnv('GHE_HOST', 'ghe.example.test');
    vi.stubEnv('GHE_PROTOCOL', 'http');
    expect(prLink('acme/shop', 3)).toBe('[acme/shop#3](http://ghe.example.test/acme/shop/pull/3)');
    expect(checkRunUrl('acme/shop', 42)).toBe('http://ghe.example.test/acme/shop/runs/42');
    vi.stubEnv('GHE_PROTOCOL', '');
    expect(githubWebUrl()).toBe('https://ghe.example.test');
  });
});
