#!/usr/bin/env bash
# Interop: curl, openssl s_client, Python and Java talk to examples/server.rs with certificates
# made by openssl, and the same clients without a certificate are refused.
# Loopback only; the server is stopped on exit. Usage: tests/interop/run.sh
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

step "start examples/server.rs"
# Under `cargo test` the examples are already built (and cargo holds its lock).
if [ -z "${MTLS_INTEROP_NO_BUILD:-}" ]; then
    (cd "$root" && cargo build --quiet --example server --example client)
fi
for bin in server client; do
    [ -x "$root/target/debug/examples/$bin" ] || fail "target/debug/examples/$bin is missing: run cargo build --examples"
done
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$root/target/debug/examples/server" --listen "127.0.0.1:$port" \
    --cert server.pem --key server.key --ca ca.pem > server.log 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    grep -q listening server.log 2>/dev/null && break
    sleep 0.1
done
grep -q listening server.log || { cat server.log; fail "server did not start"; }
url="https://localhost:$port/"
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

step "server log names each refusal"
grep "TLS handshake failed" server.log || fail "no failure events"
grep -q 'reason=no_certificate' server.log || fail "no_certificate not logged"
step "a server whose policy does not allow this client refuses it with access_denied"
stop_server
"$root/target/debug/examples/server" --listen "127.0.0.1:$port" \
    --cert server.pem --key server.key --ca ca.pem --allow spiffe://example.org/someone-else > server2.log 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    grep -q listening server2.log 2>/dev/null && break
    sleep 0.1
done
if curl -sS --max-time 10 --cert client.pem --key client.key --cacert ca.pem "$url" 2> curl2.err; then
    fail "a client outside the policy was served"
fi
cat curl2.err
grep -qi "access denied" curl2.err || fail "curl did not see access_denied"
grep -q "policy=spiffe_ids(spiffe://example.org/someone-else)" server2.log || { cat server2.log; fail "denial not logged with the policy"; }
grep -q "peer.identity=spiffe://example.org/interop" server2.log || fail "denial not logged with the identity"
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
"$root/target/debug/examples/server" --listen "127.0.0.1:$port" \
    --cert server.pem --key server.key --ca ca.pem > matrix.log 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    grep -q listening matrix.log 2>/dev/null && break
    sleep 0.1
done
old_tls='DEFAULT:@SECLEVEL=0'
printf 'jdk.tls.disabledAlgorithms=\n' > java-legacy.security
for cert in foreign expired serveronly; do
    openssl pkcs12 -export -in "$cert.pem" -inkey client.key -name client -out "$cert.p12" -passout pass:changeit
done
# Runs one attempt ($3...) that must fail, then checks that the server logged reason $2.
expect_reason() {
    local what=$1 reason=$2
    shift 2
    local before
    before=$(grep -c "reason=$reason" matrix.log || true)
    if "$@" > attempt.out 2>&1; then
        cat attempt.out
        fail "$what was served"
    fi
    for _ in $(seq 50); do
        [ "$(grep -c "reason=$reason" matrix.log || true)" -gt "$before" ] && break
        sleep 0.1
    done
    [ "$(grep -c "reason=$reason" matrix.log || true)" -gt "$before" ] || {
        tail -5 matrix.log; fail "$what: the server did not log reason=$reason"; }
    echo "ok: $what -> $reason"
}
curl_with() { curl -sS --max-time 10 --cacert ca.pem "$@" "$url"; }
sclient_with() {
    printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile ca.pem -quiet "$@" 2>&1 |
        grep -q "$expect"
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

step "examples/server.rs --crl rejects a revoked client"
stop_server
openssl req -new -key client.key -subj "/O=Example/CN=interop-client-2" -out client2.csr
openssl x509 -req -in client2.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile client.ext -out client2.pem 2>/dev/null
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -revoke client.pem 2>/dev/null
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -gencrl -crldays 2 -out ca.crl 2>/dev/null
"$root/target/debug/examples/server" --listen "127.0.0.1:$port" \
    --cert server.pem --key server.key --ca ca.pem --crl ca.crl > crl.log 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    grep -q listening crl.log 2>/dev/null && break
    sleep 0.1
done
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
"$root/target/debug/examples/server" --listen "127.0.0.1:$port" \
    --cert server.pem --key server.key --ca ca.pem > abuse.log 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    grep -q listening abuse.log 2>/dev/null && break
    sleep 0.1
done
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

step "our client against openssl s_server -Verify"
stop_server
openssl s_server -accept "$port" -cert server.pem -key server.key -CAfile ca.pem -Verify 1 \
    -verify_return_error -www > s_server.log 2>&1 &
server_pid=$!
sleep 1
"$root/target/debug/examples/client" --url "$url" --cert client.pem --key client.key --ca ca.pem > ours.out 2>&1 ||
    { cat ours.out s_server.log; fail "our client could not talk to s_server"; }
grep -q "status: 200" ours.out || fail "s_server did not answer 200"
echo "ok: our client -> s_server -Verify: 200"
if "$root/target/debug/examples/client" --url "$url" --cert foreign.pem --key client.key --ca ca.pem > ours.out 2>&1; then
    fail "s_server accepted a foreign client certificate"
fi
cat ours.out
grep -q "server rejected our client certificate" ours.out || fail "the rejection by s_server is not named"
stop_server
openssl x509 -req -in server.csr -CA foreign-ca.pem -CAkey foreign-ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out foreign-server.pem 2>/dev/null
openssl s_server -accept "$port" -cert foreign-server.pem -key server.key -www > s_server2.log 2>&1 &
server_pid=$!
sleep 1
if "$root/target/debug/examples/client" --url "$url" --cert client.pem --key client.key --ca ca.pem > ours.out 2>&1; then
    fail "our client accepted a server from a foreign CA"
fi
cat ours.out
grep -q "server certificate rejected: certificate issued by an unknown CA" ours.out || fail "the untrusted server is not named"
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
"$root/target/debug/examples/server" --listen "127.0.0.1:$port" \
    --cert secret/tls.crt --key secret/tls.key --ca secret/ca.crt > server3.log 2>&1 &
server_pid=$!
for _ in $(seq 50); do
    grep -q listening server3.log 2>/dev/null && break
    sleep 0.1
done
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
