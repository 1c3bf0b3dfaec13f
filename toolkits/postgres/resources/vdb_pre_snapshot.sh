# vdb_pre_snapshot.sh (virtual preSnapshot): a VDB is a primary, so a copy
# of its files is consistent only when it is shut down (a backup would need
# one session open across both hooks). Checkpoint, shut it down cleanly
# (postSnapshot starts it again) and record its checkpoint in
# DATA/lunabox_snapshot.json.
need_bin pg_ctl pg_controldata psql postgres
lb_init
meta="$DATA/lunabox_snapshot.json"
marker="$LB/$GUID.restart-after-snapshot"
rm -f "$meta" "$marker"
if pg_running "$DATA"; then
  sql "$PORT" "CHECKPOINT" >/dev/null || die_with_log "CHECKPOINT failed on the VDB on port $PORT"
  : > "$marker"
  pg_stop "$DATA"
fi
control=$(LC_ALL=C "$PGBIN/pg_controldata" "$DATA") || die "pg_controldata $DATA failed"
state=$(sed -nE 's/^Database cluster state: +(.*)$/\1/p' <<< "$control")
lsn=$(sed -nE 's/^Latest checkpoint location: +([0-9A-F]+\/[0-9A-F]+)$/\1/p' <<< "$control")
tli=$(sed -nE "s/^Latest checkpoint's TimeLineID: +([0-9]+)$/\1/p" <<< "$control")
[[ $state == "shut down" ]] || die "the VDB's cluster state is '$state', not 'shut down': start it (\`lunabox vdb start\`) and snapshot again"
num=$("$PGBIN/postgres" -D "$DATA" -C server_version_num 2>/dev/null) || num=0
version=$("$PGBIN/postgres" -D "$DATA" -C server_version 2>/dev/null) || version=unknown
{
  echo '{'
  echo "  \"lsn\": \"$lsn\","
  echo "  \"timeline\": $tli,"
  echo "  \"postgresVersion\": $(json_str "$version"),"
  echo "  \"serverVersionNum\": $num,"
  echo "  \"port\": $PORT,"
  echo "  \"origin\": \"vdb\","
  echo "  \"consistency\": \"shutdown\","
  echo "  \"takenAt\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\""
  echo '}'
} > "$meta" || die "cannot write $meta"
echo "the VDB is shut down at checkpoint $lsn on timeline $tli"
