#!/usr/bin/env bash
# Install the RigShift node agent {{ version }} on this machine and run it as a systemd service.
#
#   curl -fsSL {{ server }}/agent/install.sh | sudo RIGSHIFT_NODE_TOKEN=rsn_... bash
#
# What it does: a virtualenv in /opt/rigshift-agent with the agent from this server (and NVML bindings),
# the token in /etc/rigshift-agent.env (readable by root only), a systemd unit that restarts the agent,
# then `rigshift-agent doctor`, which says what still needs fixing (driver, NVML, Docker with GPUs, ports).
set -euo pipefail

SERVER="${RIGSHIFT_SERVER:-{{ server }}}"
TOKEN="${RIGSHIFT_NODE_TOKEN:-}"
PREFIX="${RIGSHIFT_AGENT_PREFIX:-/opt/rigshift-agent}"
STATE_DIR="${RIGSHIFT_AGENT_STATE_DIR:-/var/lib/rigshift-agent}"
UNIT_DIR="${RIGSHIFT_SYSTEMD_DIR:-/etc/systemd/system}"
ENV_FILE="${RIGSHIFT_AGENT_ENV_FILE:-/etc/rigshift-agent.env}"
WHEEL="{{ wheel }}"

if [ -z "$TOKEN" ]; then
  echo "Give the node's agent token: curl -fsSL $SERVER/agent/install.sh | sudo RIGSHIFT_NODE_TOKEN=rsn_... bash" >&2
  exit 2
fi
case "$TOKEN" in rsn_*) ;; *) echo "That is not a node agent token (they start with rsn_)." >&2; exit 2 ;; esac
command -v python3 >/dev/null || { echo "python3 (3.11 or newer) is needed: apt-get install python3 python3-venv" >&2; exit 1; }
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "Python 3.11 or newer is needed; this is $(python3 --version)." >&2; exit 1; }

echo "==> virtualenv in $PREFIX"
python3 -m venv "$PREFIX"
"$PREFIX/bin/pip" install --quiet --upgrade pip
echo "==> rigshift-agent {{ version }} from $SERVER"
"$PREFIX/bin/pip" install --quiet "$SERVER/agent/$WHEEL" || "$PREFIX/bin/pip" install --quiet --no-deps "$SERVER/agent/$WHEEL"
"$PREFIX/bin/pip" install --quiet "nvidia-ml-py>=12" || echo "   (NVML bindings not installed: GPU telemetry falls back to nvidia-smi)"

echo "==> token in $ENV_FILE"
umask 077
mkdir -p "$STATE_DIR" "$(dirname "$ENV_FILE")"
printf 'RIGSHIFT_NODE_TOKEN=%s\nRIGSHIFT_SERVER=%s\n' "$TOKEN" "$SERVER" > "$ENV_FILE"
chmod 600 "$ENV_FILE"

echo "==> systemd unit rigshift-agent.service"
mkdir -p "$UNIT_DIR"
cat > "$UNIT_DIR/rigshift-agent.service" <<UNIT
[Unit]
Description=RigShift node agent
Wants=network-online.target docker.service
After=network-online.target docker.service

[Service]
EnvironmentFile=$ENV_FILE
ExecStart=$PREFIX/bin/rigshift-agent run --server \${RIGSHIFT_SERVER} --state-file $STATE_DIR/state.json
Restart=always
RestartSec=5
# The state file keeps usage and log positions across restarts: never delete it while leases run.
StateDirectory=rigshift-agent

[Install]
WantedBy=multi-user.target
UNIT

if command -v systemctl >/dev/null && [ -z "${RIGSHIFT_NO_SYSTEMCTL:-}" ]; then
  systemctl daemon-reload
  systemctl enable --now rigshift-agent.service
  echo "==> started; follow it with: journalctl -u rigshift-agent -f"
else
  echo "==> systemctl not available: start it with $PREFIX/bin/rigshift-agent run --server $SERVER"
fi

echo "==> checking this machine"
"$PREFIX/bin/rigshift-agent" doctor || true
