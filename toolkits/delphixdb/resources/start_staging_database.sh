# Start the staging Delphix DB instance on the mounted storage, unless it is
# already running. Replication (started on the primary just before) resumes
# as soon as it is up.
# Uses: DELPHIXDB (path of the delphixdb program), STAGINGDBNAME.
set -e
status=$("$DELPHIXDB" status "$STAGINGDBNAME")
if [[ $status == *"state=running"* ]]
then
  echo "$STAGINGDBNAME is already running"
else
  "$DELPHIXDB" start "$STAGINGDBNAME"
fi
