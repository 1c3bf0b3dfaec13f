envMap = { DELPHIXDB = repository.installPath, VDBNAME = parameters.dbName }
RunBash { command = "$DELPHIXDB start $VDBNAME", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap }
