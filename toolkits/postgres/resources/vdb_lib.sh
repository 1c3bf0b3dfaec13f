# vdb_lib.sh: functions of the virtual hooks (appended after lib.sh).
# Uses: DATA (the VDB's copy), GUID, PORT, LISTEN (listen_addresses).

# A field of DATA/lunabox_snapshot.json (the file this toolkit writes, one
# field per line), or nothing.
meta_field() {
  sed -nE "s/^  \"$1\": \"?([^\",]*)\"?,?\$/\1/p" "$DATA/lunabox_snapshot.json" 2>/dev/null
}

# The settings of a VDB: its own port and cluster name, the toolkit's
# socket directory and pg_hba.conf, no standby or archiving settings from
# the source (primary_conninfo and restore_command are dropped), then any
# extra settings given.
vdb_settings() {
  local hba
  hba=$(write_hba "$DATA") || exit 1
  write_settings "$DATA" \
    "port=$PORT" \
    "listen_addresses=$LISTEN" \
    "unix_socket_directories=$LB" \
    "hba_file=$hba" \
    "ident_file=$DATA/pg_ident.conf" \
    "hot_standby=on" \
    "archive_mode=off" \
    "cluster_name=lunabox-vdb-$GUID" \
    "$@"
}

# The source config of the VDB, as configure and reconfigure return it.
vdb_config() {
  local name major
  name=$(json_str "$DATA") || die "the VDB's path has control characters"
  major=$(head -n 1 "$DATA/PG_VERSION")
  printf '{"name":%s,"dataDirectory":%s,"port":%d,"host":"localhost","version":"%s"}\n' \
    "$name" "$name" "$PORT" "$major" > "$DLPX_OUTPUT_FILE"
}

# Fail unless the VDB's port is free (or already its own).
vdb_port_check() {
  port_free "$PORT" || die "port $PORT (the VDB's port parameter) is already in use on this host; provision with --param port=N for a free N"
}
