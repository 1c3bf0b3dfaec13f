# vdb_start.sh (virtual start): start the VDB unless it runs.
need_bin pg_ctl
lb_init
[[ -f $DATA/PG_VERSION ]] || die "the VDB's data at $DATA holds no PostgreSQL data directory"
if pg_running "$DATA"; then
  echo "the VDB on port $PORT is already running"
else
  vdb_port_check
  pg_start "$DATA" 600
  echo "started the VDB on port $PORT"
fi
