#!/usr/bin/env bash
# authtap against the direct path, nginx and mitmdump, interleaved, on 127.0.0.1 only; writes
# bench/RESULTS.md. Installs what it needs (nginx, wrk, GNU time, valgrind from Debian; oha from
# crates.io; mitmproxy from PyPI into target/bench/venv), each only when missing.
#
#   bench/run.sh                 full run, about 9 minutes once everything is installed
#   bench/run.sh --quick         about 2 minutes: 1 round of 2 s loads, small replay, no profile;
#                                writes target/bench/RESULTS-quick.md (run files in
#                                target/bench/run-quick), not bench/RESULTS.md
#   bench/run.sh --smoke         CI's check that the harness still works (about 1 minute once
#                                built): 1 s loads, no mitmdump, no profile, a 2,000-record replay;
#                                writes target/bench/RESULTS-smoke.md and checks authtap is in it
#   options: --loadgen oha|wrk   (default oha; --quick and --smoke use wrk unless oha is installed)
#            --authtap PATH      use this authtap binary instead of building target/release/authtap
#            --no-mitmdump       leave mitmdump out
#            --rounds N --seconds S   override the round count and seconds per load run
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
say() { echo "bench: $*" >&2; }

QUICK=0
SMOKE=0
LOADGEN=""
AUTHTAP=""
MITM=1
ROUNDS=""
SECONDS_PER_RUN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --smoke) SMOKE=1; QUICK=1; MITM=0 ;;
    --loadgen) LOADGEN="$2"; shift ;;
    --authtap) AUTHTAP="$2"; shift ;;
    --no-mitmdump) MITM=0 ;;
    --rounds) ROUNDS="$2"; shift ;;
    --seconds) SECONDS_PER_RUN="$2"; shift ;;
    -h|--help) sed -n "2,18p" "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
export PATH="$HOME/.cargo/bin:$PATH"
if [ -z "$LOADGEN" ]; then
  if [ "$QUICK" = 1 ] && ! command -v oha >/dev/null; then LOADGEN=wrk; else LOADGEN=oha; fi
fi

# 1. Debian packages.
need=()
[ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/bin/time ] || need+=(time)
# valgrind only profiles, which the smoke leaves out.
[ "$SMOKE" = 1 ] || command -v valgrind >/dev/null || need+=(valgrind)
command -v lscpu >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  # The package starts a system nginx on port 80; the benchmark runs its own, so stop that one.
  if [[ " ${need[*]} " == *" nginx "* ]]; then
    (service nginx stop || nginx -s quit) >/dev/null 2>&1 || true
  fi
else
  say "nginx, wrk and GNU time are installed"
fi

# 2. The load generator.
if [ "$LOADGEN" = oha ] && ! command -v oha >/dev/null; then
  say "building oha (cargo install --locked oha: several minutes, once)"
  if ! cargo install --locked --quiet oha; then
    say "oha did not build; using wrk"
    LOADGEN=wrk
  fi
fi
LOADGEN_BIN=$(command -v "$LOADGEN")
say "load generator: $LOADGEN_BIN ($("$LOADGEN_BIN" --version 2>&1 | head -1))"

# 3. mitmproxy in a venv of its own.
MITMDUMP=""
if [ "$MITM" = 1 ]; then
  VENV=$ROOT/target/bench/venv
  if [ ! -x "$VENV/bin/mitmdump" ]; then
    say "installing mitmproxy into $VENV (pip)"
    mkdir -p "$ROOT/target/bench"
    python3 -m venv "$VENV" || { apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$VENV"; }
    "$VENV/bin/pip" install --quiet --disable-pip-version-check mitmproxy
  fi
  MITMDUMP=$VENV/bin/mitmdump
  say "mitmdump: $("$MITMDUMP" --version 2>/dev/null | head -1)"
fi

# 4. Build authtap and the harness.
if [ -z "$AUTHTAP" ]; then
  say "building authtap (cargo build --release -p authtap)"
  cargo build --release --quiet -p authtap
  AUTHTAP=$ROOT/target/release/authtap
fi
say "building the harness (bench/, its own workspace)"
(cd bench && cargo build --release --quiet)

# 5. Run.
if [ "$SMOKE" = 1 ]; then
  OUT=$ROOT/target/bench/RESULTS-smoke.md
  rm -f "$OUT"
  "$ROOT/target/bench/release/authtap-bench" run --rounds 1 --seconds 1 --sse-streams 2 \
    --replay-records 2000 --replay-runs 1 --profile-seconds 0 \
    --out "$OUT" --command-line "bench/run.sh --smoke" --work "$ROOT/target/bench/run-smoke" \
    --authtap "$AUTHTAP" --nginx /usr/sbin/nginx --mitmdump "" \
    --loadgen "$LOADGEN" --loadgen-bin "$LOADGEN_BIN" --repo "$ROOT"
  # Every scenario's table has an authtap row, and the replay ran: the harness measured authtap.
  rows=$(grep -cE '^\| authtap \| [0-9]' "$OUT" || true)
  grep -q '^| 2,000 ' "$OUT" && [ "$rows" -ge 5 ] ||
    { say "the smoke run's $OUT lacks authtap's rows ($rows) or the replay"; exit 1; }
  say "smoke run passed: $OUT"
  exit 0
elif [ "$QUICK" = 1 ]; then
  set -- --rounds "${ROUNDS:-1}" --seconds "${SECONDS_PER_RUN:-2}" --sse-streams 8 \
    --replay-records 100000 --replay-runs 1 --profile-seconds 0 \
    --out "$ROOT/target/bench/RESULTS-quick.md" --command-line "bench/run.sh --quick" \
    --work "$ROOT/target/bench/run-quick"
else
  set -- --rounds "${ROUNDS:-3}" --seconds "${SECONDS_PER_RUN:-5}" --sse-streams 16 \
    --replay-records 1000000 --replay-runs 2 --profile-seconds 20 \
    --out "$ROOT/bench/RESULTS.md" --command-line "bench/run.sh" \
    --work "$ROOT/target/bench/run"
fi
exec "$ROOT/target/bench/release/authtap-bench" run "$@" \
  --authtap "$AUTHTAP" --nginx /usr/sbin/nginx --mitmdump "$MITMDUMP" \
  --loadgen "$LOADGEN" --loadgen-bin "$LOADGEN_BIN" --repo "$ROOT"
