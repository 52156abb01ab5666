import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { APPLY_TABLE, OPERATION_TABLE, decidingRow, deriveApplyState, deriveApplyWithSibling, deriveOperationState } from '../src/apply/derive-state.js';
import type { AggregateState, TaskState } from '../src/store/store.js';
import { AGGREGATE_STATES, TASK_STATES, TERMINAL_AGGREGATE_STATES } from '../src/store/store.js';

// One example per row of each table: the inputs, and the state the row yields.
// The test asserts the example is decided by exactly that row, so a row that
// is shadowed by an earlier one, or missing, fails here.
const operationRows: [string, TaskState[], boolean, AggregateState][] = [
  ['no tasks', [], false, 'completed'],
  ['a task is running and a stop was requested', ['running', 'pending', 'failed'], true, 'stopping'],
  ['a task is running and a task failed', ['running', 'failed', 'pending'], false, 'running_degraded'],
  ['a task is running', ['running', 'succeeded', 'pending'], false, 'running'],
  ['a task is pending and a stop was requested', ['pending', 'succeeded'], true, 'stopping'],
  ['a task is pending and a task failed', ['pending', 'failed', 'skipped'], false, 'running_degraded'],
  ['every task is pending', ['pending', 'pending'], false, 'pending'],
  ['a task is pending and others have finished', ['pending', 'succeeded'], false, 'running'],
  ['all finished and a task failed', ['failed', 'cancelled', 'skipped', 'succeeded'], false, 'failed'],
  ['all finished and a task was cancelled', ['cancelled', 'succeeded', 'skipped'], true, 'stopped'],
  ['all finished, tasks skipped after a stop', ['skipped', 'succeeded'], true, 'stopped'],
  ['all finished, tasks skipped with no recorded cause', ['skipped', 'succeeded'], false, 'failed'],
  ['every task succeeded', ['succeeded', 'succeeded'], false, 'completed'],
];

const applyRows: [string, AggregateState[], boolean, AggregateState][] = [
  ['no operations', [], false, 'completed'],
  ['an operation is stopping', ['stopping', 'running_degraded', 'failed'], false, 'stopping'],
  ['an operation is running with a failure', ['running_degraded', 'running', 'completed'], false, 'running_degraded'],
  ['an operation is in flight and another failed', ['pending', 'failed'], false, 'running_degraded'],
  ['an operation is in flight and a stop was requested', ['running', 'completed'], true, 'stopping'],
  ['an operation is running', ['running', 'pending', 'completed'], false, 'running'],
  ['every operation is pending', ['pending', 'pending'], false, 'pending'],
  ['an operation is pending and others have finished', ['pending', 'completed'], false, 'running'],
  ['all finished and an operation failed', ['failed', 'stopped', 'completed'], false, 'failed'],
  ['all finished and an operation stopped', ['stopped', 'completed'], false, 'stopped'],
  ['every operation completed', ['completed', 'completed'], false, 'completed'],
];

describe('operation state table', () => {
  it('has one example per row, in order', () => {
    expect(operationRows.map((r) => r[0])).toEqual(OPERATION_TABLE.map((r) => r.when));
  });
  it.each(operationRows.map((r, i) => [i, ...r] as const))('row %i: %s', (i, _when, tasks, stop, expected) => {
    expect(decidingRow(OPERATION_TABLE, tasks, stop)).toBe(i);
    expect(deriveOperationState(tasks, stop)).toBe(expected);
    // Order of the children never matters.
    expect(deriveOperationState([...tasks].reverse(), stop)).toBe(expected);
  });
});

describe('apply state table', () => {
  it('has one example per row, in order', () => {
    expect(applyRows.map((r) => r[0])).toEqual(APPLY_TABLE.map((r) => r.when));
  });
  it.each(applyRows.map((r, i) => [i, ...r] as const))('row %i: %s', (i, _when, ops, stop, expected) => {
    expect(decidingRow(APPLY_TABLE, ops, stop)).toBe(i);
    expect(deriveApplyState(ops, stop)).toBe(expected);
    expect(deriveApplyState([...ops].reverse(), stop)).toBe(expected);
  });
});

describe('derivation invariants (every combination)', () => {
  const tasks = fc.array(fc.constantFrom(...TASK_STATES), { maxLength: 6 });
  it('an operation is terminal exactly when no task is pending or running', () => {
    fc.assert(
      fc.property(tasks, fc.boolean(), (ts, stop) => {
        const s = deriveOperationState(ts, stop);
        const open = ts.some((t) => t === 'pending' || t === 'running');
        expect(TERMINAL_AGGREGATE_STATES.includes(s)).toBe(!open);
        if (s === 'completed') expect(ts.every((t) => t === 'succeeded')).toBe(true);
        if (ts.includes('failed')) expect(['running_degraded', 'failed', 'stopping']).toContain(s);
      }),
    );
  });
  it('an apply completes only when every operation completed, and is terminal only when all are', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...AGGREGATE_STATES), { maxLength: 5 }), fc.boolean(), (ops, stop) => {
        const s = deriveApplyState(ops, stop);
        if (s === 'completed') expect(ops.every((o) => o === 'completed')).toBe(true);
        expect(TERMINAL_AGGREGATE_STATES.includes(s)).toBe(ops.every((o) => TERMINAL_AGGREGATE_STATES.includes(o)));
      }),
    );
  });
});

describe('deriveApplyWithSibling', () => {
  const siblings = [
    { id: 'a', state: 'running' as AggregateState },
    { id: 'b', state: 'completed' as AggregateState },
  ];
  it('folds the fresh state of the current operation over its stale row', () => {
    expect(deriveApplyWithSibling({ stored: 'running', current: { operationId: 'a', state: 'completed' }, siblings })).toBe('completed');
    expect(deriveApplyWithSibling({ stored: 'running', current: { operationId: 'a', state: 'failed' }, siblings })).toBe('failed');
  });
  it('keeps a sibling failure when the current operation is fine', () => {
    const s = [...siblings, { id: 'c', state: 'failed' as AggregateState }];
    expect(deriveApplyWithSibling({ stored: 'running', current: { operationId: 'a', state: 'running' }, siblings: s })).toBe('running_degraded');
    expect(deriveApplyWithSibling({ stored: 'running', current: { operationId: 'a', state: 'completed' }, siblings: s })).toBe('failed');
  });
  it('fails closed when siblings cannot be read', () => {
    expect(deriveApplyWithSibling({ stored: 'running', current: { operationId: 'a', state: 'completed' }, siblings: new Error('db down') })).toBe('running');
  });
  it('fails closed on a partial read that lacks the current operation', () => {
    expect(deriveApplyWithSibling({ stored: 'running', current: { operationId: 'z', state: 'completed' }, siblings })).toBe('running');
  });
  it('never leaves a terminal state', () => {
    expect(deriveApplyWithSibling({ stored: 'failed', current: { operationId: 'a', state: 'completed' }, siblings })).toBe('failed');
  });
  it('a stop request on the apply turns in-flight into stopping', () => {
    expect(deriveApplyWithSibling({ stored: 'running', current: { operationId: 'a', state: 'running' }, siblings, stopRequested: true })).toBe('stopping');
  });
});
