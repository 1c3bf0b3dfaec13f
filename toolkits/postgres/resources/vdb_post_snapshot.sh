# vdb_post_snapshot.sh (virtual postSnapshot): start the VDB again if
# preSnapshot stopped it, and write the snapshot's metadata to
# $DLPX_OUTPUT_FILE.
need_bin pg_ctl
lb_init
meta="$DATA/lunabox_snapshot.json"
marker="$LB/$GUID.restart-after-snapshot"
if [[ -f $marker ]]; then
  rm -f "$marker"
  pg_start "$DATA" 600
  echo "started the VDB again on port $PORT"
fi
[[ -f $meta ]] || die "preSnapshot recorded nothing ($meta is missing): the snapshot is not usable"
cat "$meta" > "$DLPX_OUTPUT_FILE"
rm -f "$meta"
