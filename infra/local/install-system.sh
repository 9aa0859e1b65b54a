#!/usr/bin/env bash
# Install the Debian packages piaoxi needs, when they are missing.
#
# As root: apt-get installs what is missing (apt-get update first). Without root: prints
# the exact command to run. PostgreSQL is installed only when no server answers at the
# PIAOXI_DATABASE_URL host/port (default 127.0.0.1:5432). Idempotent and quick when
# everything is there.
set -euo pipefail

packages=(
  tesseract-ocr tesseract-ocr-chi-tra tesseract-ocr-chi-tra-vert
  tesseract-ocr-chi-sim tesseract-ocr-chi-sim-vert   # OCR engine (cross-check to rapidocr)
  fonts-noto-cjk fonts-arphic-uming fonts-arphic-ukai # CJK fonts to render test pages
  unicode-data                                        # Unihan variant tables for cleaning
  chromium chromium-driver                            # browser test of the web page
  postgresql-client                                   # pg_dump/pg_restore for piaoxi backup
)

# The compose file check (tests/unit/test_compose.py) needs a compose CLI; the docker
# CLI here may come without its compose plugin, Debian's docker-compose does `config`.
if command -v docker >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
  packages+=(docker-compose)
fi

# The PostgreSQL server only when none answers (its client tools always: piaoxi backup and
# restore run pg_dump/pg_restore, whose major version must not be older than the server's).
db_url="${PIAOXI_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/piaoxi}"
hostport="${db_url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
db_host="${hostport%%:*}"; db_port="${hostport##*:}"
[[ "$db_port" == "$hostport" ]] && db_port=5432
if ! (exec 3<>"/dev/tcp/${db_host}/${db_port}") 2>/dev/null; then
  packages+=(postgresql)
fi

missing=()
for pkg in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "system packages: all present"
  exit 0
fi

command_line="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [[ "$(id -u)" -ne 0 ]]; then
  echo "system packages missing: ${missing[*]}" >&2
  echo "run as root:  sudo sh -c '$command_line'" >&2
  exit 0
fi

echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
