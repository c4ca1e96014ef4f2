#!/usr/bin/env bash
# Interop: curl, openssl s_client, Python and Java talk to examples/server.rs with certificates
# made by openssl, and the same clients without a certificate are refused. Bad variants (foreign
# CA, expired, wrong EKU, TLS 1.1, RSA key exchange, a client certificate over 64 KiB, policy
# denials, oversized headers, silent sockets) must fail with the reason the server logs, and
# examples/client.rs must refuse bad `openssl s_server -Verify` servers with a named reason.
# The server's flags are exercised too: --allow, --allow-domain, --crl, --no-ca-hints,
# --handshake-timeout, --max-connections, and out-of-range numbers (exit code 2, no panic).
# Loopback only, every wait bounded; the server is stopped on exit. Usage: tests/interop/run.sh
# Needs curl, openssl, python3, java and keytool; a missing tool fails the run.
set -euo pipefail
for tool in curl openssl python3 java keytool; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool is required (.ci/run installs it)" >&2; exit 1; }
done
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

stop_server() {
    [ -n "$server_pid" ] && { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
    server_pid=
}
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
# Starts examples/server.rs on $port with flags $2..., logging to $1; waits (5 s at most) until
# it listens. Leaves its pid in server_pid for stop_server.
start_server() {
    local log=$1
    shift
    "$root/target/debug/examples/server" --listen "127.0.0.1:$port" "$@" > "$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 50); do
        grep -q listening "$log" 2>/dev/null && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log"
    fail "examples/server.rs $* did not start"
}
# The same for `openssl s_server` with flags $2..., bound to 127.0.0.1:$port.
start_s_server() {
    local log=$1
    shift
    openssl s_server -accept "127.0.0.1:$port" "$@" > "$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 50); do
        grep -q ACCEPT "$log" 2>/dev/null && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$log"
    fail "openssl s_server $* did not start"
}
# Counts lines of log $1 naming reason $2. Accepts the value bare (`reason=timeout`, the
# format of every other field) or quoted (`reason="not_authorized"`); a quoted one is reported.
reason_count() {
    grep -cE "reason=\"?$2\"?( |$)" "$1" || true
}
quoted_reason_note() {
    if grep -qE 'reason="' "$1"; then
        echo "NOTE: $1 has a quoted reason field (reason=\"...\"), unlike the others:"
        grep -oE 'reason="[a-z_]*"' "$1" | sort | uniq -c
    fi
}

step "certificates made by openssl"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -subj "/CN=interop CA" -days 2 -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
# Server: RSA key in the traditional PKCS#1 form.
openssl genrsa -traditional -out server.key 2048 2>/dev/null
openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.pem 2>/dev/null
# Client: EC key in SEC1 form, with a SPIFFE ID.
openssl ecparam -name prime256v1 -genkey -noout -out client.key
openssl req -new -key client.key -subj "/O=Example/CN=interop-client" -out client.csr
printf 'subjectAltName=URI:spiffe://example.org/interop,DNS:client.example.org\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile client.ext -out client.pem 2>/dev/null

step "build examples/server.rs and examples/client.rs"
# Under `cargo test` the examples are already built (and cargo holds its lock).
if [ -z "${MTLS_INTEROP_NO_BUILD:-}" ]; then
    (cd "$root" && cargo build --quiet --example server --example client)
fi
for bin in server client; do
    [ -x "$root/target/debug/examples/$bin" ] || fail "target/debug/examples/$bin is missing: run cargo build --examples"
done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="https://localhost:$port/"

step "examples/server.rs refuses numeric flags out of range with exit code 2, without panicking"
# 1e20 s does not fit a Duration (Duration::from_secs_f64 would panic); 1e-12 s rounds to zero.
for bad in "--handshake-timeout 1e20" "--handshake-timeout 1e-12" "--handshake-timeout 0" \
    "--handshake-timeout -1" "--handshake-timeout inf" "--handshake-timeout nan" \
    "--handshake-timeout soon" "--max-connections 0" "--max-connections -1" \
    "--max-connections 1e20" "--max-connections 18446744073709551616"; do
    read -r flag value <<<"$bad"
    rc=0
    timeout 10 "$root/target/debug/examples/server" --listen "127.0.0.1:$port" \
        --cert server.pem --key server.key --ca ca.pem "$flag" "$value" > flag.out 2>&1 || rc=$?
    [ "$rc" -eq 2 ] || { cat flag.out; fail "$bad: exit code $rc, expected 2"; }
    grep -q "panicked" flag.out && { cat flag.out; fail "$bad: panicked"; }
    grep -qF -- "\`$flag $value\`" flag.out || { cat flag.out; fail "$bad: the error does not name the flag"; }
    echo "ok: $bad -> exit 2: $(head -1 flag.out)"
done
# The largest values that are accepted serve a client: no overflow when they are used.
for big in "--handshake-timeout 1.8e19" "--max-connections 18446744073709551615"; do
    read -r flag value <<<"$big"
    start_server big.log --cert server.pem --key server.key --ca ca.pem "$flag" "$value"
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cert client.pem --key client.key \
        --cacert ca.pem "$url") || true
    [ "$code" = 200 ] || { cat big.log; fail "$big: a client got $code"; }
    stop_server
    grep -q "panicked" big.log && { cat big.log; fail "$big: panicked"; }
    echo "ok: $big serves a client"
done

step "start examples/server.rs"
start_server server.log --cert server.pem --key server.key --ca ca.pem
expect="hello spiffe://example.org/interop"

step "curl with a client certificate"
out=$(curl -sS --max-time 10 --cert client.pem --key client.key --cacert ca.pem "$url")
echo "$out"
grep -q "$expect" <<<"$out" || fail "curl: $out"
grep -q "DNS:client.example.org" <<<"$out" || fail "curl: SANs missing"

step "curl over HTTP/1.1 and TLS 1.2"
out=$(curl -sS --max-time 10 --http1.1 --tlsv1.2 --tls-max 1.2 --cert client.pem --key client.key --cacert ca.pem "$url")
grep -q "$expect" <<<"$out" || fail "curl tls1.2: $out"

step "curl without a client certificate is refused"
if curl -sS --max-time 10 --cacert ca.pem "$url" 2> curl.err; then fail "anonymous curl was served"; fi
cat curl.err
grep -qi "alert\|certificate" curl.err || fail "curl did not see a certificate alert"

step "openssl s_client"
out=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
    timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
        -cert client.pem -key client.key -CAfile ca.pem -verify_return_error -quiet 2>&1)
echo "$out" | tail -3
grep -q "$expect" <<<"$out" || fail "s_client: $out"

step "openssl s_client without a client certificate is refused"
out=$(printf 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n' |
    timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile ca.pem -quiet 2>&1 || true)
grep -q "$expect" <<<"$out" && fail "anonymous s_client was served"
grep -qi "alert" <<<"$out" || fail "s_client saw no alert: $out"
echo "refused: $(grep -i alert <<<"$out" | head -1)"

step "Python ssl client"
python3 "$here/client.py" localhost "$port" client.pem client.key ca.pem | tee py.out
grep -q "$expect" py.out || fail "python"

step "Java client with PKCS#12 keystore and truststore"
if command -v java >/dev/null && command -v keytool >/dev/null; then
    openssl pkcs12 -export -in client.pem -inkey client.key -name client -out client.p12 -passout pass:changeit
    keytool -importcert -noprompt -alias ca -file ca.pem -keystore trust.p12 -storetype PKCS12 -storepass changeit >/dev/null
    java "$here/Client.java" "$url" client.p12 trust.p12 changeit | tee java.out
    grep -q "$expect" java.out || fail "java"
else
    fail "java and keytool are required"
fi

step "our example client"
"$root/target/debug/examples/client" --url "$url" --cert client.pem --key client.key --ca ca.pem | tee rs.out
grep -q "$expect" rs.out || fail "example client"

step "our example client pins the server by identity"
if "$root/target/debug/examples/client" --url "$url" --cert client.pem --key client.key --ca ca.pem \
    --expect-server spiffe://example.org/inventory > pin.out 2>&1; then
    fail "client accepted a server without the expected SPIFFE ID"
fi
cat pin.out
grep -q "is not the expected identity" pin.out || fail "pinning error not named"
grep -q "^reason=not_authorized$" pin.out || fail "pinning: reason=not_authorized not printed"

step "server log names each refusal"
grep "TLS handshake failed" server.log || fail "no failure events"
grep -q 'reason=no_certificate' server.log || fail "no_certificate not logged"
step "a server whose policy does not allow this client refuses it with access_denied"
stop_server
start_server server2.log --cert server.pem --key server.key --ca ca.pem --allow spiffe://example.org/someone-else
if curl -sS --max-time 10 --cert client.pem --key client.key --cacert ca.pem "$url" 2> curl2.err; then
    fail "a client outside the policy was served"
fi
cat curl2.err
grep -qi "access denied" curl2.err || fail "curl did not see access_denied"
grep -q "policy=spiffe_id(spiffe://example.org/someone-else)" server2.log || { cat server2.log; fail "denial not logged with the policy"; }
grep -q "peer.identity=spiffe://example.org/interop" server2.log || fail "denial not logged with the identity"
[ "$(reason_count server2.log not_authorized)" -ge 1 ] || { cat server2.log; fail "denial not logged as reason=not_authorized"; }

step "--allow-domain and --allow admit their identities and refuse other trust domains"
stop_server
# Same CA, same key; only the SPIFFE ID differs.
for id in other.org/interop other.org/billing; do
    name=${id//[.\/]/-}
    printf 'subjectAltName=URI:spiffe://%s\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' "$id" > "$name.ext"
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$name.ext" -out "$name.pem" 2>/dev/null
done
# Runs curl with certificate $1 against the server logging to $2; $3: "served" or "denied".
policy_case() {
    local cert=$1 log=$2 want=$3 code before
    before=$(reason_count "$log" not_authorized)
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cert "$cert.pem" --key client.key \
        --cacert ca.pem "$url" 2> policy.err) || true
    if [ "$want" = served ]; then
        [ "$code" = 200 ] || { cat policy.err "$log"; fail "$cert: expected 200, got $code"; }
        echo "ok: $cert -> 200"
        return
    fi
    [ "$code" = 200 ] && fail "$cert: served, expected a denial"
    grep -qi "access denied" policy.err || { cat policy.err; fail "$cert: curl did not see access_denied"; }
    for _ in $(seq 50); do
        [ "$(reason_count "$log" not_authorized)" -gt "$before" ] && break
        sleep 0.1
    done
    [ "$(reason_count "$log" not_authorized)" -gt "$before" ] || { cat "$log"; fail "$cert: no reason=not_authorized"; }
    echo "ok: $cert -> access_denied, server: $(grep -o 'reason=[^ ]* peer.identity=[^ ]*' "$log" | tail -1)"
}
start_server domain.log --cert server.pem --key server.key --ca ca.pem --allow-domain example.org
grep -q "^policy: trust_domain(example.org)$" domain.log || { cat domain.log; fail "--allow-domain policy not printed"; }
policy_case client domain.log served
policy_case other-org-interop domain.log denied
grep -q "policy=trust_domain(example.org)" domain.log || fail "denial not logged with the trust-domain policy"
grep -q "peer.identity=spiffe://other.org/interop" domain.log || fail "denial not logged with the identity"
stop_server
start_server allow.log --cert server.pem --key server.key --ca ca.pem \
    --allow spiffe://other.org/billing --allow-domain example.org
policy_case client allow.log served
policy_case other-org-billing allow.log served
policy_case other-org-interop allow.log denied
grep -q "policy=any_of(spiffe_id(spiffe://other.org/billing), trust_domain(example.org))" allow.log ||
    { cat allow.log; fail "denial not logged with the combined policy"; }
quoted_reason_note allow.log

step "bad variants from every client are rejected with the right reason"
stop_server
# Certificates that must fail: a foreign CA, expired, serverAuth-only.
openssl ecparam -name prime256v1 -genkey -noout -out foreign-ca.key
openssl req -x509 -new -key foreign-ca.key -subj "/CN=foreign CA" -days 2 -out foreign-ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl x509 -req -in client.csr -CA foreign-ca.pem -CAkey foreign-ca.key -CAcreateserial -days 2 \
    -extfile client.ext -out foreign.pem 2>/dev/null
mkdir -p cadb && : > cadb/index.txt && echo 1000 > cadb/serial && echo 01 > cadb/crlnumber
cat > ca.cnf <<CNF
[ca]
default_ca = local
[local]
database = cadb/index.txt
serial = cadb/serial
new_certs_dir = cadb
default_md = sha256
policy = anything
unique_subject = no
crlnumber = cadb/crlnumber
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
[anything]
commonName = supplied
organizationName = optional
CNF
openssl ca -batch -notext -config ca.cnf -cert ca.pem -keyfile ca.key -in client.csr \
    -startdate 20200101000000Z -enddate 20200201000000Z -extfile client.ext -out expired.pem 2>/dev/null
printf 'subjectAltName=URI:spiffe://example.org/interop\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > serveronly.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile serveronly.ext -out serveronly.pem 2>/dev/null
# A client certificate with 3,000 DNS names: about 87 KB, so its Certificate message is over the
# 64 KiB a handshake message may take in rustls.
python3 - <<'PY'
sans = ",".join(f"DNS:host-{i:05d}.sans.example.org" for i in range(3000))
with open("huge.ext", "w") as f:
    f.write(f"subjectAltName=URI:spiffe://example.org/huge,{sans}\n"
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
PY
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile huge.ext -out huge.pem 2>/dev/null
[ "$(openssl x509 -in huge.pem -outform DER | wc -c)" -gt 65536 ] || fail "huge.pem is not over 64 KiB"
log=matrix.log
start_server "$log" --cert server.pem --key server.key --ca ca.pem
old_tls='DEFAULT:@SECLEVEL=0'
printf 'jdk.tls.disabledAlgorithms=\n' > java-legacy.security
for cert in foreign expired serveronly; do
    openssl pkcs12 -export -in "$cert.pem" -inkey client.key -name client -out "$cert.p12" -passout pass:changeit
done
# Runs one attempt ($3...) that must fail, then checks that the server (logging to $log)
# logged reason $2.
expect_reason() {
    local what=$1 reason=$2
    shift 2
    local before
    before=$(reason_count "$log" "$reason")
    if "$@" > attempt.out 2>&1; then
        cat attempt.out
        fail "$what was served"
    fi
    for _ in $(seq 50); do
        [ "$(reason_count "$log" "$reason")" -gt "$before" ] && break
        sleep 0.1
    done
    [ "$(reason_count "$log" "$reason")" -gt "$before" ] || {
        tail -5 "$log"; fail "$what: the server did not log reason=$reason"; }
    echo "ok: $what -> $reason"
}
# A good client is still served by the server on $port.
still_serves() {
    local code
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cert client.pem --key client.key \
        --cacert ca.pem "$url") || true
    [ "$code" = 200 ] || { tail -5 "$log"; fail "after $1, a good client got $code"; }
    echo "ok: after $1, a good client is served"
}
curl_with() { curl -sS --max-time 10 --cacert ca.pem "$@" "$url"; }
sclient_with() { # keeps what s_client said in sclient.out
    printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile ca.pem -quiet "$@" \
            > sclient.out 2>&1 || true
    grep -q "$expect" sclient.out
}
python_with() { # cert key [max-version]
    python3 - "$port" "$@" <<'PY'
import http.client, ssl, sys
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile="ca.pem")
if cert != "-":
    ctx.load_cert_chain(cert, key)
if len(sys.argv) > 4:
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
conn.request("GET", "/")
sys.exit(0 if conn.getresponse().status == 200 else 1)
PY
}
java_with() { # keystore [extra java flags]
    local ks=$1
    shift
    java "$@" "$here/Client.java" "$url" "$ks" trust.p12 changeit
}
keytool -genkeypair -alias none -keyalg EC -groupname secp256r1 -dname CN=none -keystore nocert.p12 \
    -storetype PKCS12 -storepass changeit -validity 1 >/dev/null 2>&1
keytool -delete -alias none -keystore nocert.p12 -storepass changeit >/dev/null 2>&1

expect_reason "curl without a certificate" no_certificate curl_with
expect_reason "curl with a foreign CA" unknown_issuer curl_with --cert foreign.pem --key client.key
expect_reason "curl with an expired certificate" expired curl_with --cert expired.pem --key client.key
expect_reason "curl with a serverAuth-only certificate" wrong_key_usage curl_with --cert serveronly.pem --key client.key
expect_reason "curl over TLS 1.1" protocol_version curl_with --cert client.pem --key client.key --tlsv1.1 --tls-max 1.1 --ciphers "$old_tls"

expect_reason "s_client without a certificate" no_certificate sclient_with
expect_reason "s_client with a foreign CA" unknown_issuer sclient_with -cert foreign.pem -key client.key
expect_reason "s_client with an expired certificate" expired sclient_with -cert expired.pem -key client.key
expect_reason "s_client with a serverAuth-only certificate" wrong_key_usage sclient_with -cert serveronly.pem -key client.key
expect_reason "s_client over TLS 1.1" protocol_version sclient_with -cert client.pem -key client.key -tls1_1 -cipher "$old_tls"

expect_reason "Python without a certificate" no_certificate python_with - -
expect_reason "Python with a foreign CA" unknown_issuer python_with foreign.pem client.key
expect_reason "Python with an expired certificate" expired python_with expired.pem client.key
expect_reason "Python with a serverAuth-only certificate" wrong_key_usage python_with serveronly.pem client.key
expect_reason "Python over TLS 1.1" protocol_version python_with client.pem client.key tls1.1

expect_reason "Java without a certificate" no_certificate java_with nocert.p12
# Java's key manager only offers a certificate issued by a CA the server names in its hints, so
# with a foreign certificate it sends none: the server sees no certificate at all.
expect_reason "Java with a foreign CA" no_certificate java_with foreign.p12
expect_reason "Java with an expired certificate" expired java_with expired.p12
expect_reason "Java with a serverAuth-only certificate" wrong_key_usage java_with serveronly.p12
expect_reason "Java over TLS 1.1" protocol_version java_with client.p12 \
    -Djava.security.properties=java-legacy.security -Djdk.tls.client.protocols=TLSv1.1

# RSA key exchange (TLS_RSA_WITH_AES_128_CBC_SHA) is not in rustls at all.
expect_reason "s_client with RSA key exchange only (TLS 1.2, AES128-SHA)" no_shared_cipher \
    sclient_with -cert client.pem -key client.key -tls1_2 -cipher AES128-SHA
grep -q "alert handshake failure" sclient.out || { cat sclient.out; fail "s_client did not see handshake_failure"; }
echo "   server: $(grep 'reason=no_shared_cipher' "$log" | tail -1 | grep -o 'reason=.*')"
still_serves "an RSA key exchange client"
expect_reason "curl with a client certificate over 64 KiB" malformed curl_with --cert huge.pem --key client.key
expect_reason "s_client with a client certificate over 64 KiB" malformed sclient_with -cert huge.pem -key client.key
echo "   server: $(grep 'reason=malformed' "$log" | tail -1 | grep -o 'reason=.*')"
still_serves "two oversized client certificates"

step "Java presents a foreign certificate to a server that sends no CA hints: unknown_issuer"
stop_server
log=nohints.log
start_server "$log" --cert server.pem --key server.key --ca ca.pem --no-ca-hints
timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile ca.pem \
    -cert client.pem -key client.key < /dev/null > hints.out 2>&1 || true
grep -q "No client certificate CA names sent" hints.out || { cat hints.out; fail "--no-ca-hints: CA names were sent"; }
echo "ok: the CertificateRequest names no CA"
java_with client.p12 > java.out || { cat java.out; fail "Java with a good certificate was refused without CA hints"; }
grep -q "$expect" java.out || fail "java without CA hints: $(cat java.out)"
echo "ok: Java with a good certificate -> 200"
expect_reason "Java with a foreign CA, no CA hints" unknown_issuer java_with foreign.p12
# Over TLS 1.3 the client finishes its side of the handshake before the server's verdict
# arrives, and Java reports the alert or its closed channel, whichever it reads first. Over
# TLS 1.2 the alert is part of the handshake, so Java always names it.
expect_reason "Java with a foreign CA, no CA hints, TLS 1.2" unknown_issuer \
    java_with foreign.p12 -Djdk.tls.client.protocols=TLSv1.2
grep -q "alert: unknown_ca" attempt.out || { cat attempt.out; fail "Java did not see unknown_ca"; }
grep -q "peer.issuer=CN=foreign CA" "$log" || fail "the foreign issuer is not logged"

step "examples/server.rs --crl rejects a revoked client"
stop_server
openssl req -new -key client.key -subj "/O=Example/CN=interop-client-2" -out client2.csr
openssl x509 -req -in client2.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile client.ext -out client2.pem 2>/dev/null
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -revoke client.pem 2>/dev/null
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -gencrl -crldays 2 -out ca.crl 2>/dev/null
start_server crl.log --cert server.pem --key server.key --ca ca.pem --crl ca.crl
if curl -sS --max-time 10 --cert client.pem --key client.key --cacert ca.pem "$url" 2> curl3.err; then
    fail "a revoked client was served"
fi
grep -q "reason=revoked" crl.log || { cat crl.log; fail "revocation not logged as reason=revoked"; }
echo "ok: revoked client -> revoked ($(grep -o 'alert [a-z ]*' curl3.err | head -1))"
out=$(curl -sS --max-time 10 --cert client2.pem --key client.key --cacert ca.pem "$url")
grep -q "interop-client-2\|spiffe://example.org/interop" <<<"$out" || fail "a good client was refused under the CRL"
echo "ok: unrevoked client served under the CRL"

step "examples/server.rs with its defaults survives abuse while serving good clients"
stop_server
start_server abuse.log --cert server.pem --key server.key --ca ca.pem
python3 - "$port" <<'PY'
import socket, subprocess, sys, time
port = int(sys.argv[1])
url = f"https://localhost:{port}/"
good = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
        "--cert", "client2.pem", "--key", "client.key", "--cacert", "ca.pem", url]
# 200 idle sockets, half of them with half a ClientHello.
socks = []
for i in range(200):
    s = socket.create_connection(("127.0.0.1", port))
    if i % 2 == 0:
        s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))
    socks.append(s)
start = time.monotonic()
code = subprocess.run(good, capture_output=True, text=True).stdout
elapsed = time.monotonic() - start
assert code == "200", f"good client got {code!r}"
assert elapsed < 2.0, f"good client delayed {elapsed:.2f}s by idle sockets"
print(f"ok: good client served in {elapsed*1000:.0f} ms beside 200 idle sockets")
# Plaintext HTTP on the TLS port is closed fast.
p = socket.create_connection(("127.0.0.1", port))
p.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
p.settimeout(5)
start = time.monotonic()
try:
    while p.recv(1024):
        pass
except OSError:
    pass
assert time.monotonic() - start < 2.0, "plaintext connection lingered"
print("ok: plaintext HTTP closed fast")
# A flood of bad-certificate handshakes.
procs = [subprocess.Popen(["curl", "-s", "-o", "/dev/null", "--max-time", "10", "--cert", "foreign.pem",
                           "--key", "client.key", "--cacert", "ca.pem", url]) for _ in range(50)]
for pr in procs:
    pr.wait()
code = subprocess.run(good, capture_output=True, text=True).stdout
assert code == "200", f"good client after the flood got {code!r}"
print("ok: 50 bad-certificate handshakes, then a good client is served")
# The idle sockets are cut at the 10 s handshake timeout.
deadline = time.monotonic() + 15
for s in socks:
    s.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        while s.recv(1024):
            pass
    except socket.timeout:
        raise SystemExit("an idle socket outlived the handshake timeout")
    except OSError:
        pass
print("ok: all 200 idle sockets closed by the handshake timeout")
PY
[ "$(grep -c 'reason=timeout' abuse.log)" -ge 200 ] || fail "timeouts not logged"
[ "$(grep -c 'reason=unknown_issuer' abuse.log)" -ge 50 ] || fail "bad certificates not logged"
echo "ok: server log names $(grep -c 'reason=timeout' abuse.log) timeouts and $(grep -c 'reason=unknown_issuer' abuse.log) unknown issuers"
# A 200 KiB request header, over the 64 KiB default. `-H @file`: one argument cannot be that long.
python3 -c 'print("X-Big: " + "a" * 200 * 1024)' > big-header.txt
# The server answers 431 and closes at once, with the rest of the header unread: the reset that
# causes can reach curl first (exit 55/56, broken pipe or reset), so either outcome is a refusal.
rc=0
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --http1.1 -H @big-header.txt \
    --cert client2.pem --key client.key --cacert ca.pem "$url" 2> big.err) || rc=$?
if [ "$code" = 431 ]; then
    echo "ok: HTTP/1.1 with a 200 KiB header -> 431"
elif [ "$code" = 000 ] && { [ "$rc" -eq 55 ] || [ "$rc" -eq 56 ]; }; then
    echo "ok: HTTP/1.1 with a 200 KiB header -> connection closed (curl exit $rc: $(head -1 big.err))"
else
    cat big.err
    fail "HTTP/1.1 with a 200 KiB header: got $code (curl exit $rc), expected 431 or a closed connection"
fi
# HTTP/2: the stream is refused (REFUSED_STREAM; curl retries on fresh connections, then gives up).
rc=0
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --http2 -H @big-header.txt \
    --cert client2.pem --key client.key --cacert ca.pem "$url" 2> big.err) || rc=$?
[ "$rc" -ne 0 ] && [ "$code" != 200 ] || { cat big.err; fail "HTTP/2 with a 200 KiB header: got $code (curl exit $rc)"; }
echo "ok: HTTP/2 with a 200 KiB header -> refused (curl exit $rc: $(head -1 big.err))"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cert client2.pem --key client.key \
    --cacert ca.pem "$url") || true
[ "$code" = 200 ] || fail "after oversized headers, a good client got $code"
echo "ok: after oversized headers, a good client is served"
grep -q "panicked" abuse.log && { cat abuse.log; fail "the server panicked"; }

step "--handshake-timeout 1 closes a silent socket; --max-connections 2 holds a third client back"
stop_server
start_server limits.log --cert server.pem --key server.key --ca ca.pem --handshake-timeout 1 --max-connections 2
timeout 30 python3 - "$port" <<'PY'
import http.client, socket, ssl, subprocess, sys, time
port = int(sys.argv[1])
# A TCP connection that never sends a byte is closed at the 1 s handshake timeout.
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(5)
start = time.monotonic()
try:
    while s.recv(1024):
        pass
except socket.timeout:
    raise SystemExit("a silent socket was still open after 5 s")
except OSError:
    pass
elapsed = time.monotonic() - start
s.close()
assert 0.5 <= elapsed <= 3.0, f"silent socket closed after {elapsed:.2f} s, expected about 1 s"
print(f"ok: silent socket closed after {elapsed:.2f} s")
# Two keep-alive connections, each served once and then idle, take both connection slots.
ctx = ssl.create_default_context(cafile="ca.pem")
ctx.load_cert_chain("client2.pem", "client.key")
held = []
for _ in range(2):
    c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    r.read()
    assert r.status == 200, f"a held connection got {r.status}"
    held.append(c)
print("ok: two keep-alive connections served and held open")
third = subprocess.Popen(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                          "--cert", "client2.pem", "--key", "client.key", "--cacert", "ca.pem",
                          f"https://localhost:{port}/"], stdout=subprocess.PIPE, text=True)
try:
    time.sleep(2)
    # The third connection sits in the kernel's accept queue: no handshake timeout runs for it.
    assert third.poll() is None, f"a third client finished ({third.returncode}) beyond --max-connections 2"
    print("ok: a third client is not served for 2 s while two connections are open")
    held[0].close()
    start = time.monotonic()
    try:
        code, _ = third.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        raise SystemExit("the third client was not served within 5 s of a slot freeing")
    assert code == "200", f"the third client got {code!r}"
    print(f"ok: the third client served {time.monotonic() - start:.2f} s after one connection closed")
finally:
    if third.poll() is None:
        third.kill()
        third.wait()
    for c in held:
        c.close()
PY
grep -q "reason=timeout detail=no complete handshake within 1s" limits.log ||
    { cat limits.log; fail "the handshake timeout is not logged as reason=timeout ... within 1s"; }
[ "$(reason_count limits.log timeout)" -eq 1 ] || { cat limits.log; fail "expected exactly one timeout"; }
echo "ok: server: $(grep -o 'reason=timeout.*' limits.log)"

step "our client against openssl s_server -Verify"
stop_server
# Runs our client against the s_server on $port, which must fail with reason=$2 (printed by
# examples/client.rs in the server log's vocabulary); $3: what s_server must log, if anything.
ours_refused() {
    local what=$1 reason=$2 peer_saw=${3:-} rc=0
    timeout 20 "$root/target/debug/examples/client" --url "$url" --cert "${our_cert:-client.pem}" --key client.key \
        --ca ca.pem > ours.out 2>&1 || rc=$?
    [ "$rc" -ne 0 ] || { cat ours.out; fail "our client accepted $what"; }
    [ "$rc" -ne 124 ] || fail "our client hung against $what"
    grep -q "^reason=$reason\b" ours.out || { cat ours.out; fail "$what: our client did not print reason=$reason"; }
    if [ -n "$peer_saw" ]; then
        for _ in $(seq 20); do grep -q "$peer_saw" "$s_log" && break; sleep 0.1; done
        grep -q "$peer_saw" "$s_log" || { cat "$s_log"; fail "$what: s_server did not log '$peer_saw'"; }
    fi
    echo "ok: $what -> exit $rc, $(grep '^reason=' ours.out)"
    echo "   $(grep '^error:' ours.out | cut -c1-160)"
}
s_log=s_server.log
start_s_server "$s_log" -cert server.pem -key server.key -CAfile ca.pem -Verify 1 -verify_return_error -www
"$root/target/debug/examples/client" --url "$url" --cert client.pem --key client.key --ca ca.pem > ours.out 2>&1 ||
    { cat ours.out s_server.log; fail "our client could not talk to s_server"; }
grep -q "status: 200" ours.out || fail "s_server did not answer 200"
echo "ok: our client -> s_server -Verify: 200"
our_cert=foreign.pem ours_refused "s_server -Verify refusing a foreign client certificate" rejected_by_peer
grep -q "server rejected our client certificate" ours.out || fail "the rejection by s_server is not named"
grep -q "alert=unknown_ca" ours.out || fail "the unknown_ca alert is not named"
stop_server
openssl x509 -req -in server.csr -CA foreign-ca.pem -CAkey foreign-ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out foreign-server.pem 2>/dev/null
s_log=s_server2.log
start_s_server "$s_log" -cert foreign-server.pem -key server.key -www
ours_refused "an s_server from a foreign CA" unknown_issuer "alert unknown ca"
grep -q "server certificate rejected: certificate issued by an unknown CA" ours.out || fail "the untrusted server is not named"
stop_server
# Bad servers: an expired certificate, one for clientAuth only, and an s_server limited to TLS 1.1.
openssl ca -batch -notext -config ca.cnf -cert ca.pem -keyfile ca.key -in server.csr \
    -startdate 20200101000000Z -enddate 20200201000000Z -extfile server.ext -out expired-server.pem 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' > clientonly.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile clientonly.ext -out clientonly-server.pem 2>/dev/null
s_log=s_server3.log
start_s_server "$s_log" -cert expired-server.pem -key server.key -CAfile ca.pem -Verify 1 -verify_return_error -www
ours_refused "an s_server -Verify with an expired certificate" expired "alert certificate expired"
stop_server
s_log=s_server4.log
start_s_server "$s_log" -cert clientonly-server.pem -key server.key -CAfile ca.pem -Verify 1 -verify_return_error -www
ours_refused "an s_server -Verify with a clientAuth-only certificate" wrong_key_usage "alert unsupported certificate"
stop_server
# OpenSSL 3 still speaks TLS 1.1 at security level 0 (checked below with its own client), so the
# failure is about the version alone.
s_log=s_server5.log
start_s_server "$s_log" -cert server.pem -key server.key -CAfile ca.pem -Verify 1 -verify_return_error -www \
    -tls1_1 -cipher "$old_tls"
printf 'GET / HTTP/1.0\r\n\r\n' | timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
    -tls1_1 -cipher "$old_tls" -cert client2.pem -key client.key -CAfile ca.pem -quiet > tls11.out 2>&1 || true
grep -q "Protocol *: TLSv1.1" tls11.out || { cat tls11.out; fail "s_server -tls1_1 does not serve TLS 1.1 here"; }
echo "ok: s_server -tls1_1 serves openssl s_client over TLS 1.1"
ours_refused "an s_server -Verify limited to TLS 1.1" protocol_version "unsupported protocol"
stop_server

step "Kubernetes-style rotation behind a running server: no restart, no failed request"
stop_server
issue_server() { # $1: directory to write tls.crt/tls.key/ca.crt into
    mkdir -p "$1"
    openssl genrsa -traditional -out "$1/tls.key" 2048 2>/dev/null
    openssl req -new -key "$1/tls.key" -subj "/CN=localhost" -out "$1/tls.csr"
    openssl x509 -req -in "$1/tls.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out "$1/tls.crt" 2>/dev/null
    cp ca.pem "$1/ca.crt"
}
serial_of() { openssl x509 -noout -serial -in "$1" | cut -d= -f2; }
served_serial() {
    openssl s_client -connect "127.0.0.1:$port" -servername localhost -cert client.pem -key client.key \
        -CAfile ca.pem </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}
mkdir -p secret
issue_server secret/..v1
ln -s ..v1 secret/..data
for f in tls.crt tls.key ca.crt; do ln -s "..data/$f" "secret/$f"; done
start_server server3.log --cert secret/tls.crt --key secret/tls.key --ca secret/ca.crt
[ "$(served_serial)" = "$(serial_of secret/..v1/tls.crt)" ] || fail "first certificate not served"
out=$(curl -sS --max-time 10 --cert client.pem --key client.key --cacert ca.pem "https://localhost:$port/healthz")
echo "healthz: $out"
grep -q '"healthy":true' <<<"$out" || fail "healthz"
# Requests keep flowing during the swap; each one must succeed.
(
    ok=0; bad=0
    for _ in $(seq 150); do
        if curl -s -o /dev/null --max-time 5 --cert client.pem --key client.key --cacert ca.pem "$url"; then
            ok=$((ok + 1))
        else
            bad=$((bad + 1))
        fi
    done
    echo "$ok $bad" > load.out
) &
load_pid=$!
issue_server secret/..v2
ln -s ..v2 secret/..data_tmp && mv -T secret/..data_tmp secret/..data
new=$(serial_of secret/..v2/tls.crt)
for _ in $(seq 100); do
    [ "$(served_serial)" = "$new" ] && break
    sleep 0.1
done
[ "$(served_serial)" = "$new" ] || fail "the new certificate was not served within 10 s"
echo "new certificate $new served without a restart"
wait "$load_pid"
read -r ok bad < load.out
echo "$ok requests during the swap, $bad failed"
[ "$bad" -eq 0 ] || fail "requests failed during rotation"
# A broken replacement: the last good certificate keeps serving.
mkdir -p secret/..v3
echo "garbage" > secret/..v3/tls.crt
cp secret/..v2/tls.key secret/..v3/tls.key
cp ca.pem secret/..v3/ca.crt
ln -s ..v3 secret/..data_tmp && mv -T secret/..data_tmp secret/..data
sleep 7
[ "$(served_serial)" = "$new" ] || fail "a broken replacement changed what is served"
grep -q "keeping the last good material" server3.log || { cat server3.log; fail "broken replacement not logged"; }
out=$(curl -s --cert client.pem --key client.key --cacert ca.pem "https://localhost:$port/healthz" || true)
echo "$out"
grep -q '"healthy":false' <<<"$out" || fail "healthz should report the failed reload"
echo "interop: all passed"
