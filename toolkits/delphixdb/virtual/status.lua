envMap = { DELPHIXDB = repository.installPath, VDBNAME = parameters.dbName }
status = RunBash { command = "if [[ $($DELPHIXDB status $VDBNAME) == *state=running* ]]; then echo '\"ACTIVE\"' > $DLPX_OUTPUT_FILE; else echo '\"INACTIVE\"' > $DLPX_OUTPUT_FILE; fi", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap, outputSchema = { type = "string", enum = { "ACTIVE", "INACTIVE", "UNKNOWN" } } }
return status
