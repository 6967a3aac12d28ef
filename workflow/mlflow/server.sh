#!/usr/bin/env bash
# An MLflow tracking server with MLflow's authentication app (basic auth): every request needs a user
# name and password, so nobody else on the network can read, overwrite or delete runs.
#   MLFLOW_ADMIN_PASSWORD=...  workflow/mlflow/server.sh            # 127.0.0.1:5000 (reach it by SSH tunnel)
#   MLFLOW_ADMIN_PASSWORD=...  HOST=0.0.0.0 workflow/mlflow/server.sh  # for jobs on other nodes (docs/tracking.md)
# The store is ./mlflow.db and ./mlartifacts (STORE_DIR overrides ./); the users DB is
# .mlflow_auth/users.db there (with the server's secret key). The admin password only seeds the admin user when that DB is created.
set -euo pipefail
: "${MLFLOW_ADMIN_PASSWORD:?set MLFLOW_ADMIN_PASSWORD, the password of the admin user (12 characters or more)}"
if [ "${#MLFLOW_ADMIN_PASSWORD}" -lt 12 ]; then
  echo "error: MLFLOW_ADMIN_PASSWORD has ${#MLFLOW_ADMIN_PASSWORD} characters; use 12 or more" >&2
  exit 2
fi
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-5000}
STORE_DIR=$(cd "${STORE_DIR:-.}" && pwd)
AUTH_DIR="$STORE_DIR/.mlflow_auth"
mkdir -p "$AUTH_DIR"
chmod 700 "$AUTH_DIR"
umask 077
cat > "$AUTH_DIR/basic_auth.ini" <<INI
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = sqlite:///$AUTH_DIR/users.db
admin_username = ${MLFLOW_ADMIN_USERNAME:-admin}
admin_password = $MLFLOW_ADMIN_PASSWORD
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
export MLFLOW_AUTH_CONFIG_PATH="$AUTH_DIR/basic_auth.ini"
# the CSRF key of the auth app: made once, kept beside the users DB (the same for every restart)
[ -s "$AUTH_DIR/secret_key" ] || python -c "import secrets; print(secrets.token_hex(32))" > "$AUTH_DIR/secret_key"
MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$AUTH_DIR/secret_key")
export MLFLOW_FLASK_SERVER_SECRET_KEY
exec mlflow server --app-name basic-auth --host "$HOST" --port "$PORT" \
  --backend-store-uri "sqlite:///$STORE_DIR/mlflow.db" --artifacts-destination "$STORE_DIR/mlartifacts"
