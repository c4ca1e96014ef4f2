#!/usr/bin/env bash
# Side-by-side mTLS benchmark on this machine, loopback only: our Server, a hand-written
# tokio-rustls + hyper-util server and nginx, plus our Client against a hand-written client.
# Method and latest results: docs/PERFORMANCE.md.
#
#   benches/compare.sh [--quick] [--rounds N] [--slices N] [--per-connection]
#
# --quick: short measurements (one round unless --rounds says otherwise), a smoke test;
# without it, 7 rounds, each contender measured for 3 s per handshake metric and 10 s per
# keep-alive metric (each client 10 s), in slices taken in turn with the others' (3 per 5 s:
# --slices). --per-connection adds our server's per-connection mode as a fourth contender.
# The last lines are `BOUND ...` and one `RESULT <metric> ...` line per metric. Exits
# non-zero when a step fails or a contender failed requests; the numbers are never asserted.
#
# Steps: release build; ECDSA P-256 certificates (a CA, a server, a client); `openssl speed`
# for the crypto bound; nginx (installed with apt-get when missing) started from a temporary
# prefix with its own configuration, stopped at exit; then the bench binary, which runs the
# two Rust servers itself and drives all three with the same load generator.
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

quick=""
per_connection=""
rounds=""
slices=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --per-connection) per_connection=1 ;;
        --rounds)
            [ $# -ge 2 ] || { usage >&2; exit 2; }
            rounds="$2"
            shift
            ;;
        --rounds=*) rounds="${1#--rounds=}" ;;
        --slices)
            [ $# -ge 2 ] || { usage >&2; exit 2; }
            slices="$2"
            shift
            ;;
        --slices=*) slices="${1#--slices=}" ;;
        -h | --help) usage; exit 0 ;;
        *) echo "compare.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
for value in "$rounds" "$slices"; do
    if [ -n "$value" ] && ! [[ "$value" =~ ^[1-9][0-9]*$ ]]; then
        echo "compare.sh: --rounds and --slices need a whole number of at least 1" >&2
        exit 2
    fi
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n=== %s\n' "$*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mtls-compare.XXXXXX")
nginx_pid=""
policy_guard=""
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"

cleanup() {
    local status=$?
    if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
        # TERM makes the master stop its workers; anything left after 5 s is killed by id.
        local workers
        workers=$(pgrep -P "$nginx_pid" || true)
        kill -TERM "$nginx_pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$nginx_pid" 2>/dev/null || break
            sleep 0.1
        done
        for pid in $nginx_pid $workers; do
            kill -KILL "$pid" 2>/dev/null || true
        done
        wait "$nginx_pid" 2>/dev/null || true
    fi
    if [ -n "$policy_guard" ]; then
        $sudo rm -f /usr/sbin/policy-rc.d || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "$quick" ]; then
    bench_budget=600
    speed_seconds=1
else
    bench_budget=1800
    speed_seconds=3
fi

step "release build"
command -v cargo >/dev/null || { echo "compare.sh: cargo is needed" >&2; exit 1; }
timeout 1800 cargo bench -p mtls --bench compare --no-run --message-format=json-render-diagnostics \
    >"$work/build.json"
exe=$(grep '"reason":"compiler-artifact"' "$work/build.json" |
    grep '"kind":\["bench"\]' | grep '"name":"compare"' |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$exe" ] || { echo "compare.sh: no bench executable found in cargo's output" >&2; exit 1; }

cores=$(timeout 60 "$exe" --cores)
# 1,000 idle connections, client and server ends in separate processes: raise the soft limit
# on open files toward the hard one (CI machines often start at 1,024).
hard=$(ulimit -Hn)
want=65536
[ "$hard" != unlimited ] && [ "$hard" -lt "$want" ] && want=$hard
[ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$want" ] && ulimit -Sn "$want"
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt 2500 ]; then
    echo "compare.sh: at most $(ulimit -Sn) open files; the idle-memory run needs about 2,100" >&2
    exit 1
fi

step "nginx and openssl"
nginx_bin=$(command -v nginx || true)
[ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
missing=()
[ -n "$nginx_bin" ] || missing+=(nginx)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || { echo "compare.sh: install ${missing[*]} (no apt-get here)" >&2; exit 1; }
    if [ -n "$sudo" ] && ! command -v sudo >/dev/null; then
        echo "compare.sh: installing ${missing[*]} needs root or sudo" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Debian's nginx package starts its system service (port 80, all interfaces) when
    # installed; a policy-rc.d that refuses service starts keeps it down, as in containers.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy_guard=1
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod 755 /usr/sbin/policy-rc.d
    fi
    timeout 600 $sudo apt-get update
    timeout 600 $sudo apt-get install -y --no-install-recommends "${missing[@]}"
    if [ -n "$policy_guard" ]; then
        $sudo rm -f /usr/sbin/policy-rc.d
        policy_guard=""
    fi
    nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
fi
[ -x "$nginx_bin" ] || { echo "compare.sh: nginx not found after installing it" >&2; exit 1; }
"$nginx_bin" -v 2>&1 | sed 's/^/  /' >&2
openssl version | sed 's/^/  /' >&2

step "certificates (ECDSA P-256: a CA, a server, a client)"
certs="$work/certs"
timeout 60 "$exe" --make-certs "$certs"

step "crypto limit: openssl speed, one core (${speed_seconds} s per operation)"
speed=$(timeout 120 openssl speed -seconds "$speed_seconds" -mr ecdsap256 ecdhx25519 2>/dev/null)
# Machine-readable lines: +F4:<n>:256:<sign/s>:<verify/s> and +F5:<n>:253:<derive/s>:<s/op>.
sign=$(sed -n 's/^+F4:[0-9]*:256:\([0-9.]*\):\([0-9.]*\).*/\1/p' <<<"$speed" | head -n 1)
verify=$(sed -n 's/^+F4:[0-9]*:256:\([0-9.]*\):\([0-9.]*\).*/\2/p' <<<"$speed" | head -n 1)
x25519=$(sed -n 's/^+F5:[0-9]*:253:\([0-9.]*\):.*/\1/p' <<<"$speed" | head -n 1)
if [ -z "$sign" ] || [ -z "$verify" ] || [ -z "$x25519" ]; then
    echo "compare.sh: could not read openssl speed's output" >&2
    exit 1
fi
echo "  ECDSA P-256 sign ${sign}/s, verify ${verify}/s; X25519 ${x25519}/s" >&2

step "nginx: $cores worker processes, from a temporary prefix"
prefix="$work/nginx"
mkdir -p "$prefix/tmp"
version=$("$nginx_bin" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
user_line=""
if [ "$(id -u)" -eq 0 ]; then
    # A root master would start its workers as nobody anyway; say so, with a group that exists.
    group=nogroup
    getent group nogroup >/dev/null || group=nobody
    user_line="user nobody $group;"
fi
start_nginx() {
    local port=$1
    local listen="listen 127.0.0.1:$port ssl http2;" http2=""
    # `listen ... http2` became `http2 on;` in nginx 1.25.1.
    if printf '%s\n' 1.25.1 "$version" | sort -V -C; then
        listen="listen 127.0.0.1:$port ssl;"
        http2="http2 on;"
    fi
    cat >"$prefix/nginx.conf" <<EOF
$user_line
worker_processes $cores;
worker_rlimit_nofile 8192;
pid $prefix/nginx.pid;
error_log $prefix/error.log error;
events {
    worker_connections 4096;
}
http {
    access_log off;
    default_type text/plain;
    client_body_temp_path $prefix/tmp/body;
    proxy_temp_path $prefix/tmp/proxy;
    fastcgi_temp_path $prefix/tmp/fastcgi;
    uwsgi_temp_path $prefix/tmp/uwsgi;
    scgi_temp_path $prefix/tmp/scgi;
    # The Rust servers never close a busy keep-alive connection; neither does nginx here.
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    server {
        $listen
        $http2
        ssl_certificate $certs/server.pem;
        ssl_certificate_key $certs/server.key;
        ssl_client_certificate $certs/ca.pem;
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            return 200 "hello \$ssl_client_s_dn";
        }
    }
}
EOF
    timeout 60 "$nginx_bin" -t -q -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/error.log"
    "$nginx_bin" -p "$prefix/" -c "$prefix/nginx.conf" -e "$prefix/error.log" -g 'daemon off;' &
    nginx_pid=$!
    for _ in $(seq 100); do
        kill -0 "$nginx_pid" 2>/dev/null || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}
nginx_port=""
for _ in 1 2 3; do
    port=$(timeout 60 "$exe" --free-port)
    if start_nginx "$port"; then
        nginx_port=$port
        break
    fi
    # Probably lost the port to another process: stop what started and try another.
    kill -TERM "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=""
done
if [ -z "$nginx_port" ]; then
    echo "compare.sh: nginx did not start; its log:" >&2
    cat "$prefix/error.log" >&2 || true
    exit 1
fi
echo "  nginx on 127.0.0.1:$nginx_port (master $nginx_pid)" >&2

step "bench: mtls, raw and nginx in turn${quick:+ (quick)}"
# The bench times `openssl speed` again at the start of each round (1 s per operation) and
# reads each round's handshakes against it; the figures above are the fallback.
args=(--certs "$certs" --nginx "127.0.0.1:$nginx_port" --nginx-pid "$nginx_pid"
    --openssl-speed "$sign,$verify,$x25519" --openssl "$(command -v openssl)")
[ -n "$quick" ] && args+=(--quick)
[ -n "$rounds" ] && args+=(--rounds "$rounds")
[ -n "$slices" ] && args+=(--slices "$slices")
[ -n "$per_connection" ] && args+=(--per-connection)
# More rounds than the default take longer: about 3 minutes each when full, 1 when quick.
if [ -n "$rounds" ]; then
    per_round=$([ -n "$quick" ] && echo 90 || echo 240)
    [ $((rounds * per_round + 300)) -gt "$bench_budget" ] && bench_budget=$((rounds * per_round + 300))
fi
timeout "$bench_budget" "$exe" "${args[@]}"
