#!/usr/bin/env bash
# CPU cost of in-process HLS/DASH segmenting per stream: runs the release server twice on
# loopback with N publishers (ffmpeg -c copy of one FLV, so the publishers cost little), once
# without and once with HLS (TS) + LL-HLS (fMP4) + DASH tasks, and prints the server's CPU
# seconds per stream-minute for each run and the difference.
#
#   bench/segmenting-cpu.sh [STREAMS] [SECONDS] [FLV]
set -euo pipefail
cd "$(dirname "$0")/.."
streams="${1:-4}"
seconds="${2:-30}"
flv="${3:-target/bench/in.flv}"
mkdir -p target/bench
if [[ ! -f "$flv" ]]; then
    ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=30 \
        -f lavfi -i sine=frequency=440:sample_rate=48000 -t 30 -c:v libx264 -preset veryfast \
        -b:v 2500k -g 60 -pix_fmt yuv420p -c:a aac -b:a 128k -f flv "$flv"
fi
cargo build --release -q -p rill
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() {
    local label="$1" tasks="$2" rtmp http conf pid start end pubs=()
    rtmp=$(free_port); http=$(free_port)
    conf="$(mktemp -d)/rill.toml"
    cat >"$conf" <<TOML
[rtmp]
host = "127.0.0.1"
port = $rtmp
[http]
host = "127.0.0.1"
port = $http
mediaroot = "$(dirname "$conf")/media"
$tasks
TOML
    target/release/rill --config "$conf" --log-level warn &
    pid=$!
    sleep 0.5
    for i in $(seq 1 "$streams"); do
        for app in live ll; do
            ffmpeg -nostdin -loglevel error -re -stream_loop -1 -i "$flv" -c copy -f flv \
                "rtmp://127.0.0.1:$rtmp/$app/s$i" &
            pubs+=($!)
        done
    done
    sleep 5 # warm-up: first segments
    start=$(cpu_ticks "$pid")
    sleep "$seconds"
    end=$(cpu_ticks "$pid")
    kill "${pubs[@]}" 2>/dev/null || true
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local hz secs
    hz=$(getconf CLK_TCK)
    secs=$(python3 -c "print(($end - $start) / $hz)")
    python3 -c "s=$secs; n=$((streams * 2)); print(f'$label: {s:.2f} CPU s over ${seconds} s for {n} streams = {s / n / $seconds * 60:.3f} CPU s per stream-minute ({s / $seconds * 100:.1f} % of one core)')"
    echo "$secs" >"target/bench/seg-$label.txt"
}

run plain ""
run segmenting '
[[trans.tasks]]
app = "live"
hls = true
dash = true
segment_duration = 2.0
[[trans.tasks]]
app = "ll"
hls = true
format = "fmp4"
low_latency = true
part_duration = 0.5'
python3 - "$streams" "$seconds" <<'PY'
import sys
n = int(sys.argv[1]) * 2; t = int(sys.argv[2])
a = float(open("target/bench/seg-plain.txt").read()); b = float(open("target/bench/seg-segmenting.txt").read())
print(f"segmenting costs {(b - a) / n / t * 100:.3f} % of one core per stream ({(b - a) / n / t * 60:.3f} CPU s per stream-minute)")
PY
