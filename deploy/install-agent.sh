#!/usr/bin/env bash
# Install the llmtunnel agent on a GPU box as a systemd service and pair it with the edge.
#
#   sudo ./install-agent.sh --edge https://acme.example.com --code ABCD-EFGH-JKMN-PQRS \
#        [--ca-file /path/ca.pem] [--source /path/to/checkout]   (default: this checkout)
#
# Idempotent: re-running upgrades the package; an already paired machine is not paired again.
set -euo pipefail

EDGE="" CODE="" CA_FILE="" SOURCE="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=/opt/llmtunnel CONFIG_DIR=/etc/llmtunnel USER_NAME=llmtunnel
UNIT_SRC="$(cd "$(dirname "$0")" && pwd)/systemd/llmtunnel-agent.service"

die() { echo "install-agent: $*" >&2; exit 1; }
usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --edge) EDGE=${2:?}; shift 2 ;;
        --code) CODE=${2:?}; shift 2 ;;
        --ca-file) CA_FILE=${2:?}; shift 2 ;;
        --source) SOURCE=${2:?}; shift 2 ;;
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root (it creates a user, /opt/llmtunnel and a systemd unit)"
[[ -n "$EDGE" ]] || die "--edge URL is required (the tenant URL, e.g. https://acme.example.com)"
command -v systemctl >/dev/null || die "systemd is required"
PYTHON=$(command -v python3 || true)
[[ -n "$PYTHON" ]] || die "python3 not found; install Python 3.11 or newer"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python 3.11 or newer is required (found $("$PYTHON" --version 2>&1))"

if ! id "$USER_NAME" >/dev/null 2>&1; then
    useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin "$USER_NAME"
fi

install -d -m 0755 "$PREFIX"
[[ -x "$PREFIX/venv/bin/python" ]] || "$PYTHON" -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
# The runtime dependencies at the versions the checkout's lock pins (not its test tools).
"$PREFIX/venv/bin/pip" install --quiet --upgrade -c "$SOURCE/requirements.lock" "$SOURCE"

install -d -m 0750 -o root -g "$USER_NAME" "$CONFIG_DIR"
CONFIG="$CONFIG_DIR/agent.json"
if [[ -f "$CONFIG" ]]; then
    echo "already paired ($CONFIG); to pair again, remove it and re-run with a new code"
else
    [[ -n "$CODE" ]] || die "--code is required for the first install (llmtunnel admin machine pair …)"
    pair_args=(agent pair "$CODE" --edge "$EDGE" --config "$CONFIG")
    if [[ -n "$CA_FILE" ]]; then
        install -m 0644 "$CA_FILE" "$CONFIG_DIR/edge-ca.pem"
        pair_args+=(--ca-file "$CONFIG_DIR/edge-ca.pem")
    fi
    "$PREFIX/venv/bin/llmtunnel" "${pair_args[@]}"
    chown "$USER_NAME:$USER_NAME" "$CONFIG"
    chmod 0600 "$CONFIG"
fi

install -m 0644 "$UNIT_SRC" /etc/systemd/system/llmtunnel-agent.service
systemctl daemon-reload
systemctl enable --now llmtunnel-agent.service
echo "llmtunnel agent installed. Check it with: systemctl status llmtunnel-agent"
echo "                                     and: sudo -u $USER_NAME $PREFIX/venv/bin/llmtunnel agent status --config $CONFIG"
