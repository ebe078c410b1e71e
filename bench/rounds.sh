#!/usr/bin/env bash
# Medians of repeated runs: the 1000-viewer scenarios of bench/compare.sh that issue 8's bars are
# judged on, run ROUNDS times, interleaved (every scenario once per round, so slow drift of this
# shared machine hits all of them alike), each on a freshly started server. Prints every run's
# figures and, per scenario, the median CPU s/GiB and p99; then the bars' ratios from the medians.
#
#   bench/rounds.sh [ROUNDS] [VIEWERS]      (defaults 3 and 1000; ~18 s per run, 13 runs a round)
#
# Needs what bench/compare.sh installs (run it once first): Node-Media-Server 2.7.4 under
# target/bench/nms2 with its start script target/bench/compare/nms2.js, and nginx with Debian's
# libnginx-mod-rtmp. A peer that is missing is left out. Viewers read as data arrives; latency is
# the kernel's receive time minus the publisher's send time. Loopback only; only processes this
# script starts are stopped, by PID.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${1:-3}
VIEWERS=${2:-1000}
if ! [[ $ROUNDS =~ ^[0-9]+$ ]] || ((ROUNDS < 1 || ROUNDS > 20)); then
    echo "rounds.sh: ROUNDS must be 1..20" >&2
    exit 2
fi
if ! [[ $VIEWERS =~ ^[0-9]+$ ]] || ((VIEWERS < 1 || VIEWERS > 5000)); then
    echo "rounds.sh: VIEWERS must be 1..5000" >&2
    exit 2
fi
FLV=$ROOT/target/bench/compare-720p-2500k.flv
NMS2_DIR=$ROOT/target/bench/nms2/node_modules/node-media-server
NMS2_JS=$ROOT/target/bench/compare/nms2.js
RTMP_SO=/usr/lib/nginx/modules/ngx_rtmp_module.so
OUT=$ROOT/target/bench/results/rounds-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
cargo build --release -q -p rill -p rill-bench || exit 1
[[ -f $FLV ]] || target/release/rill-bench make-flv --out "$FLV" --seconds 20 --size 1280x720 --kbps 2500 || exit 1

SCENARIOS=("floor-frame http-flv" "floor-batch100 http-flv" "frame rtmp" "frame http-flv" "frame ws-flv"
    "coalesced rtmp" "coalesced http-flv" "coalesced ws-flv"
    "merged rtmp" "merged http-flv" "merged ws-flv")
[[ -f $NMS2_JS && -d $NMS2_DIR ]] && SCENARIOS=("nms2 rtmp" "${SCENARIOS[@]}")
[[ -f $RTMP_SO ]] && command -v nginx >/dev/null && SCENARIOS=("nginx rtmp" "${SCENARIOS[@]}")

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

SPID=""
cleanup() { [[ -n $SPID ]] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null; }
trap cleanup EXIT

# run TARGET PROTOCOL ROUND: one run on a fresh server; its JSON goes to $OUT.
run() {
    local target=$1 proto=$2 round=$3 rtmp http dir mpid
    rtmp=$(free_port)
    http=$(free_port)
    dir=$OUT/$target-$proto-$round
    mkdir -p "$dir"
    case $target in
    nginx)
        cat >"$dir/nginx.conf" <<NGINX
load_module $RTMP_SO;
worker_processes 1;
worker_rlimit_nofile 20000;
error_log $dir/error.log warn;
events { worker_connections 10240; }
rtmp { server { listen 127.0.0.1:$rtmp; chunk_size 60000;
    application live { live on; wait_key on; } } }
NGINX
        nginx -p "$dir" -c "$dir/nginx.conf" -g "daemon off; pid $dir/nginx.pid;" >"$dir/server.log" 2>&1 &
        SPID=$!
        sleep 1
        mpid=$(pgrep -P "$SPID" | head -1)
        ;;
    nms2)
        mkdir -p "$dir/media"
        node "$NMS2_JS" "$NMS2_DIR" "$rtmp" "$http" "$dir/media" >"$dir/server.log" 2>&1 &
        SPID=$!
        sleep 1.5
        mpid=$SPID
        ;;
    floor-*)
        target/release/rill-bench floor --port "$http" --rtmp-port "$rtmp" --mode "${target#floor-}" >"$dir/server.log" 2>&1 &
        SPID=$!
        sleep 0.5
        mpid=$SPID
        ;;
    *)
        printf '[rtmp]\nport = %s\nmax_connections_per_ip = 10000\n[http]\nport = %s\nmax_connections_per_ip = 10000\n[delivery]\nwrite = "%s"\n' "$rtmp" "$http" "$target" >"$dir/rill.toml"
        target/release/rill -c "$dir/rill.toml" --log-level warn >"$dir/server.log" 2>&1 &
        SPID=$!
        sleep 0.5
        mpid=$SPID
        ;;
    esac
    timeout 150 target/release/rill-bench fanout --viewers "$VIEWERS" --protocol "$proto" \
        --url "rtmp://127.0.0.1:$rtmp/live/bench" --http-port "$http" --file "$FLV" \
        --ramp-per-sec 250 --warmup 3 --duration 10 --server-pid "${mpid:-$SPID}" --json \
        >"$dir.json" 2>"$dir.err"
    cleanup
    SPID=""
}

for ((r = 1; r <= ROUNDS; r++)); do
    for s in "${SCENARIOS[@]}"; do
        read -r target proto <<<"$s"
        echo "[$(date +%T)] round $r: $target $proto" >&2
        run "$target" "$proto" "$r"
    done
done

python3 - "$OUT" <<'PY'
import glob, json, os, re, statistics as st, sys
out = sys.argv[1]
runs = {}
for f in sorted(glob.glob(os.path.join(out, "*.json"))):
    m = re.match(r"(.+)-(rtmp|http-flv|ws-flv)-(\d+)\.json$", os.path.basename(f))
    try:
        d = json.load(open(f))
    except (OSError, ValueError):
        print(f"{os.path.basename(f)}: no report (see the .err file)")
        continue
    gib = d["server_cpu_s_per_gbit"] * 8 * 1.073741824
    p99 = (d.get("all_frames_latency_ms") or d["latency_ms"])["p99"]
    runs.setdefault((m[1], m[2]), []).append((gib, p99, d["viewers"]["dropped"]))
print("| server | protocol | CPU s/GiB (each run) | median | p99 ms median | dropped |")
print("|---|---|---|---|---|---|")
med = {}
for (t, p), v in runs.items():
    med[(t, p)] = st.median(x[0] for x in v)
    print(f"| {t} | {p} | {' '.join('%.2f' % x[0] for x in v)} | {med[(t, p)]:.2f} | "
          f"{st.median(x[1] for x in v):.1f} | {sum(x[2] for x in v)} |")
def ratio(a, b):
    return f"{med[a] / med[b]:.2f}" if a in med and b in med else "n/a"
print()
print("frame / floor (HTTP-FLV):", ratio(("frame", "http-flv"), ("floor-frame", "http-flv")))
print("coalesced / nginx-rtmp (RTMP):", ratio(("coalesced", "rtmp"), ("nginx", "rtmp")))
print("merged / NMS 2.7.4 (RTMP):", ratio(("merged", "rtmp"), ("nms2", "rtmp")))
# The physics under the merged bar: a server that does nothing but one write per viewer every 100 ms.
print("merged / floor batch100 (HTTP-FLV):", ratio(("merged", "http-flv"), ("floor-batch100", "http-flv")))
print("NMS 2.7.4 (RTMP) / floor batch100 (HTTP-FLV):", ratio(("nms2", "rtmp"), ("floor-batch100", "http-flv")))
for m in ("frame", "coalesced", "merged"):
    print(f"{m}: HTTP-FLV / RTMP {ratio((m, 'http-flv'), (m, 'rtmp'))}, "
          f"WS-FLV / RTMP {ratio((m, 'ws-flv'), (m, 'rtmp'))}")
print(f"\nreports: {out}")
PY
