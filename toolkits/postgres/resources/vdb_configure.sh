# vdb_configure.sh (virtual configure): bring up a VDB on DATA, a fresh
# copy of a snapshot, and write its source config to $DLPX_OUTPUT_FILE.
# Uses: EXPECTED_LSN (the snapshot metadata's lsn, checked against the copy).
#
# A snapshot of the staging standby holds the data files as of a
# restartpoint, the WAL up to where replay was paused (the snapshot's lsn)
# and usually WAL received after it. Recovering "to the end of the WAL"
# would add those later transactions, so the copy is started in targeted
# recovery (recovery.signal) with recovery_target_lsn = the pause point,
# recovery_target_inclusive = off (stop before the first record at or past
# it, i.e. right after the last record replayed before the pause) and
# recovery_target_action = promote: it opens read-write on a new timeline
# holding exactly the snapshot's data. When the copy's WAL ends at the pause
# point, PostgreSQL would refuse a target it never reaches, so then no
# target is set: replaying all of the WAL stops at the same place. Either
# way the switch point in the new timeline's history file must be the
# snapshot's lsn, which is checked. A snapshot of a VDB was taken shut down
# cleanly and needs no recovery.
need_bin pg_ctl psql postgres pg_waldump
lb_init
[[ -f $DATA/PG_VERSION ]] || die "the copy at $DATA holds no PostgreSQL data directory: was the snapshot made by this toolkit?"
[[ -O $DATA ]] || die "the copy at $DATA belongs to $(stat -c %U "$DATA"), not to $(id -un) who runs the VDB"
[[ -f $DATA/lunabox_snapshot.json ]] || die "the copy at $DATA has no lunabox_snapshot.json: the snapshot was not made by this toolkit's preSnapshot"
lsn=$(meta_field lsn)
tli=$(meta_field timeline)
origin=$(meta_field origin)
[[ $lsn =~ ^[0-9A-F]+/[0-9A-F]+$ && $tli =~ ^[0-9]+$ ]] || die "lunabox_snapshot.json in the copy has no valid lsn and timeline"
[[ -z ${EXPECTED_LSN:-} || $EXPECTED_LSN == "$lsn" ]] || die "the copy was taken at $lsn but the snapshot's metadata says $EXPECTED_LSN"
# The copy's postmaster.pid is the staging standby's (or the source VDB's).
if [[ -f $DATA/postmaster.pid && $(sed -n 2p "$DATA/postmaster.pid") != "$DATA" ]]; then
  rm -f "$DATA/postmaster.pid"
fi
pg_running "$DATA" && die "a PostgreSQL server already runs on $DATA"
vdb_port_check
rm -f "$DATA/postmaster.pid" "$DATA/standby.signal" "$DATA/recovery.signal"
chmod 700 "$DATA"

if [[ $origin == staging ]]; then
  target=()
  if "$PGBIN/pg_waldump" -p "$DATA/pg_wal" -t "$tli" -s "$lsn" -n 1 >/dev/null 2>&1; then
    target=("recovery_target_lsn=$lsn" "recovery_target_inclusive=off")
    echo "recovering to LSN $lsn (the copy holds WAL past it)"
  else
    echo "the copy's WAL ends at LSN $lsn: recovering all of it"
  fi
  # Archive recovery needs a restore_command: `false` finds nothing in an
  # archive, so the WAL in pg_wal is all that is replayed.
  vdb_settings "${target[@]}" "recovery_target_action=promote" "recovery_target_timeline=current" "restore_command=false"
  : > "$DATA/recovery.signal"
  pg_start "$DATA" 600
  for _ in $(seq 1 1200); do
    [[ $(sql "$PORT" "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]] && break
    pg_running "$DATA" || die_with_log "the VDB stopped during recovery"
    sleep 0.5
  done
  [[ $(sql "$PORT" "SELECT pg_is_in_recovery()") == f ]] || die_with_log "the VDB did not finish recovery within 10 minutes"
  history=$(ls "$DATA"/pg_wal/*.history 2>/dev/null | sort | tail -n 1)
  switch=$([[ -n $history ]] && awk -v t="$tli" '$1 == t { print $2 }' "$history")
  [[ $switch == "$lsn" ]] || die_with_log "the VDB left timeline $tli at ${switch:-an unknown LSN}, not at the snapshot's $lsn"
  echo "promoted after timeline $tli at $lsn"
  # Done with recovery: the targets go, so they never apply again.
  vdb_settings
else
  vdb_settings
  pg_start "$DATA" 600
fi
rm -f "$DATA/lunabox_snapshot.json"
vdb_config
