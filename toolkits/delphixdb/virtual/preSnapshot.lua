-- Make the virtual database's data files consistent before the engine snapshots them.
envMap = { DELPHIXDB = repository.installPath, VDBNAME = parameters.dbName }
RunBash { command = "$DELPHIXDB flush $VDBNAME", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap }
