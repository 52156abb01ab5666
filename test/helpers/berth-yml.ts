// A `.github/berth.yml` for tests that drive the whole app: one project, its
// environments on the `local` target, and an optional policy, so each test
// states only what it is about.
export interface TestEnvironment {
  name: string;
  compose: string[];
  /** further keys of the environment, one YAML line each (indented for you) */
  extra?: string[];
}

export function berthYml(project: string, environments: TestEnvironment[], policy: string[] = []): string {
  const lines = [`project: ${project}`, 'environments:'];
  for (const e of environments) lines.push(`  - name: ${e.name}`, `    compose: [${e.compose.join(', ')}]`, '    targets: [local]', ...(e.extra ?? []).map((l) => `    ${l}`));
  if (policy.length) lines.push('policy:', ...policy.map((l) => `  ${l}`));
  return lines.join('\n') + '\n';
}
