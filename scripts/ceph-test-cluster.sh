#!/usr/bin/env bash
# A throwaway Ceph cluster for the S3 tests and benches: one monitor, one OSD
# on an in-memory object store (memstore) and a RADOS Gateway, all on
# 127.0.0.1, started from nothing in a state directory and removed on stop.
#
#   eval "$(scripts/ceph-test-cluster.sh start)"   # prints export lines on stdout
#   scripts/ceph-test-cluster.sh status
#   scripts/ceph-test-cluster.sh stop
#
# Needs the Debian packages radosgw, ceph-mon and ceph-osd (and curl).
# Settings (environment): AT1_CEPH_DIR (state, default /tmp/at1-ceph),
# AT1_CEPH_MON_PORT (default 13300), AT1_CEPH_RGW_PORT (default 17480),
# AT1_CEPH_MEMSTORE_BYTES (capacity of the in-memory OSD, default 4 GiB).
# Progress goes to stderr; stdout carries only the export lines.
set -euo pipefail

DIR=${AT1_CEPH_DIR:-/tmp/at1-ceph}
MON_PORT=${AT1_CEPH_MON_PORT:-13300}
RGW_PORT=${AT1_CEPH_RGW_PORT:-17480}
MEMSTORE_BYTES=${AT1_CEPH_MEMSTORE_BYTES:-4294967296}
BUCKET=at1-test
USER_ID=at1-test
# Fixed test credentials: the cluster is on 127.0.0.1, holds only test data and lives for one run.
ACCESS_KEY=AT1TESTACCESSKEY0001
SECRET_KEY=at1-test-secret-key-not-for-real-use-0001
# A second user whose only rights are a bucket policy allowing reads and listings (tests of read-only credentials).
READER_ID=at1-reader
READER_ACCESS_KEY=AT1TESTREADONLYKEY01
READER_SECRET_KEY=at1-test-read-only-secret-not-for-real-use
REGION=us-east-1
ENDPOINT="http://127.0.0.1:${RGW_PORT}"
CONF="$DIR/ceph.conf"

say() { echo "ceph-test-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

print_exports() {
  cat <<EOF
export AWS_ENDPOINT_URL=${ENDPOINT}
export AWS_ACCESS_KEY_ID=${ACCESS_KEY}
export AWS_SECRET_ACCESS_KEY=${SECRET_KEY}
export AWS_REGION=${REGION}
export AT1_S3_TEST_BUCKET=${BUCKET}
export AT1_S3_TEST_READONLY_ACCESS_KEY_ID=${READER_ACCESS_KEY}
export AT1_S3_TEST_READONLY_SECRET_ACCESS_KEY=${READER_SECRET_KEY}
EOF
}

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

rgw_answers() { curl -s -o /dev/null -m 2 "$ENDPOINT/" 2>/dev/null; }

# A signed S3 request with curl's SigV4 support (no other S3 client is needed to set up).
# (curl 7.88 leaves x-amz-content-sha256 out of the signature unless given: pass the body's hash; the empty body's by default)
# (and signs a bare query `?policy` differently from S3: write `?policy=`)
s3() {
  local sha=${S3_BODY_SHA256:-e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855}
  curl -s -m 10 --aws-sigv4 "aws:amz:${REGION}:s3" --user "${ACCESS_KEY}:${SECRET_KEY}" -H "x-amz-content-sha256: $sha" "$@"
}

wait_for() { # wait_for SECONDS WHAT COMMAND...
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@"; do
    if ((SECONDS >= end)); then
      say "timed out after ${secs}s waiting for $what; logs in $DIR/log:"
      tail -n 20 "$DIR"/log/*.log >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.5
  done
}

cmd_status() {
  local ok=0
  for d in mon osd rgw; do
    if pid_alive "$DIR/run/$d.pid"; then say "$d running (pid $(cat "$DIR/run/$d.pid"))"; else say "$d not running"; ok=1; fi
  done
  if ((ok == 0)) && rgw_answers; then say "radosgw answers at $ENDPOINT"; else ok=1; fi
  return $ok
}

cmd_stop() {
  local d pid
  for d in rgw osd mon; do
    if pid_alive "$DIR/run/$d.pid"; then
      pid=$(cat "$DIR/run/$d.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      say "stopped $d (pid $pid)"
    fi
  done
  if [[ -f "$DIR/.at1-ceph-test-cluster" ]]; then rm -rf "$DIR"; fi
}

cmd_start() {
  for b in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph curl uuidgen; do
    command -v "$b" >/dev/null || die "$b is missing: apt-get install -y radosgw ceph-mon ceph-osd curl"
  done
  if pid_alive "$DIR/run/rgw.pid" && rgw_answers; then
    say "already running at $ENDPOINT"
    print_exports
    return 0
  fi
  if [[ -e "$DIR" ]]; then
    [[ -f "$DIR/.at1-ceph-test-cluster" ]] || die "$DIR exists and is not a test cluster's state directory; set AT1_CEPH_DIR"
    cmd_stop
  fi
  local t0=$SECONDS
  mkdir -p "$DIR"/{run,log,mon,osd,rgw}
  touch "$DIR/.at1-ceph-test-cluster"
  local fsid
  fsid=$(uuidgen)
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:${MON_PORT}
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
ms mon client mode = crc
ms client mode = crc
ms service mode = crc
ms cluster mode = crc
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = false
keyring = $DIR/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0

[mon]
mon data = $DIR/mon/\$cluster-\$id

[osd]
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = ${MEMSTORE_BYTES}
osd max object name len = 460
osd max object namespace len = 64

[client]
# tcp_nodelay: without it beast answers small GETs ~50 ms late (Nagle against the client's delayed ACK).
auth client required = none
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:${RGW_PORT} tcp_nodelay=1
rgw data = $DIR/rgw
rgw dns name = 127.0.0.1
rgw enable apis = s3, admin
EOF
  : >"$DIR/keyring"
  say "monitor on 127.0.0.1:${MON_PORT}"
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:${MON_PORT}]" "$DIR/run/monmap" >/dev/null 2>&1
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/run/monmap" >>"$DIR/log/setup.log" 2>&1 || die "ceph-mon --mkfs failed: $(tail -n 5 "$DIR/log/setup.log")"
  ceph-mon -c "$CONF" -i a --pid-file "$DIR/run/mon.pid" </dev/null >>"$DIR/log/setup.log" 2>&1
  wait_for 30 "the monitor" ceph -c "$CONF" --connect-timeout 5 mon stat >/dev/null 2>&1 </dev/null
  say "OSD (memstore, $((MEMSTORE_BYTES >> 20)) MiB)"
  local osd_uuid osd_id
  osd_uuid=$(uuidgen)
  osd_id=$(ceph -c "$CONF" osd new "$osd_uuid" 2>>"$DIR/log/setup.log" </dev/null)
  mkdir -p "$DIR/osd/ceph-$osd_id"
  ceph-osd -c "$CONF" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" </dev/null >>"$DIR/log/setup.log" 2>&1 || die "ceph-osd --mkfs failed: $(tail -n 5 "$DIR/log/setup.log")"
  ceph-osd -c "$CONF" -i "$osd_id" --pid-file "$DIR/run/osd.pid" </dev/null >>"$DIR/log/setup.log" 2>&1
  wait_for 40 "the OSD to come up" bash -c "ceph -c '$CONF' osd dump 2>/dev/null </dev/null | grep -q '^osd.$osd_id up'"
  say "radosgw on $ENDPOINT"
  radosgw -c "$CONF" -n client.rgw.a --pid-file "$DIR/run/rgw.pid" </dev/null >>"$DIR/log/setup.log" 2>&1
  wait_for 60 "radosgw" rgw_answers
  radosgw-admin -c "$CONF" user create --uid "$USER_ID" --display-name "at1 tests" \
    --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" </dev/null >>"$DIR/log/setup.log" 2>&1 || die "radosgw-admin user create failed: $(tail -n 5 "$DIR/log/setup.log")"
  local code
  code=$(s3 -o /dev/null -w '%{http_code}' -X PUT "$ENDPOINT/$BUCKET") || true
  [[ "$code" == 200 ]] || die "creating bucket $BUCKET answered HTTP $code"
  radosgw-admin -c "$CONF" user create --uid "$READER_ID" --display-name "at1 read-only tests" \
    --access-key "$READER_ACCESS_KEY" --secret-key "$READER_SECRET_KEY" </dev/null >>"$DIR/log/setup.log" 2>&1 || die "radosgw-admin user create (reader) failed"
  local policy="$DIR/run/policy.json"
  printf '%s' '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/'"$READER_ID"'"]}, "Action": ["s3:GetObject", "s3:ListBucket", "s3:ListBucketMultipartUploads"], "Resource": ["arn:aws:s3:::'"$BUCKET"'", "arn:aws:s3:::'"$BUCKET"'/*"]}]}' >"$policy"
  code=$(S3_BODY_SHA256=$(sha256sum "$policy" | cut -d' ' -f1) s3 -o /dev/null -w '%{http_code}' -X PUT -H "Content-Type: application/json" --data-binary "@$policy" "$ENDPOINT/$BUCKET?policy=") || true
  [[ "$code" == 200 || "$code" == 204 ]] || die "setting the read-only policy on $BUCKET answered HTTP $code"
  say "ready in $((SECONDS - t0)) s: bucket $BUCKET, users $USER_ID and $READER_ID (read-only); stop with: $0 stop"
  print_exports
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) print_exports ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
