-- Get IP address of the staging environment. This address will be used to configure replication from the data source.
ip = RunBash { command = "echo \"\\\"$(hostname -i)\\\"\" > $DLPX_OUTPUT_FILE", environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = {}, outputSchema = { type = "string" } }
-- Initiate a map of "environment variable name" -> "environment variable value".
-- This map draws from both the result of a Bash operation and the linkedSourceDefinition parameters.
envMap = { DELPHIXDB = repository.installPath, PRIMARYDBNAME = sourceConfig.dbName, STAGINGDBNAME = parameters.stagingDbName, STAGINGPORT = parameters.stagingPort, STAGINGDIR = source.dataDirectory, STAGINGHOSTIP = ip }
--
-- Begin body of resync logic.
--
-- Step 1:
-- Generate a backup of the primary Delphix DB instance at a known location.
-- Note that this Bash logic is running on the primary environment (as opposed to the staging environment).
RunBash { command = "$DELPHIXDB backup $PRIMARYDBNAME -o /tmp/backup.tar.gz", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap }
-- Step 2:
-- Create a fresh Delphix DB instance to later be configured as a slave to the primary database.
-- Note that this Bash logic is running on the staging environment.
RunBash { command = "$DELPHIXDB new $STAGINGDBNAME --port=$STAGINGPORT --dataDir=$STAGINGDIR", environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = envMap }
-- Step 3:
-- Initiate staging database by loading data from the backup.
RunBash { command = "$DELPHIXDB restore $STAGINGDBNAME /tmp/backup.tar.gz", environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = envMap }
-- Step 4:
-- Start up the staging database.
RunBash { command = "$DELPHIXDB start $STAGINGDBNAME", environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = envMap }
-- Step 5:
-- Configure the primary database as a master. This command will also configure the staging database as a slave.
RunBash { command = "$DELPHIXDB add-slave $PRIMARYDBNAME $STAGINGHOSTIP", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap }
-- Step 6:
-- Start replication of data from the primary environment to the staging environment.
RunBash { command = "$DELPHIXDB start-repl $STAGINGDBNAME", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap }
