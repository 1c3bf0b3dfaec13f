# vdb_stop.sh (virtual stop and unconfigure): stop the VDB (fast shutdown;
# its data stays, cleanly shut down).
need_bin pg_ctl
lb_init
pg_stop "$DATA"
echo "the VDB on $DATA is stopped"
