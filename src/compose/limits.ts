// How large a desired state berth plans. The PR author writes the compose
// files, and a few characters can ask for a hundred million containers
// (`replicas: 100000000`) or every port of the host (`"1-65535:1-65535"`):
// each is a node of the plan, a line of the PR comment and a Docker call.
// These bounds are far above what real stacks ask for, and are checked while
// the files are read — before anything is expanded, planned or rendered.

/** Containers of one environment: every service's replicas together. */
export const MAX_CONTAINERS = 1000;
/** Published port bindings of one service, and of one environment (a range counts each of its ports). */
export const MAX_PORTS = 65_536;
/** `expose:` ports of one service, and of one environment (a range counts each of its ports). */
export const MAX_EXPOSED = 65_536;
