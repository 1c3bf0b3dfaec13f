# Check if the output of status contains the string "replication-running"
status=$($DELPHIXDB status $STAGINGDBNAME)
if [[ $status == *"replication-running"* ]]
then
  echo "\"ACTIVE\"" > $DLPX_OUTPUT_FILE
else
  echo "\"INACTIVE\"" > $DLPX_OUTPUT_FILE
fi
