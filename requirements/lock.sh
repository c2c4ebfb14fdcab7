#!/usr/bin/env bash
# The locked install behind `make venv` and `make lock` (the Makefile says how they are used).
#
#   requirements/lock.sh install VENV [auto|uv|pip]   install lock.txt + no-deps.txt, then the project (-e, --no-deps)
#   requirements/lock.sh compile [uv pip compile args] regenerate lock.txt and no-deps.txt (keeps pins unless --upgrade)
#
# uv is pinned (UV_VERSION) and bootstrapped from the package index into VENV/.uv, outside the environment itself
# (it is not one of VENV's installed packages); UV=/path/to/uv uses another one. uv does not read pip's
# configuration, so it is given pip's own sources (`pip config list`: find-links, index-url, extra-index-url):
# torch is locked as 2.13.0+cpu with the hash of the CPU wheel, which only those on-disk sources hold. Without them
# the install stops with an error; it never falls back to a CUDA torch from the index.
set -euo pipefail

UV_VERSION=0.13.9
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
LOCK=$here/lock.txt
NODEPS=$here/no-deps.txt
# the lock is for the machines the project runs on: CPython 3.11, x86_64 Linux (the CPU torch wheel's tags)
TARGET=(--python-version 3.11 --python-platform x86_64-manylinux_2_28)

say() { echo "lock.sh: $*" >&2; }

# uv arguments for pip's configured package sources, one per line; prints nothing when pip has no find-links.
pip_sources() {
  "$1" -m pip config list 2>/dev/null | "$1" -c '
import re, sys
scopes = {}
for line in sys.stdin:
    m = re.match(r"^([^.]*)\.([a-z-]+)=(.*)$", line.strip())
    if m:
        scope, key, val = m.groups()
        scopes.setdefault(key, {})[scope] = val.strip("\"'\''")
def get(key):  # pip: the environment overrides the install section, which overrides global
    s = scopes.get(key, {})
    for scope in (":env:", "install", "global"):
        if s.get(scope):
            return s[scope].split()
    return []
if get("find-links"):
    for v in get("find-links"):
        print("--find-links"); print(v)
    for v in get("index-url")[:1]:
        print("--index-url"); print(v)
    for v in get("extra-index-url"):
        print("--extra-index-url"); print(v)
'
}

# The `--find-links DIR` pairs among pip's sources (pip_sources' output as arguments), one word per line. uv
# resolves and installs with these beside the package index, not pip's local mirror indexes: a mirror may hold
# fewer wheels of a release (e.g. soundfile's platform-independent wheel without libsndfile), and uv records and
# installs from the index it resolved from, so the lock would miss the manylinux wheel that pip installs.
find_links_only() {
  while [ $# -ge 2 ]; do
    [ "$1" != --find-links ] || printf '%s\n%s\n' --find-links "$2"
    shift 2
  done
}

# Path of a uv binary: $UV, else the pinned version bootstrapped with PY's pip into DIR/bin/uv.
get_uv() {
  local py=$1 dir=$2
  if [ -n "${UV:-}" ]; then echo "$UV"; return; fi
  if [ ! -x "$dir/bin/uv" ] || [ "$("$dir/bin/uv" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    rm -rf "$dir"
    "$py" -m pip install -q --disable-pip-version-check --target "$dir" "uv==$UV_VERSION" >&2 || return 1
  fi
  echo "$dir/bin/uv"
}

# Every pin of the lock files is installed at its version, torch is the CPU build, and no CUDA runtime is present.
check_venv() {
  "$1" - "$LOCK" "$NODEPS" <<'EOF'
import re, sys
from importlib.metadata import distributions
installed = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version for d in distributions()}
bad = []
for path in sys.argv[1:]:
    for line in open(path):
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            name = re.sub(r"[-_.]+", "-", m[1]).lower()
            if installed.get(name) != m[2]:
                bad.append(f"{name}: locked {m[2]}, installed {installed.get(name)}")
if installed.get("torch", "").split("+")[-1] != "cpu":
    bad.append(f"torch {installed.get('torch')} is not the CPU build")
bad += [f"CUDA package {n} installed" for n in installed if n.startswith("nvidia-") or n == "triton"]
# the packages that carry a native library: a wheel without it (e.g. soundfile's platform-independent wheel, which
# has no libsndfile) has the right version and still fails at import
import importlib
for mod in ("soundfile", "torch", "ctranslate2", "pyarrow", "sentencepiece"):
    try:
        importlib.import_module(mod)
    except Exception as err:  # noqa: BLE001
        bad.append(f"{mod} does not import: {err}")
if bad:
    sys.exit("the venv does not match the lock:\n  " + "\n  ".join(bad))
EOF
}

install() {
  local venv=${1:?usage: lock.sh install VENV [auto|uv|pip]} installer=${2:-auto}
  local py=$venv/bin/python uv= srcs=()
  if [ "$installer" != pip ]; then
    mapfile -t srcs < <(pip_sources "$py")
    if [ ${#srcs[@]} = 0 ]; then
      [ "$installer" = uv ] && { say "INSTALLER=uv needs pip's find-links (where the CPU torch wheel lies)"; return 1; }
      say "pip's configuration has no find-links (where the CPU torch wheel lies): installing with pip"
      installer=pip
    elif ! uv=$(get_uv "$py" "$venv/.uv"); then
      say "uv $UV_VERSION could not be installed: installing with pip"
      [ "$installer" = uv ] && return 1
      installer=pip
    else
      installer=uv
    fi
  fi
  say "installing the lock into $venv with $installer"
  trap 'say "install failed. If torch==2.13.0+cpu was not found: it is the CPU wheel that pip'"'"'s find-links \
must hold (PIP_FIND_LINKS or find-links in pip.conf: a folder with torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl)"' ERR
  if [ "$installer" = uv ]; then
    # --index-strategy unsafe-best-match: look at every source for every package, as pip does
    local links=()
    mapfile -t links < <(find_links_only "${srcs[@]}")
    # --compile-bytecode: pip's default, uv's opt-in. Without .pyc files every job compiles what it imports
    # (transformers, torch, sympy, ...) from source wherever PYTHONDONTWRITEBYTECODE is set or site-packages is
    # read-only: about 9 s per model-loading job instead of 4 (README: Measured)
    "$uv" pip install -q --python "$py" --no-deps --require-hashes --index-strategy unsafe-best-match \
      --compile-bytecode "${links[@]}" -r "$LOCK" -r "$NODEPS"
    "$uv" pip install -q --python "$py" --no-deps --no-build-isolation -e "$root"
  else
    "$py" -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r "$LOCK" -r "$NODEPS"
    "$py" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$root"
  fi
  check_venv "$py"
}

compile() {
  local py=${PYTHON:-python3} uv srcs=()
  mapfile -t srcs < <(pip_sources "$py")
  [ ${#srcs[@]} != 0 ] || { say "pip's configuration has no find-links: the CPU torch wheel cannot be found"; return 1; }
  if [ -x "$root/.venv/.uv/bin/uv" ] && [ -z "${UV:-}" ]; then
    uv=$root/.venv/.uv/bin/uv
  else
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    uv=$(get_uv "$py" "$tmp/uv")
  fi
  cd "$root"
  local links=()
  mapfile -t links < <(find_links_only "${srcs[@]}")
  local common=("${TARGET[@]}" --index-strategy unsafe-best-match "${links[@]}" --generate-hashes -q
                --custom-compile-command "make lock")
  # the existing pins are kept (uv prefers what the output file holds); pass --upgrade to take the newest
  "$uv" pip compile pyproject.toml requirements/venv.in --extra dev "${common[@]}" -o requirements/lock.txt "$@"
  "$uv" pip compile requirements/no-deps.in --no-deps "${common[@]}" -o requirements/no-deps.txt "$@"
}

cmd=${1:-}; shift || true
case "$cmd" in
  install) install "$@" ;;
  compile) compile "$@" ;;
  *) echo "usage: $0 install VENV [auto|uv|pip] | compile [--upgrade ...]" >&2; exit 2 ;;
esac
