// A `push` webhook body as GitHub sends it for a push of no listed commits:
// the fields berth reads (ref, after, repository, sender, installation) and
// the ones GitHub always sends beside them. Each test gives the repository
// object it needs (with or without `default_branch`, say).
export function pushEvent(repository: Record<string, unknown>, after: string, ref = 'refs/heads/main', sender = { login: 'alice', id: 1, type: 'User' }) {
  return {
    ref,
    before: '0'.repeat(40),
    after,
    created: false,
    deleted: false,
    forced: false,
    commits: [],
    head_commit: null,
    repository,
    pusher: { name: sender.login, email: null },
    sender,
    installation: { id: 1 },
  };
}
