-- Bring a virtual Delphix DB back up on its data files after unconfigure.
envMap = { DELPHIXDB = repository.installPath, VDBNAME = parameters.dbName, VDBPORT = parameters.port, VDBDIR = source.dataDirectory }
RunBash { command = "$DELPHIXDB attach $VDBNAME --port=$VDBPORT --dataDir=$VDBDIR && $DELPHIXDB start $VDBNAME", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap }
return { dbName = parameters.dbName, port = parameters.port }
