// The plan DAG and the apply timeline as Mermaid (issue 14): golden diagrams,
// each checked by the strict grammar of the subset berth emits
// (test/helpers/mermaid-subset.ts — the `mermaid` package needs a browser DOM
// to parse), with hostile names made inert and secrets masked.
import { expect, it } from 'vitest';
import { applyGantt, MAX_FLOWCHART_NODES, planFlowchart } from '../src/plan/mermaid.js';
import type { GanttTask } from '../src/plan/mermaid.js';
import type { NodeKind, PlanNode } from '../src/plan/plan.js';
import { mermaidBlocks, validateMermaid } from './helpers/mermaid-subset.js';
import { expectGolden } from './helpers/golden.js';

function golden(name: string, text: string) {
  expectGolden(`fixtures/comments/${name}.md`, text);
}

const node = (id: number, kind: NodeKind, resource: string, deps: number[] = []): PlanNode => ({ id, kind, resource, reason: 'missing', deps, target: {} });
const none = (s: string) => s;

function valid(markdown: string, count = 1) {
  const blocks = mermaidBlocks(markdown);
  expect(blocks).toHaveLength(count);
  for (const b of blocks) expect(validateMermaid(b.lines.join('\n'))).toEqual([]);
}

const SHOP = [
  node(1, 'CreateNetwork', 'network:back'),
  node(2, 'CreateVolume', 'volume:db-data'),
  node(3, 'EnsureImage', 'image:berth-test/app:1'),
  node(4, 'CreateContainer', 'service:db:1', [1, 2, 3]),
  node(5, 'StartContainer', 'service:db:1', [4]),
  node(6, 'WaitHealthy', 'service:db:1', [5]),
  node(7, 'CreateContainer', 'service:api:1', [1, 3, 6]),
  node(8, 'StartContainer', 'service:api:1', [7]),
];

it('the plan DAG is a flowchart of its steps and dependencies', () => {
  const chart = planFlowchart({ nodes: SHOP }, none)!;
  golden('mermaid-plan', chart);
  valid(chart);
  expect(chart).toContain('  n6 --> n7');
  expect(planFlowchart({ nodes: [] }, none)).toBeUndefined();
});

it('a plan of more than 40 steps is drawn one box per service', () => {
  const nodes: PlanNode[] = [node(1, 'CreateNetwork', 'network:default')];
  for (let s = 0; s < 15; s++) {
    const base = nodes.length;
    nodes.push(node(base + 1, 'CreateContainer', `service:svc${s}:1`, [1, ...(s ? [base] : [])]), node(base + 2, 'StartContainer', `service:svc${s}:1`, [base + 1]), node(base + 3, 'WaitHealthy', `service:svc${s}:1`, [base + 2]));
  }
  expect(nodes.length).toBeGreaterThan(MAX_FLOWCHART_NODES);
  const chart = planFlowchart({ nodes }, none)!;
  golden('mermaid-plan-summarised', chart);
  valid(chart);
  expect(chart).toContain('one box per service');
  expect(chart.match(/\["/g)).toHaveLength(16);
});

it('hostile names render inert and secrets are masked before anything else', () => {
  const evil = 'service:x"]\n  click n1 "https://evil"\n```\n<img src=x onerror=alert(1)>[a](https://e) @admin SECRET123:1';
  const redact = (s: string) => s.replaceAll('SECRET123', '••••');
  const chart = planFlowchart({ nodes: [node(1, 'CreateContainer', evil), node(2, 'StartContainer', evil, [1])] }, redact)!;
  valid(chart);
  for (const raw of ['SECRET123', '<img', '](', '"https', 'click n1 "', '@admin']) expect(chart).not.toContain(raw);
  expect(chart.split('```').length).toBe(3); // only the block's own fence
  const gantt = applyGantt('apply staging', [{ kind: 'CreateContainer', resource: evil, state: 'failed', startedAt: 1_700_000_000_000, finishedAt: 1_700_000_000_500 }], redact)!;
  valid(gantt);
  for (const raw of ['SECRET123', '<img', '](', 'https:', '@admin']) expect(gantt).not.toContain(raw);
});

const T0 = 1_764_655_200_000;
const task = (kind: string, resource: string, state: string, start: number | null, end: number | null): GanttTask => ({ kind, resource, state, startedAt: start === null ? null : T0 + start, finishedAt: end === null ? null : T0 + end });

it('the apply timeline is a Gantt chart of its tasks, one section per service; tasks that never ran are left out', () => {
  const tasks = [
    task('CreateNetwork', 'network:back', 'succeeded', 0, 120),
    task('CreateContainer', 'service:db:1', 'succeeded', 130, 400),
    task('StartContainer', 'service:db:1', 'succeeded', 400, 900),
    task('WaitHealthy', 'service:db:1', 'failed', 900, 3900),
    task('CreateContainer', 'service:api:1', 'skipped', null, null),
    task('StartContainer', 'service:web:1', 'succeeded', 950, 950),
  ];
  const chart = applyGantt('apply staging', tasks, none)!;
  golden('mermaid-apply', chart);
  valid(chart);
  expect(chart).toContain('section db');
  expect(chart).not.toContain('service api');
  expect(applyGantt('x', [task('CreateContainer', 'service:a:1', 'cancelled', null, null)], none)).toBeUndefined();
});

it('an apply of more than 100 tasks is drawn one bar per service', () => {
  const tasks: GanttTask[] = [];
  for (let i = 0; i < 120; i++) tasks.push(task('StartContainer', `service:s${i % 4}:${i}`, i === 7 ? 'failed' : 'succeeded', i * 10, i * 10 + 50));
  const chart = applyGantt('apply production', tasks, none)!;
  golden('mermaid-apply-summarised', chart);
  valid(chart);
  expect(chart.split('\n').filter((l) => / :(done|crit|active)?/.test(l))).toHaveLength(4);
  expect(chart).toContain(':crit, ');
});

it('the validator is strict: it rejects what the subset does not allow', () => {
  expect(validateMermaid('flowchart TD\n  n1["a"]\n  n1 --> n2')).toHaveLength(1);
  expect(validateMermaid('flowchart TD\n  n1["a:b"]')).toHaveLength(1);
  expect(validateMermaid('flowchart TD\n  n1["a"]\n  click n1 "https://x"')).toHaveLength(1);
  expect(validateMermaid('gantt\n  title x\n  dateFormat x\n  axisFormat %M:%S\n  section a\n  b :t1, 1700000000500, 1700000000000')).toHaveLength(1);
  expect(validateMermaid('graph LR\n  a-->b')).toHaveLength(1);
});
