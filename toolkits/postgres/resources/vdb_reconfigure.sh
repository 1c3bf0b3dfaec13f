# vdb_reconfigure.sh (virtual reconfigure): bring a VDB back on its data
# after unconfigure (which stopped it cleanly): settings rewritten for
# where its data is now, started; its source config to $DLPX_OUTPUT_FILE.
need_bin pg_ctl psql
lb_init
[[ -f $DATA/PG_VERSION ]] || die "the VDB's data at $DATA holds no PostgreSQL data directory"
if ! pg_running "$DATA"; then
  vdb_port_check
  vdb_settings
  pg_start "$DATA" 600
fi
vdb_config
