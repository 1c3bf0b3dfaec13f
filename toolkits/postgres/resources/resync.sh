# resync.sh (staged resync, on the staging host): a hard resync. Stop the
# staging standby if one runs on DATA, empty DATA, take a base backup of the
# primary into it (pg_basebackup, WAL streamed, fast checkpoint), make it a
# streaming standby on STAGING_PORT and start it; wait until it streams.
# Uses (besides lib.sh, staging_configure.sh): PRIMARY_VERSION (the source
# config's major version, checked against the installation's).
need_bin pg_ctl pg_basebackup psql postgres
lb_init
[[ -n $DATA && -d $DATA ]] || die "the staging storage $DATA is not a directory (is it mounted?)"
[[ -O $DATA ]] || die "the staging storage $DATA belongs to $(stat -c %U "$DATA"), not to $(id -un) who runs the standby; link with a staging user that owns it"
have=$("$PGBIN/postgres" --version) || die "$PGBIN/postgres does not run"
[[ $have =~ \(PostgreSQL\)\ ([0-9]+) ]] || die "cannot read the version of $PGBIN/postgres: $have"
if [[ -n ${PRIMARY_VERSION:-} && ${BASH_REMATCH[1]} != "$PRIMARY_VERSION" ]]; then
  die "the primary runs PostgreSQL $PRIMARY_VERSION but the repository $PGBIN is PostgreSQL ${BASH_REMATCH[1]}: a standby needs the same major version"
fi

pg_stop "$DATA"
port_free "$STAGING_PORT" || die "port $STAGING_PORT (stagingPort) is already in use on this host; pick a free one"
find "$DATA" -mindepth 1 -delete || die "cannot empty the staging storage $DATA"
chmod 700 "$DATA"

echo "pg_basebackup from $PRIMARY_HOST:$PRIMARY_PORT as $REPL_USER into $DATA"
"$PGBIN/pg_basebackup" -h "$PRIMARY_HOST" -p "$PRIMARY_PORT" -U "$REPL_USER" -w \
  -D "$DATA" -X stream -c fast -l "lunabox $GUID" ||
  die "pg_basebackup from $PRIMARY_HOST:$PRIMARY_PORT as $REPL_USER failed (see above): check the primary allows replication connections from this host for $REPL_USER in pg_hba.conf, and the replicationPassword"
rm -f "$DATA/lunabox_snapshot.json"

configure_standby
pg_start "$DATA"

# Streaming within a minute, or the fault says why.
for _ in $(seq 1 120); do
  state=$(sql "$STAGING_PORT" "SELECT status FROM pg_stat_wal_receiver") || die_with_log "cannot query the staging standby on port $STAGING_PORT"
  [[ $state == streaming ]] && { echo "staging standby streams from $PRIMARY_HOST:$PRIMARY_PORT on port $STAGING_PORT"; exit 0; }
  sleep 0.5
done
die_with_log "the staging standby on port $STAGING_PORT does not stream from $PRIMARY_HOST:$PRIMARY_PORT (wal receiver: ${state:-none})"
