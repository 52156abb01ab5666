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
/**
 * Network attachments of one environment: each container on each of its service's networks. Every one past a
 * container's first network is a ConnectNetwork step, so containers and networks multiply: a 17 KB file of a
 * thousand networks and a thousand replicas asked for a million steps (17 s and 1.7 GB of the app's one thread
 * before the planner ran out of stack).
 */
export const MAX_NETWORK_ATTACHMENTS = 10_000;
/**
 * What the containers of one environment refer to, together: each container's mounts, dependencies
 * (depends_on, links, volumes_from) and config and secret files. Each is an edge of the plan (a container's
 * create waits for every volume it mounts and every service it depends on), so a few replicas and one long
 * anchored list multiply: a 550 KB file of 20,000 volumes and 1,000 replicas made 20 million edges
 * (14 s, 1.7 GB and a 110 MB plan comment); a larger one ran the app out of memory.
 */
export const MAX_CONTAINER_REFERENCES = 50_000;
/**
 * Services of one environment, whatever their replicas: a service of `scale: 0` has no container (so
 * MAX_CONTAINERS does not count it) but is still a resource of the plan, a section of the PR comment and a node
 * of the depends_on walk. 16,000 of them fit in a 1 MB file, and chained by depends_on they took the loader's
 * cycle search past the stack after holding the app's thread for seconds.
 */
export const MAX_SERVICES = 1000;
