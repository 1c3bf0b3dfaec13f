envMap = { DELPHIXDB = repository.installPath, PRIMARYDBNAME = sourceConfig.dbName, STAGINGDBNAME = parameters.stagingDbName, STAGINGPORT = parameters.stagingPort }
status = RunBash { command = resources["query_staging_status.sh"], environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = envMap, outputSchema = { type = "string", enum = { "ACTIVE", "INACTIVE", "UNKNOWN" } } }
return status
