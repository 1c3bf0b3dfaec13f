-- List the databases of one Delphix DB installation.
configs = RunBash { command = "$DELPHIXDB list --json > $DLPX_OUTPUT_FILE", environment = remote.environment, user = remote.environmentUser, host = remote.host, variables = { DELPHIXDB = repository.installPath }, outputSchema = { type = "array", items = { type = "object", required = { "dbName" }, properties = { dbName = { type = "string" }, port = { type = "integer" } } } } }
return configs
