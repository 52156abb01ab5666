#!/usr/bin/env bash
# Builds the local images the Docker tests and fixtures use, without any
# registry: a busybox root filesystem imported with `docker import`.
#
#   berth-test/app:1   /VERSION = 1
#   berth-test/app:2   /VERSION = 2     (distinct content, so distinct image ids)
#
# Both have a CMD that sleeps an hour but exits at once on SIGTERM (PID 1
# ignores signals it has no handler for, so a bare `sleep` would make every
# `docker stop` wait its full timeout), a shell and every busybox applet, /tmp and an
# /etc/passwd with root. Idempotent: an image is rebuilt only when it is
# missing or was not built from this exact recipe (same busybox binary, same
# script version, same VERSION), which is recorded in the image's Comment.
set -euo pipefail

RECIPE_VERSION=3
BUSYBOX=${BUSYBOX:-/bin/busybox}
if [[ -z "${DOCKER:-}" ]]; then
  if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
fi
REPO=berth-test/app
VERSIONS=(1 2)

log() { printf '[test-images] %s\n' "$*"; }
die() { printf '[test-images] ERROR: %s\n' "$*" >&2; exit 1; }

[[ -x "$BUSYBOX" ]] || die "$BUSYBOX not found: install busybox-static (apt-get install busybox-static)"
if ! "$BUSYBOX" --list >/dev/null 2>&1; then
  die "$BUSYBOX does not support --list"
fi
# A dynamically linked busybox would not run inside an empty rootfs.
if command -v file >/dev/null 2>&1 && file -L "$BUSYBOX" | grep -q 'dynamically linked'; then
  die "$BUSYBOX is dynamically linked: install busybox-static"
fi
"$DOCKER" info >/dev/null 2>&1 || die "Docker engine not answering (docker info failed)"

busybox_sum=$(sha256sum "$BUSYBOX" | cut -c1-16)

build_one() {
  local version=$1
  local tag="$REPO:$version"
  local comment="berth-test-image recipe=$RECIPE_VERSION version=$version busybox=$busybox_sum"

  local existing
  existing=$("$DOCKER" image inspect --format '{{.Comment}}' "$tag" 2>/dev/null || true)
  if [[ "$existing" == "$comment" ]]; then
    log "$tag up to date ($("$DOCKER" image inspect --format '{{.Id}}' "$tag" | cut -c1-19))"
    return 0
  fi

  log "building $tag"
  local root
  root=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$root'" RETURN

  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var/tmp,proc,sys,dev,home}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  chmod 700 "$root/root"
  cp "$BUSYBOX" "$root/bin/busybox"
  chmod 755 "$root/bin/busybox"

  # Every applet in /bin (so the default PATH finds all of them) ...
  local applet
  while IFS= read -r applet; do
    [[ -z "$applet" || "$applet" == busybox ]] && continue
    ln -sf busybox "$root/bin/$applet"
  done < <("$BUSYBOX" --list)
  # ... and at its canonical location too (/usr/bin/env, /sbin/init, ...).
  local full dir
  while IFS= read -r full; do
    [[ -z "$full" ]] && continue
    dir=$(dirname "$full")
    [[ "$dir" == bin || "$dir" == . ]] && continue
    mkdir -p "$root/$dir"
    [[ -e "$root/$full" || -L "$root/$full" ]] || ln -s /bin/busybox "$root/$full"
  done < <("$BUSYBOX" --list-full 2>/dev/null || true)

  cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
  cat >"$root/etc/group" <<'GROUP'
root:x:0:
nogroup:x:65534:
GROUP
  echo "$version" >"$root/VERSION"

  local id
  id=$(tar --numeric-owner --owner=0 --group=0 -C "$root" -cf - . |
    "$DOCKER" import \
      -c 'CMD ["sh","-c","trap \"exit 0\" TERM INT; sleep 3600 & wait"]' \
      -c 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'WORKDIR /' \
      -m "$comment" \
      - "$tag")
  log "built $tag ${id:0:19}"
}

for v in "${VERSIONS[@]}"; do build_one "$v"; done

id1=$("$DOCKER" image inspect --format '{{.Id}}' "$REPO:1")
id2=$("$DOCKER" image inspect --format '{{.Id}}' "$REPO:2")
[[ "$id1" != "$id2" ]] || die "$REPO:1 and $REPO:2 have the same image id"
log "ok: $REPO:1=${id1:0:19} $REPO:2=${id2:0:19}"
