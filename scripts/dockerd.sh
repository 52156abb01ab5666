#!/usr/bin/env bash
# The one way berth's CI and tests start, find and stop the Docker engine:
# by the PID in dockerd's pid file, checked to be the dockerd that serves the
# socket, never by process name (which would also hit an engine something
# else on the machine runs).
#
#   scripts/dockerd.sh pid            print the PID of the dockerd serving $DOCKER_SOCK
#   scripts/dockerd.sh start [ARGS]   start dockerd ARGS (+ --pidfile) in the background, wait until it answers
#   scripts/dockerd.sh stop           SIGTERM that dockerd, wait until it exited; print how to start it again
#
# `stop` prints, one per line: the log file, the dockerd binary, then each of
# its arguments, read from /proc before it was signalled, so that
# `DOCKERD_LOG=<log> DOCKERD_BIN=<bin> scripts/dockerd.sh start <args>` brings
# back the same engine (same flags, same log) the way .ci/run started it.
#
# Environment: DOCKER_SOCK (/var/run/docker.sock), DOCKERD_PIDFILE
# (/var/run/docker.pid, dockerd's default), DOCKERD_LOG
# (/var/log/berth-ci-dockerd.log), DOCKERD_BIN (dockerd), WAIT_SECONDS (90).
set -euo pipefail

DOCKER_SOCK=${DOCKER_SOCK:-/var/run/docker.sock}
DOCKERD_PIDFILE=${DOCKERD_PIDFILE:-/var/run/docker.pid}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/berth-ci-dockerd.log}
DOCKERD_BIN=${DOCKERD_BIN:-dockerd}
WAIT_SECONDS=${WAIT_SECONDS:-90}

die() { printf '[dockerd] ERROR: %s\n' "$*" >&2; exit 1; }
log() { printf '[dockerd] %s\n' "$*" >&2; }

docker_bin() {
  if [[ -x /usr/bin/docker ]]; then echo /usr/bin/docker; else command -v docker || echo docker; fi
}
answers() { timeout 10 "$(docker_bin)" -H "unix://$DOCKER_SOCK" info >/dev/null 2>&1; }

# The inode of the listening unix socket bound at $DOCKER_SOCK (from the kernel's table).
socket_inode() {
  local path
  path=$(readlink -f "$DOCKER_SOCK" 2>/dev/null || echo "$DOCKER_SOCK")
  awk -v a="$DOCKER_SOCK" -v b="$path" 'NR > 1 && ($8 == a || $8 == b) && $6 == "01" { print $7; exit }' /proc/net/unix
}

# The start time (field 22 of /proc/PID/stat) of a live process: with the PID,
# it names one process even if PIDs are reused. Nothing for a gone or zombie one.
start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  # Fields after the command name, which is in parentheses and may contain spaces.
  stat=${stat##*) }
  awk '$1 != "Z" { print $20 }' <<<"$stat"
}

# Why PID is not the dockerd serving $DOCKER_SOCK (empty when it is).
not_the_engine() {
  local pid=$1 exe inode fd
  [[ "$pid" =~ ^[1-9][0-9]*$ ]] || { echo "pid file $DOCKERD_PIDFILE holds '$pid', not a PID"; return; }
  [[ -d /proc/$pid ]] || { echo "no process $pid (stale pid file $DOCKERD_PIDFILE)"; return; }
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  exe=${exe% (deleted)}
  [[ "$(basename "$exe")" == dockerd ]] || { echo "process $pid is ${exe:-unknown}, not dockerd"; return; }
  inode=$(socket_inode)
  [[ -n "$inode" ]] || { echo "nothing listens on $DOCKER_SOCK"; return; }
  for fd in /proc/"$pid"/fd/*; do
    [[ "$(readlink "$fd" 2>/dev/null)" == "socket:[$inode]" ]] && return
  done
  echo "dockerd $pid does not hold the socket listening at $DOCKER_SOCK"
}

verified_pid() {
  [[ -r "$DOCKERD_PIDFILE" ]] || die "no pid file $DOCKERD_PIDFILE: the engine at $DOCKER_SOCK was not started with it (start it with .ci/run, or set DOCKERD_PIDFILE)"
  local pid why
  pid=$(tr -d '[:space:]' <"$DOCKERD_PIDFILE")
  why=$(not_the_engine "$pid")
  [[ -z "$why" ]] || die "$why"
  echo "$pid"
}

cmd_pid() { verified_pid; }

cmd_start() {
  local args=("$@") a has_pidfile=0
  for a in "${args[@]}"; do [[ "$a" == --pidfile || "$a" == --pidfile=* || "$a" == -p ]] && has_pidfile=1; done
  ((has_pidfile)) || args+=(--pidfile "$DOCKERD_PIDFILE")
  if answers; then die "an engine already answers at $DOCKER_SOCK"; fi
  log "starting $DOCKERD_BIN ${args[*]} (log: $DOCKERD_LOG)"
  # Its own session, detached from ours: it outlives the caller like a service
  # would. Descriptors above 2 are closed first: a daemon that inherited, say,
  # a caller's flock descriptor would hold that lock for as long as it runs.
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if ((fd > 2)); then eval "exec ${fd}>&-" 2>/dev/null || true; fi
    done
    exec nohup setsid "$DOCKERD_BIN" "${args[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null
  ) &
  local waited=0
  until answers && [[ -z "$(not_the_engine "$(tr -d '[:space:]' <"$DOCKERD_PIDFILE" 2>/dev/null)")" ]]; do
    if ((waited >= WAIT_SECONDS)); then
      tail -n 40 "$DOCKERD_LOG" >&2 || true
      die "dockerd did not answer at $DOCKER_SOCK within ${WAIT_SECONDS}s"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "dockerd $(verified_pid) answers at $DOCKER_SOCK after ${waited}s"
}

cmd_stop() {
  local pid started exe out a
  pid=$(verified_pid)
  started=$(start_time "$pid")
  exe=$(readlink "/proc/$pid/exe")
  exe=${exe% (deleted)}
  # Where it logs: its stdout if that is a file, else the CI log.
  out=$(readlink "/proc/$pid/fd/1" 2>/dev/null || true)
  [[ "$out" == /* && -f "$out" ]] || out=$DOCKERD_LOG
  local args=()
  while IFS= read -r -d '' a; do args+=("$a"); done <"/proc/$pid/cmdline"
  for a in "${args[@]:1}"; do [[ "$a" != *$'\n'* ]] || die "dockerd $pid has an argument with a newline: cannot print it"; done
  log "stopping dockerd $pid (SIGTERM)"
  kill -TERM "$pid"
  local waited=0
  while [[ "$(start_time "$pid")" == "$started" ]]; do
    if ((waited >= WAIT_SECONDS * 10)); then die "dockerd $pid still runs ${WAIT_SECONDS}s after SIGTERM"; fi
    sleep 0.1
    waited=$((waited + 1))
  done
  log "dockerd $pid exited"
  printf '%s\n' "$out" "$exe" "${args[@]:1}"
}

case "${1:-}" in
  pid) cmd_pid ;;
  start) shift; cmd_start "$@" ;;
  stop) cmd_stop ;;
  *) die "usage: scripts/dockerd.sh pid | start [dockerd args] | stop" ;;
esac
