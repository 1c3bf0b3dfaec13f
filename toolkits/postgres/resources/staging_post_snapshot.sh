# staging_post_snapshot.sh (staged postSnapshot, on the staging host):
# resume WAL replay on the staging standby and write the snapshot's
# metadata (DATA/lunabox_snapshot.json, written by preSnapshot) to
# $DLPX_OUTPUT_FILE. Fails when preSnapshot did not record it, or when
# replay is no longer where preSnapshot paused it (the standby restarted
# during the snapshot, so the snapshot may not be consistent).
need_bin pg_ctl psql
lb_init
meta="$DATA/lunabox_snapshot.json"
moved=""
if pg_running "$DATA" && [[ $(sql "$STAGING_PORT" "SELECT pg_is_in_recovery()") == t ]]; then
  now=$(sql "$STAGING_PORT" "SELECT pg_last_wal_replay_lsn()")
  if [[ -f $meta ]]; then
    want=$(sed -nE 's/^  "lsn": "([0-9A-F/]+)",$/\1/p' "$meta")
    [[ $now == "$want" ]] || moved="replay is at $now, not at $want where preSnapshot paused it"
  fi
  sql "$STAGING_PORT" "SELECT pg_wal_replay_resume()" >/dev/null || die "pg_wal_replay_resume() failed on port $STAGING_PORT"
  echo "replay resumed"
else
  echo "the staging standby is not running: nothing to resume" >&2
fi
[[ -f $meta ]] || die "preSnapshot recorded no replay position ($meta is missing): the snapshot is not usable"
[[ -z $moved ]] || die "the staging standby moved during the snapshot ($moved): the snapshot may not be consistent; SnapSync again"
cat "$meta" > "$DLPX_OUTPUT_FILE"
