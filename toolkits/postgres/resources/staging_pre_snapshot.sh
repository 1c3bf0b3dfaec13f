# staging_pre_snapshot.sh (staged preSnapshot, on the staging host): make
# the staging standby's files consistent for the snapshot. Pause WAL replay
# and wait until it is paused, force a restartpoint (CHECKPOINT on a
# standby) so every replayed change is in the data files, then record where
# replay stopped in DATA/lunabox_snapshot.json, which the snapshot takes
# along: configure recovers a VDB to exactly that LSN.
need_bin pg_ctl psql
lb_init
rm -f "$DATA/lunabox_snapshot.json"
pg_running "$DATA" || die "the staging standby on $DATA is not running (\`lunabox enable\` or the worker starts it; \`lunabox sync --resync\` rebuilds it)"
[[ $(sql "$STAGING_PORT" "SELECT pg_is_in_recovery()") == t ]] ||
  die "the cluster on port $STAGING_PORT is not a standby (it was promoted?); \`lunabox sync --resync\` rebuilds the staging standby"
num=$(sql "$STAGING_PORT" "SHOW server_version_num") || die_with_log "cannot query the staging standby on port $STAGING_PORT"
sql "$STAGING_PORT" "SELECT pg_wal_replay_pause()" >/dev/null || die "pg_wal_replay_pause() failed on port $STAGING_PORT"
if ((num >= 140000)); then
  paused_sql="SELECT pg_get_wal_replay_pause_state() = 'paused'"
else
  paused_sql="SELECT pg_is_wal_replay_paused()"
fi
for _ in $(seq 1 600); do
  [[ $(sql "$STAGING_PORT" "$paused_sql") == t ]] && break
  sleep 0.1
done
[[ $(sql "$STAGING_PORT" "$paused_sql") == t ]] || die "WAL replay did not pause within a minute on port $STAGING_PORT"
sql "$STAGING_PORT" "CHECKPOINT" >/dev/null || die "CHECKPOINT (a restartpoint) failed on the staging standby"
IFS='|' read -r lsn timeline version replayed_at < <(sql "$STAGING_PORT" \
  "SELECT pg_last_wal_replay_lsn(), (SELECT timeline_id FROM pg_control_checkpoint()), current_setting('server_version'), coalesce(to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '')")
[[ $lsn =~ ^[0-9A-F]+/[0-9A-F]+$ && $timeline =~ ^[0-9]+$ ]] || die "unexpected replay position from the staging standby: '$lsn' '$timeline'"
{
  echo '{'
  echo "  \"lsn\": \"$lsn\","
  echo "  \"timeline\": $timeline,"
  echo "  \"postgresVersion\": $(json_str "$version"),"
  echo "  \"serverVersionNum\": $num,"
  echo "  \"port\": $STAGING_PORT,"
  echo "  \"origin\": \"staging\","
  echo "  \"consistency\": \"replayPaused\","
  echo "  \"lastReplayedCommit\": $(json_str "$replayed_at"),"
  echo "  \"takenAt\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\""
  echo '}'
} > "$DATA/lunabox_snapshot.json.new" && mv "$DATA/lunabox_snapshot.json.new" "$DATA/lunabox_snapshot.json" ||
  die "cannot write $DATA/lunabox_snapshot.json"
echo "replay paused at $lsn on timeline $timeline"
