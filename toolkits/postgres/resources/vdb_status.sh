# vdb_status.sh (virtual status): "ACTIVE" when the VDB runs and answers,
# "INACTIVE" when it is stopped or its data is missing, "UNKNOWN" when it
# runs but does not answer.
need_bin pg_ctl psql
LB="$HOME/.lunabox-postgres"
status=INACTIVE
if [[ -f $DATA/PG_VERSION ]] && pg_running "$DATA"; then
  if out=$(sql "$PORT" "SELECT 1" 2>&1); then
    status=ACTIVE
  else
    echo "the VDB on port $PORT does not answer: $out" >&2
    status=UNKNOWN
  fi
fi
printf '"%s"\n' "$status" > "$DLPX_OUTPUT_FILE"
