#!/usr/bin/env bash
# `make run`, after the local stack is up: start in the background whatever exists of the
# pipeline (worker, projector, API), ingest samples/, and print where to look.
#   infra/local/run.sh        start (processes already running are left alone)
#   infra/local/run.sh stop   stop exactly the processes this script started (by pid)
set -euo pipefail
cd "$(dirname "$0")/../.."

piaoxi=.venv/bin/piaoxi
home="$($piaoxi settings get home 2>/dev/null || echo "${PIAOXI_HOME:-.piaoxi}")"
run_dir="$home/run"; log_dir="$home/logs"
mkdir -p "$run_dir" "$log_dir"

# name | command (words) | what it is
processes=(
  "worker|worker|stream worker (extract/OCR, clean, entities)"
  "projector|project|projectors (Postgres read models, search index)"
  "api|api|query API and web page"
)

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

has_command() {  # the command exists (one that exits at once is reported after start-up)
  $piaoxi "$@" --help >/dev/null 2>&1
}

stop() {
  for entry in "${processes[@]}"; do
    IFS='|' read -r name _ _ <<<"$entry"
    pid_file="$run_dir/app-$name.pid"
    if alive "$pid_file"; then
      pid="$(cat "$pid_file")"
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      echo "stopped $name (pid $pid)"
    fi
    rm -f "$pid_file"
  done
}

if [[ "${1:-}" == "stop" ]]; then
  stop
  exit 0
fi

started=()
for entry in "${processes[@]}"; do
  IFS='|' read -r name cmd what <<<"$entry"
  pid_file="$run_dir/app-$name.pid"
  if alive "$pid_file"; then
    echo "$name: already running (pid $(cat "$pid_file"))"
    continue
  fi
  # shellcheck disable=SC2086
  if ! has_command $cmd; then
    echo "$name: \`piaoxi $cmd\` does not exist yet - skipped"
    continue
  fi
  # shellcheck disable=SC2086
  setsid $piaoxi $cmd >>"$log_dir/$name.log" 2>&1 < /dev/null &
  echo $! >"$pid_file"
  started+=("$name|$what")
done

# A process that dies in its first seconds (bad config, missing service) is reported here.
failed=0
if [[ ${#started[@]} -gt 0 ]]; then
  sleep "${PIAOXI_RUN_SETTLE_S:-8}"
  for entry in "${started[@]}"; do
    IFS='|' read -r name what <<<"$entry"
    pid_file="$run_dir/app-$name.pid"
    if alive "$pid_file"; then
      echo "$name: started $what (pid $(cat "$pid_file"), log $log_dir/$name.log)"
    else
      echo "$name: FAILED to start, see $log_dir/$name.log" >&2
      tail -n 5 "$log_dir/$name.log" >&2 || true
      rm -f "$pid_file"
      failed=1
    fi
  done
fi

if has_command upload; then
  samples=()
  for f in samples/*; do  # top-level files only: samples/truth/ holds the expected text
    if [[ -f "$f" && "$(basename "$f")" != README* && "$f" != *.md ]]; then samples+=("$f"); fi
  done
  if [[ ${#samples[@]} -gt 0 ]]; then
    echo "uploading ${#samples[@]} sample documents from samples/ (already stored ones are recognised)"
    $piaoxi upload --owner samples --visibility public --tag sample "${samples[@]}" \
      || echo "some uploads failed (see above)" >&2
  fi
else
  echo "upload: \`piaoxi upload\` does not exist yet - samples not ingested"
fi

api_url="http://$($piaoxi settings get api_host 2>/dev/null || echo 127.0.0.1):$($piaoxi settings get api_port 2>/dev/null || echo 8000)"
echo
echo "local stack:  .venv/bin/piaoxi stack status"
echo "API:          $api_url/         (OpenAPI: $api_url/docs)"
echo "search:       curl -sG '$api_url/search' --data-urlencode 'q=大學之道' | python3 -m json.tool"
echo "logs:         $log_dir/"
echo "stop:         make down"
exit "$failed"
