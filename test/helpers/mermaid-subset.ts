// A strict validator for the Mermaid berth emits (src/plan/mermaid.ts), used
// because the `mermaid` package cannot parse in Node without a browser DOM
// (it needs DOMPurify and a window) and is not a dependency. This is the
// grammar of exactly the subset berth writes — a `flowchart TD` of quoted
// boxes and `-->` edges, and a `gantt` with `dateFormat x` — and it is stricter
// than Mermaid: anything outside it (an unknown statement, a raw quote,
// bracket, colon, backtick, `<`, `#` not part of an entity code, an edge to an
// undeclared node, a task ending before it starts, a duplicate id) is an error.
// It also checks the Markdown wrapping: a collapsed <details> holding one
// ```mermaid fence.

export interface Diagram {
  kind: 'flowchart' | 'gantt';
  lines: string[];
}

/** Every ```mermaid block in a Markdown text, each checked to sit in a collapsed <details>. */
export function mermaidBlocks(markdown: string): Diagram[] {
  const out: Diagram[] = [];
  const re = /<details>\n<summary>[^<>`\n]+<\/summary>\n\n```mermaid\n([\s\S]*?)\n```\n\n<\/details>/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(markdown))) {
    const lines = m[1]!.split('\n');
    out.push({ kind: lines[0] === 'gantt' ? 'gantt' : 'flowchart', lines });
  }
  const fences = markdown.split('```mermaid').length - 1;
  if (fences !== out.length) throw new Error(`${fences} mermaid fences, ${out.length} of them in a collapsed <details>`);
  return out;
}

/** Label text inside `["…"]`: safe characters and Mermaid entity codes only. */
const LABEL = /^(?:[A-Za-z0-9 _.,/=+-]|#\d{1,7};)*$/;
const NAME = /^[A-Za-z0-9 _./=+-]+$/;

export function validateMermaid(text: string): string[] {
  const lines = text.split('\n');
  const problems: string[] = [];
  const bad = (i: number, why: string) => problems.push(`line ${i + 1}: ${why}: ${JSON.stringify(lines[i])}`);
  if (lines[0] === 'flowchart TD') {
    const declared = new Set<string>();
    const edges: [number, string, string][] = [];
    lines.slice(1).forEach((l, k) => {
      const i = k + 1;
      let m: RegExpExecArray | null;
      if ((m = /^ {2}([ng]\d+)\["(.*)"\]$/.exec(l))) {
        if (declared.has(m[1]!)) bad(i, 'node declared twice');
        declared.add(m[1]!);
        if (!LABEL.test(m[2]!)) bad(i, 'label has characters outside the safe set');
        if (!m[2]!.length) bad(i, 'empty label');
      } else if ((m = /^ {2}([ng]\d+) --> ([ng]\d+)$/.exec(l))) edges.push([i, m[1]!, m[2]!]);
      else bad(i, 'not a node or an edge');
    });
    for (const [i, a, b] of edges) {
      if (!declared.has(a) || !declared.has(b)) bad(i, 'edge to an undeclared node');
      if (a === b) bad(i, 'self edge');
    }
    if (!declared.size) problems.push('no nodes');
    return problems;
  }
  if (lines[0] === 'gantt') {
    if (!/^ {2}title [A-Za-z0-9 _./=+-]+$/.test(lines[1] ?? '')) bad(1, 'expected a title');
    if (lines[2] !== '  dateFormat x') bad(2, 'expected dateFormat x');
    if (lines[3] !== '  axisFormat %M:%S') bad(3, 'expected axisFormat %M:%S');
    const ids = new Set<string>();
    let section = false;
    lines.slice(4).forEach((l, k) => {
      const i = k + 4;
      let m: RegExpExecArray | null;
      if ((m = /^ {2}section (.+)$/.exec(l))) {
        section = true;
        if (!NAME.test(m[1]!)) bad(i, 'section name has characters outside the safe set');
      } else if ((m = /^ {2}([^:]+) :(?:(done|crit|active), )?(t\d+), (\d{10,16}), (\d{10,16})$/.exec(l))) {
        if (!section) bad(i, 'task before any section');
        if (!NAME.test(m[1]!) || m[1] !== m[1]!.trim()) bad(i, 'task name has characters outside the safe set');
        if (ids.has(m[3]!)) bad(i, 'duplicate task id');
        ids.add(m[3]!);
        if (Number(m[5]) <= Number(m[4])) bad(i, 'task ends before it starts');
      } else bad(i, 'not a section or a task');
    });
    if (!ids.size) problems.push('no tasks');
    return problems;
  }
  return [`unknown diagram type ${JSON.stringify(lines[0])}`];
}
