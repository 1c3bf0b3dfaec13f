# staging_stop.sh (stopStaging, on the staging host): stop the staging
# standby (fast shutdown: a restartpoint, then the files are left
# consistent), so the storage may be unmounted.
need_bin pg_ctl
lb_init
pg_stop "$DATA"
echo "the staging standby on $DATA is stopped"
