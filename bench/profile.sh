#!/usr/bin/env bash
# Profiles the tidings peer (examples/bench_server, release build) under the fan-out scenario
# with valgrind's callgrind (instruction counts: repeatable, whatever else the machine does;
# `perf` has no hardware counters on this VM). Only the emit phase is measured: collection is
# switched on once every connection has subscribed, and off when the deliveries are in.
#
#   bench/profile.sh [CONNS] [EMITS]      # default 1000 subscribers, 30 emits
#
# Writes target/bench/profile/callgrind.out and prints the top functions (inclusive and self).
# A second mode, `bench/profile.sh --dhat [CONNS]`, runs valgrind's DHAT while CONNS idle
# subscribed connections are held, to see which allocations make up the memory per connection.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=callgrind
if [ "${1:-}" = "--dhat" ]; then
  mode=dhat
  shift
fi
conns=${1:-1000}
emits=${2:-30}
out=target/bench/profile
mkdir -p "$out"
port=$((20000 + RANDOM % 10000))

cargo build --release -p tidings --example bench_server
cargo build --release -p tidings-bench --bins

server=target/release/examples/bench_server
if [ "$mode" = callgrind ]; then
  RUST_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/callgrind.out" \
    "$server" --port "$port" --workers 1 >"$out/server.log" 2>&1 &
else
  RUST_LOG=warn valgrind --tool=dhat --dhat-out-file="$out/dhat.json" \
    "$server" --port "$port" --workers 1 >"$out/server.log" 2>&1 &
fi
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT

for _ in $(seq 600); do
  (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
  sleep 0.1
done

if [ "$mode" = callgrind ]; then
  target/release/loadgen --scenario fanout --conns "$conns" --emits "$emits" --port "$port" \
    --concurrency 32 --hold-ms 3000 --straggler-ms 20000 >"$out/loadgen.json" 2>"$out/loadgen.log" &
  loadgen=$!
  for _ in $(seq 1200); do
    grep -q "emitting in" "$out/loadgen.log" 2>/dev/null && break
    sleep 0.5
  done
  rm -f "$out"/callgrind.out.*
  callgrind_control -i on "$pid" >/dev/null 2>&1
  for _ in $(seq 1200); do
    grep -q "loadgen: done" "$out/loadgen.log" 2>/dev/null && break
    sleep 0.5
  done
  # vgdb hands the command over when the server next wakes: wake it with a bare connection,
  # so that collection stops before the load generator closes its connections.
  callgrind_control -i off "$pid" >/dev/null 2>&1 &
  control=$!
  sleep 0.5
  (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null || true
  wait "$control"
  wait "$loadgen"
  cat "$out/loadgen.json"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  # Collected only while the emits were delivered; written when the server exits.
  dump="$out/callgrind.out"
  callgrind_annotate --inclusive=yes "$dump" >"$out/inclusive.txt" 2>/dev/null || true
  callgrind_annotate "$dump" >"$out/self.txt" 2>/dev/null || true
  echo "== self (top)"
  sed -n 1,45p "$out/self.txt"
else
  target/release/loadgen --scenario connect --conns "$conns" --port "$port" --concurrency 32 \
    --pid "$pid" >"$out/loadgen.json" 2>"$out/loadgen.log"
  cat "$out/loadgen.json"
  kill -INT "$pid"
  wait "$pid" 2>/dev/null || true
  echo "DHAT output: $out/dhat.json (open with valgrind's dh_view.html)"
fi
