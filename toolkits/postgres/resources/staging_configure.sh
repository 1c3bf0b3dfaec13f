# staging_configure.sh: functions that make a base backup in DATA a
# streaming standby of the primary (appended after lib.sh by resync,
# startStaging and worker).
# Uses: DATA, GUID, STAGING_PORT, PRIMARY_HOST, PRIMARY_PORT, REPL_USER,
# PGPASSWORD (optional: the replication password, never printed).

# The replication password goes to a password file outside the data
# directory (so it never enters a snapshot), readable by the environment
# user only; primary_conninfo names the file.
write_passfile() {
  local f="$LB/$GUID.pgpass"
  if [[ -n ${PGPASSWORD:-} ]]; then
    printf '*:*:*:%s:%s\n' "$(pgpass_field "$REPL_USER")" "$(pgpass_field "$PGPASSWORD")" > "$f" ||
      die "cannot write the password file $f"
    chmod 600 "$f"
  else
    rm -f "$f"
  fi
  printf '%s' "$f"
}

primary_conninfo() {
  local passfile=$1 ci
  ci="host=$(conninfo_quote "$PRIMARY_HOST") port=$(conninfo_quote "$PRIMARY_PORT") user=$(conninfo_quote "$REPL_USER")"
  ci+=" application_name=$(conninfo_quote "lunabox_${GUID//[^A-Za-z0-9]/_}")"
  [[ -f $passfile ]] && ci+=" passfile=$(conninfo_quote "$passfile")"
  printf '%s' "$ci"
}

# Settings of the staging standby: on STAGING_PORT, loopback only, the
# toolkit's socket directory and pg_hba.conf, streaming from the primary,
# no archiving of its own.
configure_standby() {
  local passfile hba
  passfile=$(write_passfile) || exit 1
  hba=$(write_hba "$DATA") || exit 1
  write_settings "$DATA" \
    "port=$STAGING_PORT" \
    "listen_addresses=localhost" \
    "unix_socket_directories=$LB" \
    "hba_file=$hba" \
    "ident_file=$DATA/pg_ident.conf" \
    "primary_conninfo=$(primary_conninfo "$passfile")" \
    "hot_standby=on" \
    "archive_mode=off" \
    "cluster_name=lunabox-staging-$GUID"
  rm -f "$DATA/recovery.signal"
  : > "$DATA/standby.signal"
}
