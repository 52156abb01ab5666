// Version 11: how many times a delivery's work was claimed. A delivery whose
// handling takes the process down (a crash, the out-of-memory killer) is
// claimed again by the next start's recovery, and would take that process
// down too, for ever; after a few claims it is given up (logged), so one bad
// delivery cannot keep the app from serving. Rows from before count as none.
import { kindOf, tolerated, types, type Db } from './kit.js';

export async function up(db: Db): Promise<void> {
  const kind = kindOf(db);
  const t = types(kind);
  await tolerated(kind, db.schema.alterTable('deliveries').addColumn('attempts', t.int, (c) => c.notNull().defaultTo(0)).execute());
}
