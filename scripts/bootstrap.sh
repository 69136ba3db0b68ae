#!/usr/bin/env bash
# Install what `make demo` and `make test` need on a Debian machine that has only python3 and make.
#
#   scripts/bootstrap.sh [python|demo|test]     (default: test)
#
#   python  uv and .venv with the locked dependencies (uv is installed from PyPI into .tools/uv when
#           none is found)
#   demo    python + JDK 17+, Maven and the PostgreSQL server binaries (the local stack)
#   test    demo + Chromium, CJK fonts and LibreOffice Calc (report and spreadsheet tests)
#
# System packages are installed with apt-get when run as root. When not root and something is
# missing, one line names the command to run and the script exits 1. Everything is checked before
# anything is installed; when all is present a run takes about a second and changes nothing: .venv is
# synced again only when uv.lock or pyproject.toml changed (stamp file .venv/.bootstrap-stamp).
#
# Environment: UV (a uv command to use instead of looking for one), UV_VERSION (the version installed
# when no uv is found; the Docker image pins the same one).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PROFILE="${1:-test}"
case "$PROFILE" in
  python | demo | test) ;;
  *)
    echo "usage: scripts/bootstrap.sh [python|demo|test]" >&2
    exit 64
    ;;
esac

UV_VERSION="${UV_VERSION:-0.13.9}"
UV_DIR="$ROOT/.tools/uv"
STAMP="$ROOT/.venv/.bootstrap-stamp"
export DEBIAN_FRONTEND=noninteractive

step() { printf '==> bootstrap: %s\n' "$*"; }
fail() {
  printf 'bootstrap: %s\n' "$*" >&2
  exit 1
}

# --- checks (cheap: no network, no package database) ----------------------------------------------

java_ok() {
  local java="" major
  if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then
    java="$JAVA_HOME/bin/java"
  else
    java="$(command -v java 2>/dev/null)" || return 1
  fi
  major="$("$java" -version 2>&1 | sed -nE '1s/.*version "(1\.)?([0-9]+).*/\2/p')"
  [ -n "$major" ] && [ "$major" -ge 17 ]
}

postgres_ok() {
  local pg_ctl dir
  if pg_ctl="$(command -v pg_ctl 2>/dev/null)"; then
    dir="$(dirname "$(readlink -f "$pg_ctl")")"
    if [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then return 0; fi
  fi
  for dir in /usr/lib/postgresql/*/bin; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then return 0; fi
  done
  return 1
}

maven_ok() { command -v mvn >/dev/null 2>&1; }
make_ok() { command -v make >/dev/null 2>&1; }
promtool_ok() { command -v promtool >/dev/null 2>&1; }
chromium_ok() { command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; }
cjk_fonts_ok() { command -v fc-list >/dev/null 2>&1 && fc-list :lang=zh 2>/dev/null | grep -q .; }
calc_ok() { command -v soffice >/dev/null 2>&1 || command -v localc >/dev/null 2>&1; }
pip_ok() { python3 -m pip --version >/dev/null 2>&1; }

# The uv command as an array: $UV, .tools/uv, PATH, ~/.local/bin, then `python3 -m uv`.
UV_CMD=()
find_uv() {
  if [ -n "${UV:-}" ]; then
    read -r -a UV_CMD <<<"$UV"
  elif [ -x "$UV_DIR/bin/uv" ]; then
    UV_CMD=("$UV_DIR/bin/uv")
  elif command -v uv >/dev/null 2>&1 && uv --version >/dev/null 2>&1; then
    UV_CMD=("$(command -v uv)")
  elif [ -x "$HOME/.local/bin/uv" ]; then
    UV_CMD=("$HOME/.local/bin/uv")
  elif python3 -m uv --version >/dev/null 2>&1; then
    UV_CMD=(python3 -m uv)
  else
    return 1
  fi
}

command -v python3 >/dev/null 2>&1 || fail "python3 is missing; run: sudo apt-get install -y python3"

missing=()  # Debian packages
present=()  # what was found, for the one-line summary
need() {    # need PACKAGE LABEL CHECK...
  local package="$1" label="$2"
  shift 2
  if "$@"; then present+=("$label"); else missing+=("$package"); fi
}

need make "make" make_ok
if [ "$PROFILE" != python ]; then
  need openjdk-17-jdk-headless "JDK 17+" java_ok
  need maven "Maven" maven_ok
  need postgresql "PostgreSQL" postgres_ok
fi
if [ "$PROFILE" = test ]; then
  need chromium "Chromium" chromium_ok
  need fonts-noto-cjk "CJK fonts" cjk_fonts_ok
  need libreoffice-calc-nogui "LibreOffice Calc" calc_ok
  # promtool checks and unit-tests docker/prometheus/rules.yml (tests/unit/test_prometheus_rules.py).
  need prometheus "promtool" promtool_ok
fi
if find_uv; then
  present+=("uv")
else
  # pip installs uv; Debian's python3 comes without it.
  need python3-pip "pip" pip_ok
fi

# --- system packages -------------------------------------------------------------------------------

if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    fail "missing ${missing[*]}; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
  fi
  command -v apt-get >/dev/null 2>&1 ||
    fail "missing ${missing[*]} (Debian package names) and no apt-get here; install them, then run this again"
  step "apt-get install ${missing[*]}"
  log="$(mktemp)"
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    rm -f "$log"
    fail "apt-get install ${missing[*]} failed (the lines above are its last output)"
  fi
  rm -f "$log"
fi

# --- uv --------------------------------------------------------------------------------------------

if ((${#UV_CMD[@]} == 0)); then
  step "uv $UV_VERSION into .tools/uv (pip --target: no root, no change to the system Python)"
  rm -rf "$UV_DIR"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --no-warn-script-location --target "$UV_DIR" "uv==$UV_VERSION"
  UV_CMD=("$UV_DIR/bin/uv")
  "${UV_CMD[@]}" --version >/dev/null || fail "uv did not install into $UV_DIR"
fi

# --- .venv -----------------------------------------------------------------------------------------

key="$(cat uv.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ -x .venv/bin/python ] && [ -x .venv/bin/pytest ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$key" ]; then
  present+=(".venv")
else
  step ".venv: ${UV_CMD[*]} sync --extra dev --frozen"
  "${UV_CMD[@]}" sync --extra dev --frozen
  printf '%s\n' "$key" >"$STAMP"
fi

if ((${#present[@]})); then
  summary="$(printf '%s, ' "${present[@]}")"
  step "$PROFILE: present: ${summary%, }"
fi
