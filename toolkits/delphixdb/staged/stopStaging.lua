envMap = { DELPHIXDB = repository.installPath, PRIMARYDBNAME = sourceConfig.dbName, STAGINGDBNAME = parameters.stagingDbName, STAGINGPORT = parameters.stagingPort }
RunBash { command = "$DELPHIXDB stop-repl $STAGINGDBNAME", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap }
RunBash { command = "$DELPHIXDB stop $STAGINGDBNAME", environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = envMap }
