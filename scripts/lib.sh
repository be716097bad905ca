# shellcheck shell=bash
# Shared by the scripts in scripts/ and benches/compare. Source it, don't run it.
#
# Everything here is idempotent and checks before it installs, so a warm
# machine pays nothing and a fresh Debian machine (as root) gets what it needs.

SLUICE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SLUICE_ROOT

# One target dir outside the work tree, shared by every checkout on the machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
# No incremental state: a checkout builds once per test run, and incremental caches
# (keyed by the checkout's path) only filled the disk with copies nothing reused.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Python tooling for the tests (pytest suite, and moto_server for the Rust S3 tests).
# confluent-kafka's extras bring the Schema Registry client (httpx, authlib, cachetools,
# attrs) and its serializers (fastavro and avro for Avro, jsonschema for JSON Schema),
# which broker/tests/python/test_schema_registry.py uses against the broker's registry.
# pyiceberg (with pyarrow, and SQLAlchemy for its SQL catalog on sqlite) and DuckDB are
# Iceberg readers that nobody here wrote, for the tests that read the broker's tables
# (broker/tests/python/test_iceberg_readers.py proves them against Iceberg's REST catalog).
# cryptography makes the certificates of the TLS tests (broker/tests/python/tls_certs.py).
SLUICE_VENV="${SLUICE_VENV:-$HOME/.cache/sluice/venv}"
SLUICE_PY_PACKAGES=(pytest pytest-timeout "confluent-kafka[avro,json,schemaregistry]>=2.4" "moto[server]"
	"pyiceberg[sql-sqlite,pyarrow]>=0.9" duckdb cryptography)
# What the venv check imports: a venv made before a package was added gets it installed.
SLUICE_PY_IMPORTS="import pytest, pytest_timeout, confluent_kafka, moto.server, fastavro, avro, jsonschema, cachetools, authlib, cryptography"
SLUICE_PY_IMPORTS+="; from confluent_kafka.schema_registry import SchemaRegistryClient"
SLUICE_PY_IMPORTS+="; from confluent_kafka.schema_registry.avro import AvroSerializer"
SLUICE_PY_IMPORTS+="; from confluent_kafka.schema_registry.json_schema import JSONSerializer"
SLUICE_PY_IMPORTS+="; import pyiceberg, duckdb, pyarrow, sqlalchemy; from pyiceberg.catalog.sql import SqlCatalog"

# Debian packages the Rust build needs: a C toolchain and cmake for the -sys
# crates (aws-lc-sys, zstd-sys, lz4-sys, libz-sys, and librdkafka, which
# rdkafka-sys builds from source for the Rust tests), pkg-config and headers.
SLUICE_BUILD_DEBS=(build-essential cmake pkg-config zlib1g-dev libzstd-dev libssl-dev)

sluice_log() { echo "[sluice] $*" >&2; }

sluice_die() {
	sluice_log "error: $*"
	exit 1
}

# deb_installed PKG: true when the Debian package is installed.
sluice_deb_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# ensure_debs PKG...: apt-get install the packages that are missing (only those).
sluice_ensure_debs() {
	if ! command -v dpkg-query >/dev/null 2>&1; then
		sluice_log "not a Debian system: make sure these are installed: $*"
		return 0
	fi
	local missing=() pkg
	for pkg in "$@"; do
		sluice_deb_installed "$pkg" || missing+=("$pkg")
	done
	((${#missing[@]} == 0)) && return 0

	local sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || sluice_die "need root (or sudo) to install: ${missing[*]}"
		sudo=(sudo)
	fi
	sluice_log "installing Debian packages: ${missing[*]}"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Rust comes with the machine (rustup); make sure cargo is on PATH.
sluice_ensure_cargo() {
	if ! command -v cargo >/dev/null 2>&1 && [[ -f "$HOME/.cargo/env" ]]; then
		# shellcheck disable=SC1091
		source "$HOME/.cargo/env"
	fi
	command -v cargo >/dev/null 2>&1 || sluice_die "cargo not found: install Rust with rustup first"
}

sluice_ensure_build_deps() {
	sluice_ensure_cargo
	sluice_ensure_debs "${SLUICE_BUILD_DEBS[@]}"
}

# Create/refresh the venv and put its bin/ first on PATH.
sluice_ensure_venv() {
	if ! command -v python3 >/dev/null 2>&1; then
		sluice_ensure_debs python3 python3-venv
	fi
	if ! "$SLUICE_VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
		if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
			sluice_ensure_debs python3-venv
		fi
		sluice_log "creating Python venv in $SLUICE_VENV"
		rm -rf "$SLUICE_VENV"
		mkdir -p "$(dirname "$SLUICE_VENV")"
		python3 -m venv "$SLUICE_VENV"
	fi
	if ! "$SLUICE_VENV/bin/python" -c "$SLUICE_PY_IMPORTS" >/dev/null 2>&1 ||
		[[ ! -x "$SLUICE_VENV/bin/moto_server" ]]; then
		sluice_log "installing Python packages: ${SLUICE_PY_PACKAGES[*]}"
		"$SLUICE_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
		"$SLUICE_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
			"${SLUICE_PY_PACKAGES[@]}"
	fi
	export VIRTUAL_ENV="$SLUICE_VENV"
	export PATH="$SLUICE_VENV/bin:$PATH"
}

# Python packages of the benchmark runner (benches/compare): plots.
SLUICE_BENCH_PY_PACKAGES=(matplotlib)

# The venv plus the benchmark runner's packages (call sluice_ensure_venv first).
sluice_ensure_bench_py() {
	if ! "$SLUICE_VENV/bin/python" -c 'import matplotlib' >/dev/null 2>&1; then
		sluice_log "installing Python packages: ${SLUICE_BENCH_PY_PACKAGES[*]}"
		"$SLUICE_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
			"${SLUICE_BENCH_PY_PACKAGES[@]}"
	fi
}
