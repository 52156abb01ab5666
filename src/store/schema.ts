// The Database type: one interface per table, as Kysely sees it. Column names
// are the database's (snake_case); the Store's row types (store.ts) are built
// from them by rows.ts. Integer columns are typed as numbers for writes; a
// driver may still hand BIGINTs back as strings (pg) or bigints, which is why
// every read goes through rows.ts's coercions. This file has no behaviour.
import type { Generated } from 'kysely';

export interface AppliesTable {
  seq: Generated<number>;
  id: string;
  repo: string;
  pr: number | null;
  environment: string;
  kind: string;
  actor: string;
  head_sha: string | null;
  desired_digest: string;
  plan_fingerprint: string | null;
  state: string;
  version: number;
  stop_requested: number;
  check_run_id: number | null;
  comment_id: number | null;
  /** the PR comment whose command made the apply (migration 0012) */
  command_comment_id: number | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  error: string | null;
  /** 1 while the apply is in flight, NULL once it ended: the unique index (repo, environment, live) allows one live apply. */
  live: number | null;
  /** set once the apply's final report is out (every send succeeded or failed for good) */
  reported_at: number | null;
  /** when the report's sending was claimed, and by whom (version 9): a claim older than a lease is taken over */
  report_claimed_at: number | null;
  report_holder: string | null;
}

export interface OperationsTable {
  id: string;
  apply_id: string;
  target: string;
  ordinal: number;
  state: string;
  version: number;
  started_at: number | null;
  finished_at: number | null;
  error: string | null;
}

export interface TasksTable {
  id: string;
  operation_id: string;
  apply_id: string;
  node_id: number;
  kind: string;
  resource: string;
  reason: string;
  /** JSON array of node ids */
  deps: string;
  node_json: string;
  state: string;
  version: number;
  error: string | null;
  result: string | null;
  started_at: number | null;
  finished_at: number | null;
}

export interface LocksTable {
  repo: string;
  environment: string;
  owner: string;
  pr: number;
  apply_id: string | null;
  created_at: number;
}

export interface PlansTable {
  seq: Generated<number>;
  id: string;
  repo: string;
  pr: number | null;
  environment: string;
  head_sha: string;
  fingerprint: string;
  desired_digest: string;
  observed_digest: string;
  plan_json: string;
  rendered: string;
  created_at: number;
}

export interface DeliveriesTable {
  delivery_id: string;
  event: string;
  received_at: number;
  payload: string | null;
  /** 'received' (work to do) or 'done' */
  state: Generated<string>;
  claimed_by: string | null;
  claimed_until: number | null;
  /** how many times its work was claimed (the first receipt included) */
  attempts: Generated<number>;
}

export interface ContainersTable {
  target: string;
  container_id: string;
  project: string;
  environment: string;
  service: string;
  replica: number;
  name: string;
  state: string;
  config_hash: string;
  apply_id: string | null;
  seen_at: number;
  updated_at: number;
}

export interface CommentsTable {
  repo: string;
  pr: number;
  /** JSON array of comment ids */
  comment_ids: string;
  updated_at: number;
}

export interface LeasesTable {
  name: string;
  holder: string;
  expires_at: number;
  token: string | null;
}

export interface ProjectOwnersTable {
  target: string;
  project: string;
  repo: string;
  claimed_at: number;
}

export interface PrHeadsTable {
  repo: string;
  pr: number;
  head_sha: string;
  seen_at: number;
  /** who pushed the head (its opened/synchronize webhook's sender; migration 0014); null when berth does not know */
  pushed_by: string | null;
}

export interface BranchPushesTable {
  repo: string;
  /** the commit a push made a branch's head (its `after`) */
  head_sha: string;
  /** the push webhook's sender (migration 0015) */
  pushed_by: string;
  seen_at: number;
}

export interface DeploymentsTable {
  apply_id: string;
  repo: string;
  environment: string;
  /** JSON: ref, environment URL, production/transient flags, the log URL */
  spec: string;
  deployment_id: number | null;
  state: string | null;
  created_at: number;
}

export interface SecretsTable {
  repo: string;
  environment: string;
  name: string;
  key_id: string;
  nonce: string;
  /** AES-256-GCM under key_id: the only column that depends on the value */
  ciphertext: string;
  value_hash: string;
  set_by: string;
  set_at: number;
}

export interface FileBlobsTable {
  repo: string;
  /** the Git blob name (SHA-1, or SHA-256 in a SHA-256 repository) the text hashes to */
  blob: string;
  text: string;
  stored_at: number;
}

/** An apply's desired state, apart from its row (migration 0013): the row's writes and state reads do not carry it. */
export interface ApplyPayloadsTable {
  apply_id: string;
  desired_json: string;
}

export interface Database {
  applies: AppliesTable;
  apply_payloads: ApplyPayloadsTable;
  apply_operations: OperationsTable;
  tasks: TasksTable;
  locks: LocksTable;
  plans: PlansTable;
  deliveries: DeliveriesTable;
  containers: ContainersTable;
  comments: CommentsTable;
  leases: LeasesTable;
  project_owners: ProjectOwnersTable;
  pr_heads: PrHeadsTable;
  branch_pushes: BranchPushesTable;
  deployments: DeploymentsTable;
  secrets: SecretsTable;
  file_blobs: FileBlobsTable;
}
