# staging_status.sh (staged status): "ACTIVE" while the staging standby
# runs and its WAL receiver streams from the primary, "INACTIVE" when it is
# stopped, its storage is missing or it does not stream, "UNKNOWN" when it
# runs but cannot be asked.
need_bin pg_ctl psql
LB="$HOME/.lunabox-postgres"
status=INACTIVE
if [[ -f $DATA/PG_VERSION ]] && pg_running "$DATA"; then
  if state=$(sql "$STAGING_PORT" "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'none')" 2>&1); then
    [[ $state == streaming ]] && status=ACTIVE
    echo "wal receiver: $state"
  else
    echo "cannot query the staging standby on port $STAGING_PORT: $state" >&2
    status=UNKNOWN
  fi
fi
printf '"%s"\n' "$status" > "$DLPX_OUTPUT_FILE"
