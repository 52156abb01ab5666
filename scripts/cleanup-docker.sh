#!/usr/bin/env bash
# Removes what the test suite (and benchmarks) leave on the Docker engine:
# every container, network and volume labelled io.berth.test=1, or whose
# io.berth.project label starts with "t-" (test projects use that prefix).
# Selection is by label only: nothing without those labels is ever touched.
# Safe to run at any time; exits 0 unless the engine is unreachable or an
# object could not be removed.
set -uo pipefail

if [[ -z "${DOCKER:-}" ]]; then
  if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
TEST_LABEL=io.berth.test=1
PROJECT_LABEL=io.berth.project
PREFIX=t-

log() { printf '[cleanup-docker] %s\n' "$*"; }

if ! "$DOCKER" info >/dev/null 2>&1; then
  log "Docker engine not answering: nothing cleaned"
  exit 1
fi

# ids of objects of one kind ("container" | "network" | "volume") to remove
select_ids() {
  local kind=$1 ls_cmd id_field
  case "$kind" in
    container) ls_cmd=(ps -a --no-trunc); id_field='{{.ID}}' ;;
    network) ls_cmd=(network ls --no-trunc); id_field='{{.ID}}' ;;
    volume) ls_cmd=(volume ls); id_field='{{.Name}}' ;;
  esac
  {
    "$DOCKER" "${ls_cmd[@]}" --filter "label=$TEST_LABEL" --format "$id_field"
    # Every object carrying the project label, then keep those with the test prefix.
    "$DOCKER" "${ls_cmd[@]}" --filter "label=$PROJECT_LABEL" \
      --format "$id_field"$'\t''{{.Label "'"$PROJECT_LABEL"'"}}' |
      awk -F'\t' -v p="$PREFIX" 'index($2, p) == 1 { print $1 }'
  } | sort -u
}

failures=0
remove() {
  local kind=$1; shift
  local ids=("$@")
  ((${#ids[@]})) || { log "no test ${kind}s"; return; }
  log "removing ${#ids[@]} test ${kind}(s)"
  local rm_cmd
  case "$kind" in
    container) rm_cmd=(rm -f -v) ;;
    network) rm_cmd=(network rm) ;;
    volume) rm_cmd=(volume rm -f) ;;
  esac
  # Batches keep the argument list bounded for big benchmark leftovers.
  local i out
  for ((i = 0; i < ${#ids[@]}; i += 100)); do
    if ! out=$("$DOCKER" "${rm_cmd[@]}" "${ids[@]:i:100}" 2>&1 >/dev/null); then
      # Something removed concurrently is not a failure.
      out=$(printf '%s\n' "$out" | grep -viE 'no such|not found' || true)
      if [[ -n "$out" ]]; then
        printf '%s\n' "$out" >&2
        failures=$((failures + 1))
      fi
    fi
  done
}

# Containers first: networks and volumes in use cannot be removed.
for kind in container network volume; do
  mapfile -t ids < <(select_ids "$kind")
  remove "$kind" "${ids[@]}"
done

if ((failures)); then
  log "done with $failures failure(s)"
  exit 1
fi
log "done"
