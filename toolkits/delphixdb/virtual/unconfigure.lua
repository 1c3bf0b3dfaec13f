-- Take the virtual Delphix DB down for good: stop it and forget it (its data files stay on the engine's storage).
envMap = { DELPHIXDB = repository.installPath, VDBNAME = parameters.dbName }
RunBash { command = "$DELPHIXDB detach $VDBNAME", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap }
