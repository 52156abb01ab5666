#!/usr/bin/env bash
# The real remote parts issue 12 tests against, all on 127.0.0.1 and all with
# material generated here (never a key or certificate from the repository):
#
#   ssh    openssh-server on 127.0.0.1:$BERTH_CI_SSH_PORT (default 22022), key-only
#          root login; berth's client key and a known_hosts line for its host key.
#   tls    a mutual-TLS Docker endpoint on 127.0.0.1:2376: socat `openssl-listen`
#          with verify=1 in front of the local socket.
#   registry  Debian's docker-registry (CNCF distribution) on 127.0.0.1:5000 with
#          TLS from a CA generated here (trusted by dockerd via /etc/docker/certs.d)
#          and htpasswd authentication (user `berth`, password in $STATE/registry/password).
#
# Why socat rather than a second `-H tcp://… --tlsverify` on dockerd: the shared
# engine on a developer machine is already running and must not be restarted,
# while CI may start it fresh; a TLS terminator that verifies client
# certificates (verify=1, cafile=ca.pem) gives the same contract (Docker's
# ca.pem/cert.pem/key.pem convention, handshake refused without a certificate
# signed by the CA) in both places.
#
#   scripts/ci-services.sh start   install (apt) what is missing, generate, start (idempotent)
#   scripts/ci-services.sh stop    stop what this script started, by the PIDs in its pid files
#   scripts/ci-services.sh env     print the settings tests read (BERTH_CI_DIR=…)
#
# Daemons are started with every inherited fd above 2 closed and in their own
# session: a daemon that inherited a caller's `flock` fd would hold that lock forever.
set -euo pipefail

STATE=${BERTH_CI_DIR:-/tmp/berth-ci}
SSH_PORT=${BERTH_CI_SSH_PORT:-22022}
TLS_PORT=2376
REGISTRY_PORT=5000
WAIT_SECONDS=30
export DEBIAN_FRONTEND=noninteractive

info() { printf '    [services] %s\n' "$*"; }
die() { printf '!!! [services] ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

install_packages() {
  local missing=() pkg
  for pkg in openssh-server openssh-client socat openssl docker-registry apache2-utils; do
    pkg_installed "$pkg" || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    info "apt-get install ${missing[*]}"
    "${SUDO[@]}" apt-get update -qq
    # policy-rc.d (or no init) keeps the packages' own services from starting;
    # this script starts its own instances on its own ports.
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}"
  fi
}

# alive PIDFILE: the process recorded there still runs.
# A PID reused by an unrelated process does not count: the process must be the
# recorded program (or the bash that is about to exec it).
alive() {
  [[ -s $1 ]] || return 1
  local pid exe want
  pid=$(cat "$1")
  kill -0 "$pid" 2>/dev/null || return 1
  want=$(cat "${1%.pid}.exe" 2>/dev/null || true)
  [[ -n $want ]] || return 0
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  [[ ${exe##*/} == "${want##*/}" || ${exe##*/} == bash ]]
}

# start_daemon NAME LOG CMD...: runs CMD detached (setsid, fds >2 closed), records its PID.
start_daemon() {
  local name=$1 log=$2 pidfile="$STATE/$1.pid"
  shift 2
  if alive "$pidfile"; then info "$name: running (pid $(cat "$pidfile"))"; return 0; fi
  # A pid file left by a daemon that died with its machine session names a dead
  # (or reused) PID: waiting on it would pass at once and the readiness check
  # would then judge the new daemon by the old PID. Start from no pid file.
  rm -f "$pidfile"
  readlink -f "$(command -v "$1")" >"$STATE/$name.exe"
  # `exec` keeps the PID: the one written is the daemon's own.
  setsid bash -c 'for fd in /proc/$$/fd/*; do fd=${fd##*/}; ((fd > 2)) && eval "exec $fd>&-"; done
    pidfile=$1; shift; echo $$ >"$pidfile"; exec "$@" </dev/null' \
    _ "$pidfile" "$@" >>"$log" 2>&1 &
  disown || true
  local waited=0
  until [[ -s $pidfile ]]; do sleep 0.1; waited=$((waited + 1)); ((waited < 50)) || die "$name did not start"; done
  info "$name: started (pid $(cat "$pidfile"), log $log)"
}

wait_port() {
  local name=$1 port=$2 waited=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    alive "$STATE/$name.pid" || { tail -n 20 "$STATE/$name.log" >&2 || true; die "$name exited (log above)"; }
    ((waited < WAIT_SECONDS * 10)) || die "$name did not listen on 127.0.0.1:$port within ${WAIT_SECONDS}s"
    sleep 0.1
    waited=$((waited + 1))
  done
}

# A CA and leaf certificates, generated once per machine state directory.
make_ca() {
  local dir=$1 cn=$2
  [[ -s $dir/ca.pem ]] && return 0
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj "/CN=$cn" \
    -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
}
# make_leaf CADIR OUTDIR NAME KIND(server|client)
make_leaf() {
  local ca=$1 out=$2 name=$3 kind=$4
  [[ -s $out/$name-cert.pem ]] && return 0
  mkdir -p "$out"
  local ext
  ext=$(mktemp)
  if [[ $kind == server ]]; then
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$ext"
  else
    printf 'extendedKeyUsage=clientAuth\n' >"$ext"
  fi
  openssl req -newkey rsa:2048 -nodes -subj "/CN=berth-$kind" -keyout "$out/$name-key.pem" -out "$out/$name.csr" 2>/dev/null
  openssl x509 -req -in "$out/$name.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca-key.pem" -CAcreateserial \
    -days 825 -extfile "$ext" -out "$out/$name-cert.pem" 2>/dev/null
  rm -f "$ext" "$out/$name.csr"
}

start_tls() {
  local d="$STATE/tls"
  make_ca "$d" berth-ci-docker-ca
  make_leaf "$d" "$d" server server
  make_leaf "$d" "$d" client client
  # berth's per-target directory, DOCKER_CERT_PATH layout.
  mkdir -p "$d/client"
  cp "$d/ca.pem" "$d/client/ca.pem"
  cp "$d/client-cert.pem" "$d/client/cert.pem"
  cp "$d/client-key.pem" "$d/client/key.pem"
  # A client certificate from a CA the endpoint does not trust (the refusal test).
  make_ca "$d/rogue" berth-ci-rogue-ca
  make_leaf "$d/rogue" "$d/rogue" client client
  mkdir -p "$d/rogue/client"
  cp "$d/ca.pem" "$d/rogue/client/ca.pem"
  cp "$d/rogue/client-cert.pem" "$d/rogue/client/cert.pem"
  cp "$d/rogue/client-key.pem" "$d/rogue/client/key.pem"
  start_daemon tls "$STATE/tls.log" socat \
    "openssl-listen:$TLS_PORT,bind=127.0.0.1,reuseaddr,fork,cert=$d/server-cert.pem,key=$d/server-key.pem,cafile=$d/ca.pem,verify=1" \
    UNIX-CONNECT:/var/run/docker.sock
  wait_port tls "$TLS_PORT"
}

start_ssh() {
  local d="$STATE/ssh"
  mkdir -p "$d"
  chmod 700 "$d"
  [[ -s $d/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C berth-ci-host -f "$d/host_ed25519"
  [[ -s $d/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C berth-ci-client -f "$d/id_ed25519"
  [[ -s $d/other_host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C berth-ci-other -f "$d/other_host_ed25519"
  cp "$d/id_ed25519.pub" "$d/authorized_keys"
  echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$d/host_ed25519.pub")" >"$d/known_hosts"
  # A known_hosts that pins another key for the same host (the changed-key test).
  echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$d/other_host_ed25519.pub")" >"$d/known_hosts.wrong"
  cat >"$d/sshd_config" <<EOF
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $d/host_ed25519
AuthorizedKeysFile $d/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile none
MaxStartups 100:30:200
MaxSessions 100
EOF
  "${SUDO[@]}" install -d -m 755 /run/sshd
  start_daemon ssh "$STATE/ssh.log" /usr/sbin/sshd -D -e -f "$d/sshd_config"
  wait_port ssh "$SSH_PORT"
}

start_registry() {
  local d="$STATE/registry"
  make_ca "$d" berth-ci-registry-ca
  make_leaf "$d" "$d" server server
  [[ -s $d/password ]] || openssl rand -hex 16 >"$d/password"
  htpasswd -Bbn berth "$(cat "$d/password")" >"$d/htpasswd"
  mkdir -p "$d/data"
  cat >"$d/config.yml" <<EOF
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $d/data }
  delete: { enabled: true }
http:
  addr: 127.0.0.1:$REGISTRY_PORT
  tls: { certificate: $d/server-cert.pem, key: $d/server-key.pem }
auth:
  htpasswd: { realm: berth-ci, path: $d/htpasswd }
EOF
  # dockerd reads certs.d per pull: no restart needed to trust the run's CA.
  "${SUDO[@]}" install -d "/etc/docker/certs.d/127.0.0.1:$REGISTRY_PORT"
  "${SUDO[@]}" cp "$d/ca.pem" "/etc/docker/certs.d/127.0.0.1:$REGISTRY_PORT/ca.crt"
  start_daemon registry "$STATE/registry.log" /usr/bin/docker-registry serve "$d/config.yml"
  wait_port registry "$REGISTRY_PORT"
}

stop_all() {
  local name
  for name in tls ssh registry; do
    if alive "$STATE/$name.pid"; then
      info "stopping $name (pid $(cat "$STATE/$name.pid"))"
      kill "$(cat "$STATE/$name.pid")"
    fi
    rm -f "$STATE/$name.pid"
  done
}

case "${1:-}" in
  start)
    install_packages
    mkdir -p "$STATE"
    start_tls
    start_ssh
    start_registry
    ;;
  stop) stop_all ;;
  env) echo "BERTH_CI_DIR=$STATE BERTH_CI_SSH_PORT=$SSH_PORT" ;;
  *) die "usage: scripts/ci-services.sh start|stop|env" ;;
esac
