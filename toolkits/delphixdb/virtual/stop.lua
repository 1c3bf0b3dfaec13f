envMap = { DELPHIXDB = repository.installPath, VDBNAME = parameters.dbName }
RunBash { command = "$DELPHIXDB stop $VDBNAME", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap }
