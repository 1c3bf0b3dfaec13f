# staging_start.sh (startStaging and worker, on the staging host): start
# the staging standby on DATA unless it runs, with its settings rewritten
# first (the password file may be gone, the parameters may have changed).
# With WORKER=1 (the worker hook) nothing is said when all is well, and a
# data directory that holds no standby yet (before the first resync) is
# left alone.
need_bin pg_ctl psql
lb_init
if [[ ! -f $DATA/PG_VERSION ]]; then
  [[ ${WORKER:-} == 1 ]] && exit 0
  die "the staging storage $DATA holds no PostgreSQL data: \`lunabox sync --resync\` makes the staging standby"
fi
if pg_running "$DATA"; then
  [[ ${WORKER:-} == 1 ]] || echo "the staging standby on port $STAGING_PORT is already running"
  exit 0
fi
port_free "$STAGING_PORT" || die "port $STAGING_PORT (stagingPort) is already in use on this host; pick a free one"
configure_standby
pg_start "$DATA"
echo "started the staging standby on port $STAGING_PORT"
