#!/usr/bin/env bash
# Rill against its peers, on loopback, in one run: Rill (release build, delivery modes frame,
# coalesced and merged with merge_ms = 100), Node-Media-Server 2.7.4, the newest
# Node-Media-Server 4.x from the npm registry, nginx with Debian's libnginx-mod-rtmp, and the
# rill-bench floor (frame and batch100) that gives the "x floor" figure. The same rill-bench
# scenarios run against each server, every run on a freshly started server, and a markdown
# table (plus a small one on pacing) comes out on stdout (saved with every raw JSON report under
# target/bench/results/).
#
#   bench/compare.sh [--quick] [--only LIST] [--duration SECONDS] [--paced-from N] [--no-install]
#
#   --quick         viewer counts 1/100/1000 instead of 1/100/500/1000/2000, shorter windows
#   --only LIST     comma-separated targets or groups: rill (the three modes plus the floor, which
#                   Rill's "x floor" needs), rill-frame, rill-coalesced, rill-merged, nms (both),
#                   nms2, nms4, nginx, floor (both floor modes)
#   --duration S    measurement window of each fan-out run (default 12, quick 8)
#   --paced-from N  fan-out runs with N viewers or more are paced (default 1001: only the 2000
#                   row of a full run): all but 100 precise viewers read every 50 ms instead of
#                   as data arrives (--read-interval-ms 50 --precise-viewers 100), so that
#                   rill-bench's own CPU does not compete with the server's on the same cores;
#                   only the precise viewers give latency figures. Runs below N: every viewer
#                   reads as data arrives, as players do (pacing moves some servers' CPU figures:
#                   see scenario 4)
#   --no-install    use what is installed; a peer that is missing is reported as n/a
#   --table DIR     only print the table again from an earlier run's results directory
#
# Scenarios (see bench/COMPARE.md for what each column means); REF = 1000 viewers (the largest
# count when the counts do not include 1000):
#   1. one 2.5 Mbit/s 720p stream, N RTMP viewers          (every target but the floor)
#   2. the same with HTTP-FLV viewers                       (nginx-rtmp has none: n/a)
#   3. the same with WS-FLV viewers, REF only               (Rill's three modes and NMS; nginx and
#                                                            the floor: n/a, not run)
#   4. REF RTMP viewers, paced (as --paced-from), REF only  (nginx, rill-coalesced, rill-frame):
#                                                            a second table, against scenario 1
#   5. 200 publishers of ~500 kbit/s, one RTMP viewer each  (Rill in its default mode, peers)
#   6. 100 RTMP viewers plus one that stops reading         (Rill in its default mode, peers)
#   7. start-up time, idle RSS, RSS per connected viewer    (from every run)
#
# Everything listens on and talks to 127.0.0.1 only; every count and duration is bounded; only
# processes this script started are stopped, by PID.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=0
TABLE_ONLY=""
ONLY=""
INSTALL=1
DURATION=""
PACED_FROM=1001
while [[ $# -gt 0 ]]; do
    case "$1" in
    --quick) QUICK=1 ;;
    --only)
        ONLY="${2:?--only needs a list}"
        shift
        ;;
    --only=*) ONLY="${1#--only=}" ;;
    --duration)
        DURATION="${2:?--duration needs seconds}"
        shift
        ;;
    --paced-from)
        PACED_FROM="${2:?--paced-from needs a viewer count}"
        shift
        ;;
    --paced-from=*) PACED_FROM="${1#--paced-from=}" ;;
    --no-install) INSTALL=0 ;;
    --table)
        TABLE_ONLY="${2:?--table needs a results directory}"
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "compare.sh: unknown option $1 (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done

if [[ $QUICK == 1 ]]; then
    COUNTS=(1 100 1000)
    DURATION=${DURATION:-8}
    SLOW_WINDOW=24
else
    COUNTS=(1 100 500 1000 2000)
    DURATION=${DURATION:-12}
    SLOW_WINDOW=40
fi
# COMPARE_COUNTS="1 100" and COMPARE_SLOW_WINDOW=10 override the viewer counts and the slow
# consumer's window (smoke tests of the script itself).
SLOW_WINDOW=${COMPARE_SLOW_WINDOW:-$SLOW_WINDOW}
if ! [[ $SLOW_WINDOW =~ ^[0-9]+$ ]] || ((SLOW_WINDOW < 6 || SLOW_WINDOW > 300)); then
    echo "compare.sh: COMPARE_SLOW_WINDOW must be 6..300 seconds" >&2
    exit 2
fi
if [[ -n ${COMPARE_COUNTS:-} ]]; then
    read -ra COUNTS <<<"$COMPARE_COUNTS"
fi
for n in "${COUNTS[@]}"; do
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 5000)); then
        echo "compare.sh: viewer counts must be 1..5000" >&2
        exit 2
    fi
done
if ! [[ $DURATION =~ ^[0-9]+$ ]] || ((DURATION < 2 || DURATION > 120)); then
    echo "compare.sh: --duration must be 2..120 seconds" >&2
    exit 2
fi
if ! [[ $PACED_FROM =~ ^[0-9]+$ ]] || ((PACED_FROM < 1 || PACED_FROM > 100000)); then
    echo "compare.sh: --paced-from must be 1..100000 viewers" >&2
    exit 2
fi
# The count the CPU, WS-FLV and paced columns are taken at: 1000, or the largest count.
REF_N=0
for n in "${COUNTS[@]}"; do
    ((n > REF_N)) && REF_N=$n
done
for n in "${COUNTS[@]}"; do
    ((n == 1000)) && REF_N=1000
done
WARMUP=3
RAMP=250          # connections opened per second
# Pacing (--paced-from): from PACED_FROM viewers on, all but 100 "precise" viewers read every
# 50 ms instead of as data arrives (they still take the whole stream), which keeps rill-bench's
# own CPU, on the same two cores, from setting the pace; only the precise viewers feed the
# latency figures. It is not the default below that count because it changes what is measured:
# while a viewer does not read, delayed ACKs plus Nagle's algorithm merge a server's small writes
# (nginx-rtmp: 20.8 % CPU at 1000 paced RTMP viewers, 53 % when they read at once). Scenario 4
# measures that difference.
READ_INTERVAL_MS=50
PRECISE_VIEWERS=100
PACE_ARGS=(--read-interval-ms "$READ_INTERVAL_MS" --precise-viewers "$PRECISE_VIEWERS")
INGEST_PUBS=200
SLOW_HEALTHY=100

ALL_TARGETS=(rill-frame rill-coalesced rill-merged nms2 nms4 nginx floor-frame floor-batch100)
declare -A WANT=()
if [[ -z $ONLY ]]; then
    for t in "${ALL_TARGETS[@]}"; do WANT[$t]=1; done
else
    IFS=, read -ra parts <<<"$ONLY"
    for p in "${parts[@]}"; do
        case "$p" in
        rill) WANT[rill-frame]=1 WANT[rill-coalesced]=1 WANT[rill-merged]=1 WANT[floor-frame]=1 WANT[floor-batch100]=1 ;;
        nms) WANT[nms2]=1 WANT[nms4]=1 ;;
        floor) WANT[floor-frame]=1 WANT[floor-batch100]=1 ;;
        rill-frame | rill-coalesced | rill-merged | nms2 | nms4 | nginx | floor-frame | floor-batch100) WANT[$p]=1 ;;
        *)
            echo "compare.sh: unknown target $p" >&2
            exit 2
            ;;
        esac
    done
fi
want() { [[ -n ${WANT[$1]:-} ]]; }

WORK=$ROOT/target/bench/compare
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$ROOT/target/bench/results/compare-$STAMP
RUNS=$OUT/runs.jsonl
if [[ -z $TABLE_ONLY ]]; then
    mkdir -p "$WORK" "$OUT"
    : >"$RUNS"
fi
LOG=$OUT/compare.log
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$LOG" >&2 2>/dev/null; }

# Connections: 2000 viewers plus the server's own sockets, on both sides of loopback.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < 5000)); then
    log "warning: open files limit $(ulimit -n); the 2000-viewer runs may fail"
fi

# --- processes we started: stopped by PID on exit ------------------------------------------------
STARTED=()
BG=() # the slow scenario's bench, stalled client and sampler while they run
cleanup() {
    local p
    for p in "${BG[@]}" "${STARTED[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    sleep 0.3
    for p in "${BG[@]}" "${STARTED[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- JSON bookkeeping (python3: every record is one line of runs.jsonl) ----------------------------
# record KEY=VALUE...: values that parse as JSON (numbers, objects) stay typed, others are strings.
record() {
    python3 - "$RUNS" "$@" <<'PY'
import json, sys
rec = {}
for kv in sys.argv[2:]:
    k, _, v = kv.partition("=")
    try:
        rec[k] = json.loads(v)
    except ValueError:
        rec[k] = v
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(rec) + "\n")
PY
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

now_ms() { date +%s%3N; }

# wait_port PORT PID TIMEOUT_S: 0 once 127.0.0.1:PORT accepts, 1 if PID died or time ran out.
wait_port() {
    python3 - "$1" "$2" "$3" <<'PY'
import os, socket, sys, time
port, pid, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + limit
while time.monotonic() < end:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.005)
sys.exit(1)
PY
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# The PIDs a server consists of: the one we started and its children (nginx's worker).
family() {
    local p=$1
    echo "$p"
    pgrep -P "$p" 2>/dev/null || true
}

family_rss_kib() {
    local sum=0 p r
    for p in $(family "$1"); do
        r=$(rss_kib "$p")
        sum=$((sum + ${r:-0}))
    done
    echo "$sum"
}

# --- installs --------------------------------------------------------------------------------------
NGINX_REASON=""
NMS2_REASON=""
NMS4_REASON=""
NMS4_VERSION=""
NMS2_DIR=$ROOT/target/bench/nms2/node_modules/node-media-server
NMS4_DIR=$ROOT/target/bench/nms4/node_modules/node-media-server
RTMP_SO=/usr/lib/nginx/modules/ngx_rtmp_module.so

install_nginx() {
    if command -v nginx >/dev/null && [[ -f $RTMP_SO ]]; then
        return 0
    fi
    if [[ $INSTALL == 0 ]]; then
        NGINX_REASON="nginx or libnginx-mod-rtmp not installed (--no-install)"
        return 1
    fi
    log "installing nginx + libnginx-mod-rtmp (Debian); the system service is not started"
    # Debian's postinst starts nginx through invoke-rc.d unless a policy forbids it: forbid it
    # for the length of the install when the image has no such policy already.
    local own_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
    fi
    local ok=0
    apt-get install -y -o DPkg::Lock::Timeout=600 nginx libnginx-mod-rtmp >>"$LOG" 2>&1 && ok=1
    if [[ $ok == 0 ]]; then
        apt-get update >>"$LOG" 2>&1
        apt-get install -y -o DPkg::Lock::Timeout=600 nginx libnginx-mod-rtmp >>"$LOG" 2>&1 && ok=1
    fi
    [[ $own_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d
    if [[ $ok == 0 ]] || ! command -v nginx >/dev/null || [[ ! -f $RTMP_SO ]]; then
        NGINX_REASON="apt-get install nginx libnginx-mod-rtmp failed (see compare.log)"
        return 1
    fi
}

installed_version() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$1/package.json" 2>/dev/null
}

install_nms() {
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        NMS2_REASON="node/npm not found"
        NMS4_REASON="node/npm not found"
        return
    fi
    if want nms2 && [[ $(installed_version "$NMS2_DIR") != 2.7.4 ]]; then
        if [[ $INSTALL == 0 ]]; then
            NMS2_REASON="node-media-server 2.7.4 not installed (--no-install)"
        else
            log "npm install node-media-server@2.7.4"
            npm install --no-audit --no-fund --prefix "$ROOT/target/bench/nms2" node-media-server@2.7.4 >>"$LOG" 2>&1 ||
                NMS2_REASON="npm install node-media-server@2.7.4 failed (see compare.log)"
        fi
    fi
    if want nms4; then
        # The newest 4.x the registry serves (a list when several match, a string when one does).
        local newest
        newest=$(npm view 'node-media-server@4' version --json 2>>"$LOG" |
            python3 -c 'import json,sys; v=json.load(sys.stdin); v=v if isinstance(v,list) else [v]; print(sorted(v, key=lambda s: [int(x) for x in s.split(".")])[-1])' 2>/dev/null)
        local have
        have=$(installed_version "$NMS4_DIR")
        if [[ -z $newest ]]; then
            newest=$have
            [[ -n $newest ]] && log "npm view failed: using the installed node-media-server $have"
        fi
        if [[ -z $newest ]]; then
            NMS4_REASON="npm view node-media-server@4 failed and none installed"
        elif [[ $have != "$newest" ]]; then
            if [[ $INSTALL == 0 ]]; then
                NMS4_REASON="node-media-server $newest not installed (--no-install)"
            else
                log "npm install node-media-server@$newest"
                npm install --no-audit --no-fund --prefix "$ROOT/target/bench/nms4" "node-media-server@$newest" >>"$LOG" 2>&1 ||
                    NMS4_REASON="npm install node-media-server@$newest failed (see compare.log)"
            fi
        fi
        NMS4_VERSION=$(installed_version "$NMS4_DIR")
    fi
}

# --- start scripts for the peers -------------------------------------------------------------------
write_nms_scripts() {
    # NMS 2.x: the documented constructor config; logType 1 = errors only (its per-session logs
    # would otherwise cost it CPU on a console). 2.x listens on every interface and has no host
    # option, so listen() is pinned to 127.0.0.1 here, without touching NMS itself.
    cat >"$WORK/nms2.js" <<'JS'
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === "number" && (rest.length === 0 || typeof rest[0] === "function")) {
    return listen.call(this, port, "127.0.0.1", ...rest);
  }
  return listen.call(this, port, ...rest);
};
const NodeMediaServer = require(process.argv[2]);
const rtmp = Number(process.argv[3]), http = Number(process.argv[4]);
new NodeMediaServer({
  logType: 1,
  rtmp: { port: rtmp, chunk_size: 60000, gop_cache: true, ping: 30, ping_timeout: 60 },
  http: { port: http, allow_origin: "*", mediaroot: process.argv[5] },
}).run();
JS
    # NMS 4.x: the config bin/app.js builds from bin/config.json, given directly (its bin would
    # write a generated admin password back into the package's config file). No web admin, no
    # RTMPS/HTTPS (no rtmps/https keys), records off, store under our work dir; its logger is
    # set to warn after the constructor (which forces debug).
    cat >"$WORK/nms4.js" <<'JS'
const path = require("path");
const dir = process.argv[2];
const NodeMediaServer = require(dir);
const logger = require(path.join(dir, "src/core/logger.js"));
const rtmp = Number(process.argv[3]), http = Number(process.argv[4]), data = process.argv[5];
const config = {
  bind: "127.0.0.1",
  notify: { url: "" },
  store: { path: path.join(data, "store"), maxHistory: 10000 },
  auth: { play: false, publish: false, secret: "rill-bench-compare" },
  rtmp: { port: rtmp },
  http: { port: http },
  webadmin: { enable: false },
  record: { auto: false, path: path.join(data, "record") },
};
const nms = new NodeMediaServer(config, path.join(data, "config.json"));
logger.level = "warn";
nms.run();
JS
}

# --- servers ---------------------------------------------------------------------------------------
# start_server TARGET: sets SPID (the process we started), MPID (the process rill-bench measures:
# nginx's worker, otherwise SPID), RTMP_PORT, HTTP_PORT, STARTUP_MS, IDLE_KIB; or REASON and 1.
SPID=""
MPID=""
RTMP_PORT=""
HTTP_PORT=""
STARTUP_MS=""
IDLE_KIB=""
IDLE_M_KIB=""
REASON=""

start_server() {
    local target=$1 dir t0
    SPID="" MPID="" STARTUP_MS="" IDLE_KIB="" REASON=""
    RTMP_PORT=$(free_port)
    HTTP_PORT=$(free_port)
    dir=$WORK/run-$target
    rm -rf "$dir"
    mkdir -p "$dir"
    case "$target" in
    rill-*)
        local mode=${target#rill-}
        cat >"$dir/rill.toml" <<TOML
[rtmp]
host = "127.0.0.1"
port = $RTMP_PORT
chunk_size = 60000
gop_cache = true
max_connections_per_ip = 10000   # every viewer of the load tool comes from 127.0.0.1

[http]
host = "127.0.0.1"
port = $HTTP_PORT
mediaroot = "$dir/media"
max_connections_per_ip = 10000

[delivery]
write = "$mode"
merge_ms = 100
TOML
        t0=$(now_ms)
        "$ROOT/target/release/rill" --config "$dir/rill.toml" --log-level warn >"$dir/server.log" 2>&1 &
        SPID=$!
        ;;
    floor-*)
        local mode=${target#floor-}
        t0=$(now_ms)
        "$BENCH" floor --port "$HTTP_PORT" --rtmp-port "$RTMP_PORT" --mode "$mode" >"$dir/server.log" 2>&1 &
        SPID=$!
        ;;
    nms2)
        [[ -n $NMS2_REASON ]] && REASON=$NMS2_REASON && return 1
        mkdir -p "$dir/media"
        t0=$(now_ms)
        node "$WORK/nms2.js" "$NMS2_DIR" "$RTMP_PORT" "$HTTP_PORT" "$dir/media" >"$dir/server.log" 2>&1 &
        SPID=$!
        ;;
    nms4)
        [[ -n $NMS4_REASON ]] && REASON=$NMS4_REASON && return 1
        t0=$(now_ms)
        node "$WORK/nms4.js" "$NMS4_DIR" "$RTMP_PORT" "$HTTP_PORT" "$dir" >"$dir/server.log" 2>&1 &
        SPID=$!
        ;;
    nginx)
        [[ -n $NGINX_REASON ]] && REASON=$NGINX_REASON && return 1
        mkdir -p "$dir/logs"
        # One worker, as NMS is one process (Rill uses a core per runtime thread; see the notes).
        # nginx-rtmp has no GOP cache: a new viewer starts at the next keyframe (wait_key).
        cat >"$dir/nginx.conf" <<NGINX
load_module $RTMP_SO;
worker_processes 1;
worker_rlimit_nofile 20000;
error_log $dir/logs/error.log warn;
events {
    worker_connections 10240;
}
rtmp {
    server {
        listen 127.0.0.1:$RTMP_PORT;
        chunk_size 60000;
        application live {
            live on;
            wait_key on;
        }
    }
}
NGINX
        t0=$(now_ms)
        nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" \
            -g "daemon off; pid $dir/nginx.pid;" >"$dir/server.log" 2>&1 &
        SPID=$!
        ;;
    esac
    STARTED+=("$SPID")
    if ! wait_port "$RTMP_PORT" "$SPID" 20; then
        REASON="did not start (accepting on its RTMP port): $(tail -c 300 "$dir/server.log" "$dir/logs/error.log" 2>/dev/null | tr '\n' ' ')"
        stop_server
        return 1
    fi
    STARTUP_MS=$(($(now_ms) - t0))
    if [[ $target != nginx ]] && ! wait_port "$HTTP_PORT" "$SPID" 10; then
        REASON="its HTTP port did not open"
        stop_server
        return 1
    fi
    MPID=$SPID
    if [[ $target == nginx ]]; then
        local w=""
        for _ in $(seq 50); do
            w=$(pgrep -P "$SPID" | head -1)
            [[ -n $w ]] && break
            sleep 0.05
        done
        [[ -z $w ]] && REASON="no nginx worker process" && stop_server && return 1
        MPID=$w
    fi
    sleep 1 # settle: what a server does just after binding is not idle
    IDLE_KIB=$(family_rss_kib "$SPID")
    IDLE_M_KIB=$(rss_kib "$MPID")
    return 0
}

stop_server() {
    [[ -z $SPID ]] && return
    kill -TERM "$SPID" 2>/dev/null || true
    local i
    for i in $(seq 50); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    # Forget it, so that the exit trap never signals a PID the system may have reused.
    local keep=() p
    for p in "${STARTED[@]}"; do
        [[ $p != "$SPID" ]] && keep+=("$p")
    done
    STARTED=("${keep[@]}")
    SPID=""
}

# --- the slow consumer ------------------------------------------------------------------------------
# An RTMP player in plain Python: handshake, connect, createStream, play; it reads for a second
# and then stops reading with a 4 KiB receive buffer, so the server's queue for it, not the
# kernel's, is what grows. At the end it reads what is waiting for up to 2 s: whether the server
# closed the connection and how much it had queued.
write_stall_py() {
    cat >"$WORK/stall.py" <<'PY'
import json, os, socket, struct, sys, time

port, app, stream = int(sys.argv[1]), sys.argv[2], sys.argv[3]
read_s, stall_s = float(sys.argv[4]), float(sys.argv[5])
out = {"read_bytes": 0, "drained_bytes": 0, "outcome": "", "error": None}

def amf_str(s):
    b = s.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b

def amf_num(n):
    return b"\x00" + struct.pack(">d", n)

def amf_obj(pairs):
    body = b"".join(struct.pack(">H", len(k)) + k.encode() + v for k, v in pairs)
    return b"\x03" + body + b"\x00\x00\x09"

def msg(csid, type_id, sid, payload):
    # One chunk, format 0: every payload here is below the 4096-byte chunk size we announce.
    return (bytes([csid]) + b"\x00\x00\x00" + len(payload).to_bytes(3, "big")
            + bytes([type_id]) + struct.pack("<I", sid) + payload)

def recv_until(sock, buf, pred, limit=5.0):
    end = time.monotonic() + limit
    while not pred(buf):
        if time.monotonic() > end:
            raise TimeoutError("no answer from the server")
        sock.settimeout(max(0.05, end - time.monotonic()))
        d = sock.recv(65536)
        if not d:
            raise ConnectionError("closed during setup")
        buf += d
    return buf

try:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    c1 = bytes(8) + os.urandom(1528)
    s.sendall(b"\x03" + c1)
    buf = recv_until(s, b"", lambda b: len(b) >= 3073)
    s.sendall(buf[1:1537])  # C2 echoes S1
    buf = buf[3073:]
    tc = f"rtmp://127.0.0.1:{port}/{app}"
    s.sendall(msg(2, 1, 0, struct.pack(">I", 4096)))
    s.sendall(msg(3, 20, 0, amf_str("connect") + amf_num(1) + amf_obj([
        ("app", amf_str(app)), ("flashVer", amf_str("LNX 9,0,124,2")), ("tcUrl", amf_str(tc)),
        ("fpad", b"\x01\x00"), ("capabilities", amf_num(15)), ("audioCodecs", amf_num(3191)),
        ("videoCodecs", amf_num(252)), ("videoFunction", amf_num(1))])))
    tag = amf_str("_result")
    buf = recv_until(s, buf, lambda b: tag in b)
    s.sendall(msg(3, 20, 0, amf_str("createStream") + amf_num(2) + b"\x05"))
    buf = recv_until(s, buf, lambda b: b.count(tag) >= 2 and len(b) >= b.rfind(tag) + len(tag) + 19)
    at = buf.rfind(tag) + len(tag) + 9 + 1  # past the transaction id and the null
    sid = int(struct.unpack(">d", buf[at + 1:at + 9])[0]) if buf[at:at + 1] == b"\x00" else 1
    s.sendall(msg(2, 4, 0, struct.pack(">HII", 3, sid, 1000)))
    s.sendall(msg(8, 20, sid, amf_str("play") + amf_num(0) + b"\x05" + amf_str(stream)))
    end = time.monotonic() + read_s
    while time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            d = s.recv(65536)
        except socket.timeout:
            continue
        if not d:
            raise ConnectionError("closed while reading")
        out["read_bytes"] += len(d)
    time.sleep(stall_s)
    end = time.monotonic() + 2.0
    out["outcome"] = "kept open"
    while time.monotonic() < end:
        s.settimeout(0.3)
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            break
        except ConnectionResetError:
            out["outcome"] = "reset by server"
            break
        if not d:
            out["outcome"] = "closed by server"
            break
        out["drained_bytes"] += len(d)
    s.close()
except Exception as e:  # the report says what went wrong; the scenario goes on
    out["outcome"] = "error"
    out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
PY
}

# --- one rill-bench run ----------------------------------------------------------------------------
# bench_run FILE BUDGET_S ARGS...: runs rill-bench with --json into FILE; 0 when it produced JSON.
bench_run() {
    local file=$1 budget=$2
    shift 2
    timeout --signal=TERM --kill-after=5 "$budget" "$BENCH" "$@" --server-pid "$MPID" --json \
        >"$file" 2>"${file%.json}.err"
    local rc=$?
    if [[ $rc != 0 ]] || ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$file" 2>/dev/null; then
        return 1
    fi
    return 0
}

err_tail() { tail -c 300 "${1%.json}.err" 2>/dev/null | tr '\n' ' '; }

# fanout TARGET SCENARIO N: SCENARIO is rtmp, http-flv or ws-flv (paced from PACED_FROM viewers
# on), or rtmp-paced (RTMP viewers, paced whatever N).
fanout() {
    local target=$1 scenario=$2 n=$3 proto name file budget paced=false
    proto=${scenario%-paced}
    name="$target-$scenario-$n"
    file=$OUT/$name.json
    if [[ $proto != rtmp && $target == nginx ]]; then
        record target="$target" scenario="$scenario" count="$n" status=n/a reason="nginx-rtmp has no ${proto^^}"
        return
    fi
    if [[ $proto != http-flv && $target == floor-* ]]; then
        record target="$target" scenario="$scenario" count="$n" status=n/a reason="the floor serves HTTP-FLV only"
        return
    fi
    local pace=()
    if [[ $scenario == *-paced ]] || ((n >= PACED_FROM)); then
        pace=("${PACE_ARGS[@]}")
        paced=true
    fi
    if ! start_server "$target"; then
        log "$name: n/a: $REASON"
        record target="$target" scenario="$scenario" count="$n" status=n/a paced="$paced" reason="$REASON"
        return
    fi
    log "$name: start-up ${STARTUP_MS} ms, idle RSS $((IDLE_KIB / 1024)) MiB; running$([[ $paced == true ]] && echo ", paced")"
    budget=$((n / RAMP + WARMUP + DURATION + 60))
    # HTTP-FLV and WS-FLV play URLs are derived by rill-bench from --url and --http-port:
    # http://127.0.0.1:HTTP_PORT/live/bench.flv and ws://127.0.0.1:HTTP_PORT/live/bench.flv.
    if bench_run "$file" "$budget" fanout --viewers "$n" --protocol "$proto" "${pace[@]}" \
        --url "rtmp://127.0.0.1:$RTMP_PORT/live/bench" --http-port "$HTTP_PORT" \
        --file "$FLV_MAIN" --ramp-per-sec "$RAMP" --warmup "$WARMUP" --duration "$DURATION"; then
        record target="$target" scenario="$scenario" count="$n" status=ok json="$file" paced="$paced" \
            startup_ms="$STARTUP_MS" idle_kib="$IDLE_KIB" idle_measured_kib="$IDLE_M_KIB"
    else
        record target="$target" scenario="$scenario" count="$n" status=fail json="$file" paced="$paced" \
            startup_ms="$STARTUP_MS" idle_kib="$IDLE_KIB" reason="rill-bench failed: $(err_tail "$file")"
    fi
    stop_server
}

ingest() {
    local target=$1 file=$OUT/$1-ingest.json budget
    if ! start_server "$target"; then
        log "$target-ingest: n/a: $REASON"
        record target="$target" scenario=ingest count="$INGEST_PUBS" status=n/a reason="$REASON"
        return
    fi
    log "$target-ingest: $INGEST_PUBS publishers"
    budget=$((INGEST_PUBS / RAMP + WARMUP + DURATION + 60))
    if bench_run "$file" "$budget" ingest --publishers "$INGEST_PUBS" --protocol rtmp \
        --url "rtmp://127.0.0.1:$RTMP_PORT/live/in" --http-port "$HTTP_PORT" \
        --file "$FLV_INGEST" --ramp-per-sec "$RAMP" --warmup "$WARMUP" --duration "$DURATION"; then
        record target="$target" scenario=ingest count="$INGEST_PUBS" status=ok json="$file" \
            startup_ms="$STARTUP_MS" idle_kib="$IDLE_KIB"
    else
        record target="$target" scenario=ingest count="$INGEST_PUBS" status=fail json="$file" \
            reason="rill-bench failed: $(err_tail "$file")"
    fi
    stop_server
}

slow() {
    local target=$1 file=$OUT/$1-slow.json budget bpid spid sampler rssf=$OUT/$1-slow-rss.txt
    if ! start_server "$target"; then
        log "$target-slow: n/a: $REASON"
        record target="$target" scenario=slow count="$SLOW_HEALTHY" status=n/a reason="$REASON"
        return
    fi
    log "$target-slow: $SLOW_HEALTHY RTMP viewers + 1 that stops reading, ${SLOW_WINDOW} s window"
    budget=$((SLOW_HEALTHY / RAMP + WARMUP + SLOW_WINDOW + 60))
    local t0
    t0=$(now_ms)
    # RSS of the server every 0.5 s while the run lasts (time in ms since the bench started).
    (
        while kill -0 "$MPID" 2>/dev/null; do
            echo "$(($(now_ms) - t0)) $(rss_kib "$MPID")"
            sleep 0.5
        done
    ) >"$rssf" &
    sampler=$!
    timeout --signal=TERM --kill-after=5 "$budget" "$BENCH" fanout --viewers "$SLOW_HEALTHY" \
        --protocol rtmp --url "rtmp://127.0.0.1:$RTMP_PORT/live/bench" --http-port "$HTTP_PORT" \
        --file "$FLV_MAIN" --ramp-per-sec "$RAMP" --warmup "$WARMUP" --duration "$SLOW_WINDOW" \
        --server-pid "$MPID" --json >"$file" 2>"${file%.json}.err" &
    bpid=$!
    # The healthy viewers are in by ~1 s; the stalled one reads for 1 s from 1.5 s on, then
    # stops until 2 s before the window ends, while the publisher is still live.
    sleep 1.5
    local stall_for=$((WARMUP + SLOW_WINDOW - 3))
    python3 "$WORK/stall.py" "$RTMP_PORT" live bench 1 "$stall_for" >"$OUT/$target-slow-stall.json" 2>&1 &
    spid=$!
    BG=("$bpid" "$spid" "$sampler")
    local stall_start=$(($(now_ms) - t0 + 1000))
    wait "$spid"
    local stall_end=$(($(now_ms) - t0))
    wait "$bpid"
    local rc=$?
    kill "$sampler" 2>/dev/null
    wait "$sampler" 2>/dev/null
    BG=()
    if [[ $rc == 0 ]] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$file" 2>/dev/null; then
        record target="$target" scenario=slow count="$SLOW_HEALTHY" status=ok json="$file" \
            stall="$(cat "$OUT/$target-slow-stall.json")" rss_file="$rssf" \
            stall_start_ms="$stall_start" stall_end_ms="$stall_end"
    else
        record target="$target" scenario=slow count="$SLOW_HEALTHY" status=fail json="$file" \
            reason="rill-bench failed: $(err_tail "$file")"
    fi
    stop_server
}

# --- the table -------------------------------------------------------------------------------------
print_table() {
    python3 - "$1" <<'PY'
import json, os, re, sys, textwrap

out = sys.argv[1]
meta = json.load(open(os.path.join(out, "meta.json")))
runs = [json.loads(l) for l in open(os.path.join(out, "runs.jsonl")) if l.strip()]
GIB_BITS = 8 * 2**30 / 1e9  # Gbit in one GiB

def load(r):
    try:
        return json.load(open(r["json"]))
    except Exception:
        return None

for r in runs:
    r["rep"] = load(r) if r.get("status") in ("ok", "fail") and r.get("json") else None

def find(target, scenario, count=None):
    for r in runs:
        if r["target"] == target and r["scenario"] == scenario and (count is None or r["count"] == count):
            return r
    return None

def cpu_gib(rep):
    v = rep.get("server_cpu_s_per_gbit") if rep else None
    return v * GIB_BITS if v is not None else None

def latency(rep):
    """(p50, p99, all_frames) of a report's latency: over audio and video frames when it has them
    (all_frames_latency_ms), else video frames only (latency_ms, all older reports have); Nones
    when nothing was measured."""
    rep = rep or {}
    both = rep.get("all_frames_latency_ms")
    if both and both.get("count"):
        return both["p50"], both["p99"], True
    lat = rep.get("latency_ms")
    if lat and lat.get("samples"):
        return lat["p50"], lat["p99"], False
    return None, None, False

def fmt_p99(rep, spec=".1f"):
    """The p99 cell: ᵛ marks a video-only figure (a report from before audio was measured)."""
    _, p, both = latency(rep)
    return fmt(p, spec) + ("" if p is None or both else "ᵛ")

def keeps_up(rep):
    """Every viewer connected, none dropped, each got >= 90 % of the stream's rate, p99 < 500 ms
    (over audio and video frames where the report has that, else over video frames)."""
    if not rep:
        return False
    v = rep["viewers"]
    if v["connected"] != v["requested"] or v["dropped"] or v["without_frames"]:
        return False
    rate = (rep.get("file_kbps") or 0) / 1000
    per = rep.get("per_viewer_mbps")
    if not per or per["min"] < 0.9 * rate:
        return False
    p99 = latency(rep)[1]
    return p99 is not None and p99 < 500

def tool_bound(rep):
    t = rep.get("tool") if rep else None
    return bool(t and t.get("cpu_percent", 0) >= 95)

def fmt(v, spec=".2f", na="–"):
    return na if v is None else format(v, spec)

NAMES = {
    "rill-frame": "Rill (frame)", "rill-coalesced": "Rill (coalesced, default)",
    "rill-merged": "Rill (merged, 100 ms)", "nms2": "NMS 2.7.4",
    "nms4": f"NMS {meta.get('nms4_version') or '4.x'}",
    "nginx": f"nginx {meta.get('nginx_version')} + rtmp {meta.get('rtmp_module_version')}",
    "floor-frame": "floor (frame)", "floor-batch100": "floor (batch100)",
}
targets = [t for t in NAMES if any(r["target"] == t for r in runs)]
counts = meta["counts"]
ref_n = meta.get("ref_count") or (1000 if 1000 in counts else max(counts))
pacing = meta.get("pacing") or {"read_interval_ms": 50, "precise_viewers": 100}

def is_paced(r):
    """Whether a fan-out run's bulk viewers were paced: recorded since --paced-from exists; for
    older results, from the paced_from of their meta.json (every count from it on)."""
    if "paced" in r:
        return bool(r["paced"])
    return r["scenario"].endswith("-paced") or (
        r["scenario"] in ("rtmp", "http-flv", "ws-flv") and r["count"] >= meta.get("paced_from", 10**9))

def reached(target, proto):
    rs = [r for r in runs if r["target"] == target and r["scenario"] == proto]
    if not rs:
        return "–"
    if all(r["status"] == "n/a" for r in rs):
        return "n/a"
    best, fell = 0, None
    for n in counts:
        r = find(target, proto, n)
        if r and keeps_up(r["rep"]):
            if fell is None:
                best = n
        elif fell is None:
            fell = n
    s = f"{best}" if fell is None else f"{best} (behind at {fell})"
    return f"≥{s}" if fell is None and best == max(counts) else s

def na_reason(target, scenario):
    r = next((r for r in runs if r["target"] == target and r["scenario"] == scenario), None)
    if r and r["status"] == "n/a":
        return "n/a: " + r.get("reason", "")[:80]
    if r and r["status"] == "fail":
        return "failed: " + r.get("reason", "")[:80]
    return None

def cell_cpu(target, proto, n):
    r = find(target, proto, n)
    if not r:
        return "–"
    if r["status"] != "ok":
        return "n/a" if r["status"] == "n/a" else "failed"
    v = cpu_gib(r["rep"])
    return fmt(v) + ("†" if tool_bound(r["rep"]) else "")

def ok_cpu(target, scenario, n):
    r = find(target, scenario, n)
    return cpu_gib(r["rep"]) if r and r["status"] == "ok" else None

def flv_ratios(target, n):
    """HTTP-FLV and WS-FLV CPU s/GiB over RTMP's at the same count, for Rill's modes; ✓ when
    both are within 10 % of RTMP's."""
    if not target.startswith("rill-"):
        return "–"
    base = ok_cpu(target, "rtmp", n)
    xs = [ok_cpu(target, s, n) for s in ("http-flv", "ws-flv")]
    if not base or all(x is None for x in xs):
        return "–"
    rs = [x / base if x is not None else None for x in xs]
    cell = " / ".join(fmt(r) for r in rs)
    if all(r is not None for r in rs):
        cell += " ✓" if all(abs(r - 1) <= 0.10 for r in rs) else " ✗"
    return cell

def x_floor(target, n):
    r = find(target, "http-flv", n)
    if not r or r["status"] != "ok":
        return "–"
    mine = cpu_gib(r["rep"])
    xs = []
    for f in ("floor-frame", "floor-batch100"):
        fr = find(f, "http-flv", n)
        fv = cpu_gib(fr["rep"]) if fr and fr["status"] == "ok" else None
        xs.append(f"{mine / fv:.1f}" if mine and fv else "–")
    return " / ".join(xs)

def p99(target, proto, n):
    r = find(target, proto, n)
    if not r or r["status"] != "ok":
        return "–"
    return fmt_p99(r["rep"])

def startup_idle(target):
    rs = [r for r in runs if r["target"] == target and r.get("startup_ms") is not None]
    if not rs:
        return "–", "–"
    st = sorted(r["startup_ms"] for r in rs)
    idle = sorted(r["idle_kib"] for r in rs)
    return f"{st[len(st) // 2]}", f"{idle[len(idle) // 2] / 1024:.1f}"

def per_viewer(target):
    for proto in ("rtmp", "http-flv"):
        r = find(target, proto, ref_n)
        if r and r["status"] == "ok" and r["rep"].get("server"):
            rep = r["rep"]
            n = rep["viewers"]["connected"]
            if n:
                # The measured process only (nginx: the worker), against its own idle RSS.
                idle = r.get("idle_measured_kib", r["idle_kib"])
                kib = (rep["server"]["peak_rss_kib"] - idle) / n
                return f"{kib:.0f}" + (" (flv)" if proto == "http-flv" else "")
    return "–"

def ingest_cell(target):
    r = find(target, "ingest")
    if not r:
        return "–"
    if r["status"] != "ok":
        return na_reason(target, "ingest")
    rep = r["rep"]
    p, v = rep.get("publishers") or {}, rep["viewers"]
    ok = "ok" if keeps_up(rep) else "BEHIND"
    cpu = (rep.get("server") or {}).get("cpu_percent")
    return (f"{ok}: {p.get('publishing', 0)}/{p.get('requested', 0)} pub, "
            f"{v['connected'] - v['dropped']} view, p99 {fmt_p99(rep, '.0f')} ms, "
            f"{fmt(cpu, '.0f')} % CPU")

def slow_cell(target):
    r = find(target, "slow")
    if not r:
        return "–"
    if r["status"] != "ok":
        return na_reason(target, "slow")
    rep = r["rep"]
    base = find(target, "rtmp", 100)
    b99 = fmt_p99(base["rep"]) if base and base["status"] == "ok" else "–"
    stall = r.get("stall") or {}
    if not isinstance(stall, dict):
        stall = {"outcome": "error", "error": str(stall)}
    # Peak RSS against the same server's run without the stalled viewer, and the growth over the
    # last 8 s of the stall (the drain starts 2 s before its end): a server whose queue per viewer
    # is bounded has stopped growing by then, given a long enough stall.
    rss = []
    try:
        for line in open(r["rss_file"]):
            t, k = line.split()
            rss.append((int(t), int(k)))
    except Exception:
        pass
    end = r["stall_end_ms"] - 2000
    a = [k for t, k in rss if t <= end - 8000]
    b = [k for t, k in rss if t <= end]
    grow = (b[-1] - a[-1]) / 1024 if a and b else None
    peak = max(k for _, k in rss) / 1024 if rss else None
    base_peak = None
    if base and base["status"] == "ok" and base["rep"].get("server"):
        base_peak = base["rep"]["server"]["peak_rss_kib"] / 1024
    healthy = "ok" if keeps_up(rep) else "BEHIND"
    outcome = stall.get("outcome") or "?"
    if stall.get("error"):
        outcome = "stall client " + stall["error"][:60]
    return (f"{healthy}: p99 {b99}→{fmt_p99(rep)} ms, "
            f"peak RSS {fmt(peak, '.0f')} MiB (alone {fmt(base_peak, '.0f')}), "
            f"{fmt(grow, '+.1f')} MiB in the stall's last 8 s, stalled viewer {outcome}, "
            f"{stall.get('drained_bytes', 0) / 2**20:.1f} MiB queued")

head = ["server", "start-up ms", "idle RSS MiB", f"KiB/viewer @{ref_n}",
        "RTMP viewers kept up", "HTTP-FLV viewers kept up",
        f"CPU s/GiB RTMP @{ref_n}", f"CPU s/GiB FLV @{ref_n}", f"CPU s/GiB WS-FLV @{ref_n}",
        f"FLV / WS-FLV CPU ÷ RTMP @{ref_n} (Rill)",
        f"x floor FLV @{ref_n} (frame / batch100)",
        "p99 ms RTMP @100", f"p99 ms RTMP @{ref_n}", f"p99 ms FLV @{ref_n}",
        f"{meta['ingest_publishers']} publishers × 500 kbit/s", "slow consumer among 100"]
rows = []
for t in targets:
    su, idle = startup_idle(t)
    rows.append([NAMES[t], su, idle, per_viewer(t), reached(t, "rtmp"), reached(t, "http-flv"),
                 cell_cpu(t, "rtmp", ref_n), cell_cpu(t, "http-flv", ref_n), cell_cpu(t, "ws-flv", ref_n),
                 flv_ratios(t, ref_n), x_floor(t, ref_n),
                 p99(t, "rtmp", 100), p99(t, "rtmp", ref_n), p99(t, "http-flv", ref_n),
                 ingest_cell(t), slow_cell(t)])
if ref_n == 100:  # the two RTMP p99 columns would be the same
    drop = head.index(f"p99 ms RTMP @{ref_n}", head.index("p99 ms RTMP @100") + 1)
    head.pop(drop)
    for row in rows:
        row.pop(drop)

def table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)

detail_head = ["server", "scenario", "N", "connected", "dropped", "Mbit/s per viewer min/p50",
               "aggregate Mbit/s", "server CPU %", "CPU s/GiB", "peak RSS MiB", "p50 / p99 ms",
               "first frame p50 / p95 ms", "tool CPU %", "kept up"]
def scenario_label(r):
    sc = r["scenario"]
    main_sc = sc in ("rtmp", "http-flv", "ws-flv") and r["status"] != "n/a"
    return sc + " (paced)" if main_sc and is_paced(r) else sc

detail = []
for r in runs:
    rep = r.get("rep")
    if r["status"] == "n/a" or not rep:
        detail.append([NAMES.get(r["target"], r["target"]), scenario_label(r), r["count"],
                       (r["status"] + ": " + r.get("reason", ""))[:100]] + [""] * 10)
        continue
    v, srv = rep["viewers"], rep.get("server") or {}
    per, tt = rep.get("per_viewer_mbps") or {}, rep.get("ttff_ms") or {}
    l50, l99, both = latency(rep)
    detail.append([NAMES.get(r["target"], r["target"]), scenario_label(r), r["count"],
                   f"{v['connected']}/{v['requested']}", v["dropped"],
                   f"{fmt(per.get('min'))} / {fmt(per.get('p50'))}", fmt(rep.get("aggregate_mbps"), ".0f"),
                   fmt(srv.get("cpu_percent"), ".0f"), fmt(cpu_gib(rep)),
                   fmt(srv["peak_rss_kib"] / 1024 if srv else None, ".1f"),
                   f"{fmt(l50, '.1f')} / {fmt(l99, '.1f')}" + ("" if l99 is None or both else "ᵛ"),
                   f"{fmt(tt.get('p50'), '.1f')} / {fmt(tt.get('p95'), '.1f')}",
                   fmt((rep.get("tool") or {}).get("cpu_percent"), ".0f"),
                   "yes" if keeps_up(rep) else "NO"])

# The pacing sensitivity table (scenario 4): only the targets it ran for.
paced_targets = [t for t in targets if find(t, "rtmp-paced", ref_n)]
paced_head = ["server", f"CPU s/GiB RTMP @{ref_n} unpaced", f"CPU s/GiB RTMP @{ref_n} paced",
              "p99 ms (all frames) unpaced / paced"]
paced_rows = []
for t in paced_targets:
    base = find(t, "rtmp", ref_n)
    if base and is_paced(base):  # an older run, or --paced-from at or below ref_n
        unpaced_cpu, unpaced_p99 = "– (that run was paced)", "–"
    else:
        unpaced_cpu, unpaced_p99 = cell_cpu(t, "rtmp", ref_n), p99(t, "rtmp", ref_n)
    pr = find(t, "rtmp-paced", ref_n)
    paced_cpu = cell_cpu(t, "rtmp-paced", ref_n)
    if pr["status"] != "ok":
        paced_cpu = na_reason(t, "rtmp-paced") or paced_cpu
    paced_rows.append([NAMES[t], unpaced_cpu, paced_cpu, f"{unpaced_p99} / {p99(t, 'rtmp-paced', ref_n)}"])
if paced_rows:
    paced_text = f"""### Pacing sensitivity: {ref_n} RTMP viewers reading as data arrives vs paced

{table(paced_head, paced_rows)}

Paced = all but {pacing['precise_viewers']} viewers read every {pacing['read_interval_ms']} ms (the latency comes from
the {pacing['precise_viewers']} that read at once). Pacing changes what is measured: while a viewer does not
read, the kernel's delayed ACKs plus Nagle's algorithm (nginx-rtmp leaves it on) merge a server's
many small writes into fewer segments, which makes such a server look far cheaper than with viewers
that read as data arrives, as players do; other servers can move the other way. Hence the main
table is unpaced up to {ref_n} viewers."""
else:
    paced_text = ""

main = [r for r in runs if r["scenario"] in ("rtmp", "http-flv", "ws-flv") and r["status"] != "n/a"]
PROTO_NAMES = {"rtmp": "RTMP", "http-flv": "HTTP-FLV", "ws-flv": "WS-FLV"}
by_n = {}
for r in main:
    if is_paced(r):
        by_n.setdefault(r["count"], set()).add(r["scenario"])
if by_n:
    # "500, 1000 and 2000 viewers (RTMP, HTTP-FLV)": counts grouped by the protocols paced at them.
    groups = {}
    for n, scs in sorted(by_n.items()):
        groups.setdefault(tuple(p for p in PROTO_NAMES if p in scs), []).append(n)
    def and_list(xs):
        xs = [str(x) for x in xs]
        return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]
    which = "; ".join(f"{and_list(ns)} viewers ({', '.join(PROTO_NAMES[p] for p in ps)})"
                      for ps, ns in groups.items())
    pace_note = (f"Paced runs: {which}: all but {pacing['precise_viewers']} precise viewers read "
                 f"every {pacing['read_interval_ms']} ms (whole stream; only the precise ones give latency), "
                 f"to keep the tool's CPU down; in every other run each viewer reads as data arrives, "
                 f"as players do. Pacing moves some servers' CPU figures" +
                 (" (see the pacing table)." if paced_text else "."))
else:
    pace_note = "No run of the main table was paced: every viewer reads as data arrives, as players do."

notes = f"""Notes: one machine, {meta['cores']} cores, everything on 127.0.0.1; load generator = rill-bench
(one thread) on the same cores as the server. Rill {meta['rill_commit']} release build, tokio multi-thread
runtime (one worker per core); NMS 2.x/4.x are one Node.js process each (one JS thread) and nginx
runs worker_processes 1, so their CPU figures are per single event loop. nginx-rtmp has no GOP cache
(viewers start at the next keyframe) and no HTTP-FLV. Viewer counts {counts}, window {meta['duration_s']} s
after a {meta['warmup_s']} s warm-up, ramp {meta['ramp_per_s']}/s, a fresh server for every run.
{pace_note}
"Kept up": every viewer connected and none dropped, each got ≥ 90 % of the stream's bit rate over the
window and p99 latency < 500 ms. Latency = publisher send → viewer receive of the same frame (the
server-added delay on loopback), over audio and video frames together, so a server that holds audio
back shows it; ᵛ = video frames only (a report from a rill-bench that did not yet measure audio).
CPU s/GiB = server CPU seconds per GiB delivered to viewers (lower is better); FLV / WS-FLV CPU ÷ RTMP = Rill's HTTP-FLV and WS-FLV figures over its RTMP one at the
same count, ✓ when both are within 10 % of RTMP (the bar), ✗ when not; WS-FLV runs at {ref_n} viewers
only, for Rill and NMS (nginx-rtmp and the floor have none); x floor = the FLV figure over the
floor's at the same count; † = rill-bench itself used ≥ 95 % of a core, so the figure is bounded by the tool. KiB/viewer = (peak RSS − idle RSS) / viewers.
Slow consumer: p99 of 100 healthy RTMP viewers alone → with one viewer that stops reading (4 KiB
receive buffer) for most of {meta['slow_window_s']} s; peak RSS with it and without it (the same
server's 100-viewer RTMP run); RSS growth over the last 8 s of the stall (≈ 0 once a bounded queue is
full); "queued" = what the server and the kernel still had for it when it resumed reading."""

# One paragraph each, wrapped at 100 columns.
notes = textwrap.fill(" ".join(notes.split()), 100, break_on_hyphens=False)
paced_text = re.sub(r"(?s)(\n\n)(Paced = .*)$",
                    lambda m: m[1] + textwrap.fill(" ".join(m[2].split()), 100, break_on_hyphens=False), paced_text)

summary = table(head, rows)
details = table(detail_head, detail)
text = f"## Rill vs peers ({'quick' if meta['quick'] else 'full'} run)\n\n{summary}\n\n{notes}\n\n"
if paced_text:
    text += paced_text + "\n\n"
text += f"### Every run\n\n{details}\n"
open(os.path.join(out, "table.md"), "w").write(text)
print(text)
PY
}

# --- go --------------------------------------------------------------------------------------------
if [[ -n $TABLE_ONLY ]]; then
    print_table "$TABLE_ONLY"
    exit
fi
log "results in $OUT"
log "building rill and rill-bench (release)"
if ! cargo build --release -q -p rill -p rill-bench >>"$LOG" 2>&1; then
    log "cargo build --release -p rill -p rill-bench failed (see $LOG)"
    exit 1
fi
BENCH=$ROOT/target/release/rill-bench

FLV_MAIN=$ROOT/target/bench/compare-720p-2500k.flv
FLV_INGEST=$ROOT/target/bench/compare-360p-500k.flv
if [[ ! -s $FLV_MAIN ]]; then
    "$BENCH" make-flv --out "$FLV_MAIN" --seconds 20 --size 1280x720 --kbps 2500 >>"$LOG" 2>&1 ||
        { log "make-flv failed (ffmpeg with libx264 needed)"; exit 1; }
fi
if [[ ! -s $FLV_INGEST ]]; then
    # 372 kbit/s of video + 128 kbit/s of AAC = ~500 kbit/s.
    "$BENCH" make-flv --out "$FLV_INGEST" --seconds 20 --size 640x360 --kbps 372 >>"$LOG" 2>&1 ||
        { log "make-flv failed (ffmpeg with libx264 needed)"; exit 1; }
fi

if want nginx; then install_nginx || log "nginx: $NGINX_REASON"; fi
if want nms2 || want nms4; then install_nms; fi
[[ -n $NMS2_REASON ]] && log "nms2: $NMS2_REASON"
[[ -n $NMS4_REASON ]] && log "nms4: $NMS4_REASON"
write_nms_scripts
write_stall_py

NGINX_VERSION=$(nginx -v 2>&1 | sed -n 's|.*nginx/||p')
RTMP_MOD_VERSION=$(dpkg-query -W -f='${Version}' libnginx-mod-rtmp 2>/dev/null)
python3 - "$OUT/meta.json" <<PY
import json, sys
json.dump({
    "quick": $QUICK, "counts": [${COUNTS[*]/%/,}], "ref_count": $REF_N, "duration_s": $DURATION, "warmup_s": $WARMUP,
    "ramp_per_s": $RAMP,
    # Fan-out runs with this many viewers or more were paced (all but "precise_viewers" read every
    # "read_interval_ms"); so were the "rtmp-paced" runs, whatever their count.
    "paced_from": $PACED_FROM, "pacing": {"read_interval_ms": $READ_INTERVAL_MS, "precise_viewers": $PRECISE_VIEWERS}, "slow_window_s": $SLOW_WINDOW, "ingest_publishers": $INGEST_PUBS,
    "nms4_version": "$NMS4_VERSION", "nginx_version": "$NGINX_VERSION",
    "rtmp_module_version": "$RTMP_MOD_VERSION", "rill_commit": "$(git rev-parse --short HEAD)",
    "cores": $(nproc), "flv_main": "$FLV_MAIN", "flv_ingest": "$FLV_INGEST",
}, open(sys.argv[1], "w"), indent=1)
PY

for target in "${ALL_TARGETS[@]}"; do
    want "$target" || continue
    for proto in rtmp http-flv; do
        for n in "${COUNTS[@]}"; do
            fanout "$target" "$proto" "$n"
        done
    done
    # WS-FLV at the reference count: Rill's modes and NMS (nginx and the floor: n/a, not run).
    fanout "$target" ws-flv "$REF_N"
    # The pacing sensitivity run, against scenario 1 at the same count; meaningless when that run
    # was paced too (--paced-from at or below the reference count).
    case "$target" in
    nginx | rill-coalesced | rill-frame)
        if ((REF_N < PACED_FROM)); then
            fanout "$target" rtmp-paced "$REF_N"
        else
            log "$target-rtmp-paced-$REF_N: not run (the $REF_N-viewer RTMP run is paced already: --paced-from $PACED_FROM)"
        fi
        ;;
    esac
    # Ingest and the slow consumer: Rill in its default mode (the modes only change how writes to
    # viewers are batched, which scenarios 1-3 compare), and every peer.
    case "$target" in
    rill-coalesced | nms2 | nms4 | nginx)
        ingest "$target"
        slow "$target"
        ;;
    esac
done

print_table "$OUT" || exit 1
ln -sfn "$OUT" "$ROOT/target/bench/results/compare-latest"
log "saved $OUT/table.md and the raw JSON reports"
