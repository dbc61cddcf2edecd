#!/usr/bin/env bash
# Installs what the project needs; safe to run again, and quick when there is nothing to do.
#   1. System packages (apt): a PostgreSQL server >= 13, the matching PostGIS 3, gdal-bin,
#      haproxy (the balancer of several API instances).
#   2. A Python >= 3.12 virtualenv in .venv with the project installed: pip install -e '.[test]'.
#   3. The browser libraries of the web pages and the dashboard in node_modules: npm ci
#      (nodejs + npm from apt if missing).
#
# Usage: scripts/setup.sh [--quiet]      (--quiet: print only what is being installed)
# Environment:
#   SDI_PYTHON=/path/to/python3.12   the interpreter for .venv (else one is searched for)
#   SDI_NO_PYENV=1, SDI_NO_UV=1      don't look in pyenv / uv (to try the "no Python" path)
#   SDI_SKIP_APT=1                   don't check or install system packages
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUIET=0
MIN_PG=13
VENV=.venv
STAMP=$VENV/.installed

say() { printf '==> %s\n' "$*"; }
info() { if [[ $QUIET == 0 ]]; then say "$@"; fi; }
die() {
  printf 'setup: %s\n' "$1" >&2
  shift
  local line
  for line in "$@"; do printf '  %s\n' "$line" >&2; done
  exit 1
}

for arg in "$@"; do
  [[ ${BASH_SOURCE[0]} == "$0" ]] || break
  case $arg in
    -q | --quiet) QUIET=1 ;;
    -h | --help)
      sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "unknown option: $arg (try --help)" ;;
  esac
done

# ---------------------------------------------------------------------------------------------
# 1. System packages

# Highest installed PostgreSQL server major version >= MIN_PG (Debian layout), or nothing.
pg_major() {
  local best=0 dir major
  for dir in /usr/lib/postgresql/*/bin; do
    [[ -x $dir/pg_ctl && -x $dir/initdb && -x $dir/postgres ]] || continue
    major=${dir#/usr/lib/postgresql/}
    major=${major%/bin}
    [[ $major =~ ^[0-9]+$ ]] || continue
    if ((major >= MIN_PG && major > best)); then best=$major; fi
  done
  if ((best > 0)); then printf '%s' "$best"; fi
}

# The server's bin directory when it isn't in the Debian layout (pg_config --bindir).
pg_config_bindir() {
  local dir
  command -v pg_config >/dev/null 2>&1 || return 1
  dir=$(pg_config --bindir 2>/dev/null) || return 1
  [[ -x $dir/pg_ctl && -x $dir/initdb && -x $dir/postgres ]] || return 1
  printf '%s' "$dir"
}

deb_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

APT_UPDATED=0
APT=()
apt_prefix() {
  if ((EUID == 0)); then
    APT=(env DEBIAN_FRONTEND=noninteractive)
  elif command -v sudo >/dev/null 2>&1; then
    APT=(sudo env DEBIAN_FRONTEND=noninteractive)
  else
    die "these system packages are missing: $*" \
      "Run as root, then ./dev setup again:" \
      "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $*"
  fi
}

apt_install() {
  local log
  apt_prefix "$@"
  log=$(mktemp "${TMPDIR:-/tmp}/sdi-apt.XXXXXX")
  if ((APT_UPDATED == 0)); then
    if ! "${APT[@]}" apt-get update -q >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      die "apt-get update failed (output above, full log: $log)"
    fi
    APT_UPDATED=1
  fi
  if ! "${APT[@]}" apt-get install -y -q --no-install-recommends "$@" >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "apt-get install $* failed (output above, full log: $log)"
  fi
  rm -f "$log"
}

system_packages() {
  local major bindir missing=()
  if [[ ${SDI_SKIP_APT:-} == 1 ]]; then
    info "skipping system packages (SDI_SKIP_APT=1)"
    return
  fi
  local have_apt=0
  if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
    have_apt=1
  fi

  major=$(pg_major)
  bindir=""
  if [[ -z $major ]]; then bindir=$(pg_config_bindir || true); fi
  if [[ -z $major && -z $bindir ]]; then missing+=(postgresql); fi
  if ! command -v ogr2ogr >/dev/null 2>&1; then missing+=(gdal-bin); fi
  # The load balancer of `sdi serve --instances N` (README, "Past one machine").
  if ! command -v haproxy >/dev/null 2>&1 && [[ ! -x /usr/sbin/haproxy ]]; then
    missing+=(haproxy)
  fi

  if ((${#missing[@]})); then
    if ((have_apt == 0)); then
      die "missing: ${missing[*]}, and this system has no apt-get." \
        "Install a PostgreSQL server >= $MIN_PG with PostGIS 3, and GDAL's ogr2ogr," \
        "or set SDI_DATABASE_URL to an existing PostGIS; then run ./dev setup again."
    fi
    apt_prefix "${missing[@]}"
    say "installing ${missing[*]} (apt)"
    apt_install "${missing[@]}"
    major=$(pg_major)
    if [[ -z $major ]]; then bindir=$(pg_config_bindir || true); fi
    if [[ -z $major && -z $bindir ]]; then
      die "the postgresql package gave no server >= $MIN_PG in /usr/lib/postgresql/*/bin."
    fi
  fi

  if [[ -n $major ]]; then
    if [[ ! -f /usr/share/postgresql/$major/extension/postgis.control ]]; then
      if ((have_apt == 0)); then
        die "PostGIS is not installed for PostgreSQL $major; install PostGIS 3 for it."
      fi
      apt_prefix "postgresql-$major-postgis-3"
      say "installing PostGIS for PostgreSQL $major (apt)"
      apt_install "postgresql-$major-postgis-3"
    fi
    info "PostgreSQL $major with PostGIS, gdal-bin: installed"
  else
    info "PostgreSQL in $bindir (PostGIS is checked when the database is created), gdal-bin"
  fi
}

# ---------------------------------------------------------------------------------------------
# 2. Python >= 3.12 and the virtualenv

py_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }
py_version() { "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])'; }
# The real interpreter behind a launcher or shim (pyenv's shims exec the real binary).
py_real() { "$1" -c 'import sys; print(sys.executable)'; }

find_python() {
  local cand path root dir
  if [[ -n ${SDI_PYTHON:-} ]]; then
    py_ok "$SDI_PYTHON" && py_real "$SDI_PYTHON"
    return
  fi
  for cand in python3.14 python3.13 python3.12 python3; do
    path=$(command -v "$cand" 2>/dev/null) || continue
    if py_ok "$path"; then
      py_real "$path"
      return 0
    fi
  done
  if [[ ${SDI_NO_PYENV:-} != 1 ]]; then
    local roots=() versions=()
    if command -v pyenv >/dev/null 2>&1; then
      root=$(pyenv root 2>/dev/null || true)
      if [[ -n $root ]]; then roots+=("$root"); fi
    fi
    roots+=("${HOME:-/nonexistent}/.pyenv" /root/.pyenv)
    for root in "${roots[@]}"; do
      for dir in "$root"/versions/3.1[2-9]*; do
        [[ ${dir##*/} =~ ^3\.1[2-9]\.[0-9]+$ && -x $dir/bin/python3 ]] || continue
        versions+=("${dir##*/} $dir/bin/python3")
      done
    done
    if ((${#versions[@]})); then
      while read -r _ path; do
        if py_ok "$path"; then
          py_real "$path"
          return 0
        fi
      done < <(printf '%s\n' "${versions[@]}" | sort -rV)
    fi
  fi
  if [[ ${SDI_NO_UV:-} != 1 ]] && command -v uv >/dev/null 2>&1; then
    path=$(uv python find '>=3.12' 2>/dev/null || true)
    if [[ -n $path ]] && py_ok "$path"; then
      py_real "$path"
      return 0
    fi
  fi
  return 1
}

no_python() {
  local tried="python3.14/3.13/3.12/python3 on PATH"
  if [[ ${SDI_NO_PYENV:-} != 1 ]]; then tried+=", pyenv (\$(pyenv root), ~/.pyenv, /root/.pyenv)"; fi
  if [[ ${SDI_NO_UV:-} != 1 ]]; then tried+=", uv python find"; fi
  die "no Python >= 3.12 found (tried: $tried)." \
    "Install one, then run ./dev setup again:" \
    "" \
    "Ubuntu 24.04 (python3 is 3.12):" \
    "  sudo apt-get install -y python3.12 python3.12-venv" \
    "Debian 12 (python3 is 3.11), with uv (from PyPI, via pipx):" \
    "  sudo apt-get install -y pipx && pipx install uv && ~/.local/bin/uv python install 3.12" \
    "  export PATH=\"\$HOME/.local/bin:\$PATH\"" \
    "Debian 12, with pyenv (builds Python from source):" \
    "  sudo apt-get install -y build-essential libssl-dev zlib1g-dev libbz2-dev \\" \
    "    libreadline-dev libsqlite3-dev libffi-dev liblzma-dev tk-dev git curl" \
    "  curl -fsSL https://pyenv.run | bash && ~/.pyenv/bin/pyenv install 3.12" \
    "Or name an interpreter: SDI_PYTHON=/path/to/python3.12 ./dev setup"
}

python_env() {
  local py version out hash
  if [[ -e $VENV ]] && ! { [[ -x $VENV/bin/python ]] && py_ok "$VENV/bin/python"; }; then
    say "recreating $VENV (its Python is missing or older than 3.12)"
    rm -rf "$VENV"
  fi
  if [[ ! -e $VENV ]]; then
    if ! py=$(find_python); then
      if [[ -n ${SDI_PYTHON:-} ]]; then
        die "SDI_PYTHON=$SDI_PYTHON is not a working Python >= 3.12."
      fi
      no_python
    fi
    version=$(py_version "$py")
    say "Python $version at $py: creating $VENV"
    if ! out=$("$py" -m venv "$VENV" 2>&1); then
      rm -rf "$VENV"
      die "'$py -m venv' does not work:" "$out" "" \
        "On Debian/Ubuntu install the venv module: sudo apt-get install -y python${version%.*}-venv"
    fi
  fi
  version=$(py_version "$VENV/bin/python")

  hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [[ -f $STAMP && $(<"$STAMP") == "$hash" ]]; then
    info "Python $version in $VENV: dependencies up to date"
    return
  fi
  say "installing Python dependencies into $VENV (pip install -e '.[test]'; minutes the first time)"
  rm -f "$STAMP"
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  local log=$VENV/pip.log
  if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
    "$VENV/bin/python" -m pip install -e '.[test]'; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "pip install failed (output above, full log: $log)"
  fi
  printf '%s\n' "$hash" >"$STAMP"
  say "Python $version in $VENV: ready"
}

# Real clients the tests drive (QGIS through Debian's python3-qgis); only for ./dev test.
test_clients() {
  if [[ ${SDI_SKIP_APT:-} == 1 ]] || /usr/bin/python3 -c 'import qgis.core' >/dev/null 2>&1; then
    return
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    info "no apt-get: the QGIS client tests will be skipped"
    return
  fi
  apt_prefix python3-qgis
  say "installing QGIS for the client tests (python3-qgis, apt; a few minutes the first time)"
  apt_install python3-qgis
}

# The browser libraries of the service's pages and the dashboard (package.json /
# package-lock.json: Bootstrap, Leaflet, Swagger UI, OpenLayers; served by the service from
# node_modules, never from a CDN): npm ci when the lock file changed since the last install.
NODE_STAMP=node_modules/.sdi-installed
node_env() {
  local hash log
  [[ -f package-lock.json ]] || return 0
  hash=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [[ -f $NODE_STAMP && $(<"$NODE_STAMP") == "$hash" ]]; then
    info "browser libraries of the pages and dashboard (npm): up to date"
    return
  fi
  if ! command -v npm >/dev/null 2>&1; then
    if [[ ${SDI_SKIP_APT:-} == 1 ]] || ! command -v apt-get >/dev/null 2>&1; then
      die "npm is missing: install Node.js with npm, then run ./dev setup again" \
        "(the pages' and the dashboard's browser libraries are installed with npm ci)"
    fi
    apt_prefix nodejs npm
    say "installing nodejs npm (apt)"
    apt_install nodejs npm
  fi
  say "installing the pages' and dashboard's browser libraries (npm ci --omit=dev)"
  log=$(mktemp "${TMPDIR:-/tmp}/sdi-npm.XXXXXX")
  if ! npm ci --omit=dev --no-audit --no-fund >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "npm ci failed (output above, full log: $log)"
  fi
  rm -f "$log"
  printf '%s\n' "$hash" >"$NODE_STAMP"
}

# Headless Chromium for the browser tests of the dashboard and the pages (Debian's package; no
# downloaded builds), with a font that has every Vietnamese letter (DejaVu); only for ./dev test.
test_browser() {
  local missing=()
  if [[ ${SDI_SKIP_APT:-} == 1 ]]; then return; fi
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  # the pages' Vietnamese text (pages.css names DejaVu Sans first after Noto Sans)
  if command -v dpkg-query >/dev/null 2>&1 && ! deb_installed fonts-dejavu-core; then
    missing+=(fonts-dejavu-core)
  fi
  ((${#missing[@]})) || return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    info "no apt-get: the browser tests (dashboard, pages) will be skipped"
    return
  fi
  apt_prefix "${missing[@]}"
  say "installing ${missing[*]} for the browser tests (apt)"
  apt_install "${missing[@]}"
}

main() {
  system_packages
  if [[ ${SDI_TEST_CLIENTS:-} == 1 ]]; then
    test_clients
    test_browser
  fi
  python_env
  node_env
}

# Sourcing the file (to try one function) runs nothing.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then main; fi
