// Pictures of a plan and of an apply (issue 14), as Mermaid diagrams GitHub
// draws in comments: the plan DAG as a flowchart, the apply's tasks as a
// Gantt chart, each in a collapsed <details>.
//
// Pure. The subset emitted is small and fixed (test/helpers/mermaid-subset.ts
// is its strict grammar): every label is first masked by the caller's
// redactor, then reduced to characters that are inert in Mermaid, Markdown and
// HTML — flowchart labels keep other characters as Mermaid entity codes
// (`#35;`), Gantt names (which have no entity codes) replace them with spaces.
// Nothing a PR author wrote can close the fence, inject a link or a click.
import type { Plan, PlanNode } from './plan.js';

/** Larger plans are drawn one box per service. */
export const MAX_FLOWCHART_NODES = 40;
/** Larger applies are drawn one bar per service. */
export const MAX_GANTT_TASKS = 100;

export type Redact = (s: string) => string;

const SAFE = /[A-Za-z0-9 _.,/=+-]/;

/** A flowchart label: safe characters as they are, the rest as Mermaid entity codes (`#58;`). */
export function flowLabel(s: string): string {
  let out = '';
  for (const ch of s.slice(0, 120)) out += SAFE.test(ch) ? ch : `#${ch.codePointAt(0)};`;
  return out;
}

/** A Gantt task or section name: safe characters only (a `:` or `#` would end or break the line). */
export function ganttName(s: string): string {
  const cleaned = [...s.slice(0, 80)].map((ch) => (SAFE.test(ch) && ch !== ',' ? ch : ' ')).join('');
  return cleaned.replace(/ +/g, ' ').trim() || 'step';
}

/** The service a node or task acts on, or the kind of infrastructure. */
export function groupOf(resource: string): string {
  const [kind, name] = resource.split(':', 2);
  if (kind === 'service' && name) return name;
  if (kind === 'network' || kind === 'volume' || kind === 'image') return `${kind}s`;
  return kind || 'other';
}

function details(summary: string, body: string[]): string {
  return ['<details>', `<summary>${summary}</summary>`, '', '```mermaid', ...body, '```', '', '</details>'].join('\n');
}

/** The plan DAG as a flowchart; a plan of more than 40 nodes as one box per service (with its step count). */
export function planFlowchart(plan: Pick<Plan, 'nodes'>, redact: Redact): string | undefined {
  const nodes = plan.nodes;
  if (!nodes.length) return undefined;
  const lines = ['flowchart TD'];
  if (nodes.length <= MAX_FLOWCHART_NODES) {
    for (const n of nodes) lines.push(`  n${n.id}["${flowLabel(`${n.id}. ${n.kind} ${redact(n.resource)}`)}"]`);
    for (const n of nodes) for (const d of n.deps) lines.push(`  n${d} --> n${n.id}`);
    return details(`Plan graph (${nodes.length} step${nodes.length === 1 ? '' : 's'})`, lines);
  }
  const groups = new Map<string, PlanNode[]>();
  for (const n of nodes) {
    const g = groupOf(redact(n.resource));
    groups.set(g, [...(groups.get(g) ?? []), n]);
  }
  const index = new Map([...groups.keys()].map((g, i) => [g, i + 1]));
  const groupOfNode = new Map(nodes.map((n) => [n.id, index.get(groupOf(redact(n.resource)))!]));
  for (const [g, ns] of groups) {
    const kinds = [...new Set(ns.map((n) => n.kind))].join(', ');
    lines.push(`  g${index.get(g)}["${flowLabel(`${g}: ${ns.length} step${ns.length === 1 ? '' : 's'} (${kinds})`)}"]`);
  }
  const edges = new Set<string>();
  for (const n of nodes) for (const d of n.deps) if (groupOfNode.get(d) !== groupOfNode.get(n.id)) edges.add(`  g${groupOfNode.get(d)} --> g${groupOfNode.get(n.id)}`);
  lines.push(...[...edges].sort());
  return details(`Plan graph (${nodes.length} steps, one box per service)`, lines);
}

export interface GanttTask {
  kind: string;
  resource: string;
  state: string;
  startedAt: number | null;
  finishedAt: number | null;
}

const TAG: Record<string, string> = { succeeded: 'done, ', failed: 'crit, ', running: 'active, ' };

/** The apply's tasks on a timeline, one section per service; more than 100 tasks as one bar per service. Tasks that never ran are left out. */
export function applyGantt(title: string, tasks: readonly GanttTask[], redact: Redact): string | undefined {
  const ran = tasks.filter((t): t is GanttTask & { startedAt: number } => t.startedAt !== null);
  if (!ran.length) return undefined;
  const end = (t: GanttTask & { startedAt: number }) => Math.max(t.startedAt + 1, t.finishedAt ?? t.startedAt + 1);
  const sections = new Map<string, (GanttTask & { startedAt: number })[]>();
  for (const t of ran) {
    const g = ganttName(groupOf(redact(t.resource)));
    sections.set(g, [...(sections.get(g) ?? []), t]);
  }
  const lines = ['gantt', `  title ${ganttName(title)}`, '  dateFormat x', '  axisFormat %M:%S'];
  let id = 0;
  const summarised = ran.length > MAX_GANTT_TASKS;
  for (const [name, ts] of sections) {
    lines.push(`  section ${name}`);
    if (summarised) {
      const start = Math.min(...ts.map((t) => t.startedAt));
      const stop = Math.max(...ts.map(end));
      const tag = ts.some((t) => t.state === 'failed') ? TAG.failed : ts.some((t) => t.state === 'running') ? TAG.running : TAG.succeeded;
      lines.push(`  ${name} ${ts.length} steps :${tag}t${++id}, ${start}, ${stop}`);
    } else {
      // Plan order, not start order: steps that start together must not swap places between two drawings.
      for (const t of ts) lines.push(`  ${ganttName(`${t.kind} ${redact(t.resource)}`)} :${TAG[t.state] ?? ''}t${++id}, ${t.startedAt}, ${end(t)}`);
    }
  }
  return details(`Timeline (${ran.length} step${ran.length === 1 ? '' : 's'}${summarised ? ', one bar per service' : ''})`, lines);
}
