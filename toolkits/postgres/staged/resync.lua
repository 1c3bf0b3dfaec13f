-- Hard resync: pg_basebackup of the primary into the staging storage, made a streaming standby on stagingPort and started (resources/resync.sh).
RunBash {
  command = resources["lib.sh"] .. "\n" .. resources["staging_configure.sh"] .. "\n" .. resources["resync.sh"],
  environment = source.stagingEnvironment,
  user = source.stagingEnvironmentUser,
  host = source.stagingHost,
  variables = {
    PGBIN = repository.installPath,
    DATA = source.dataDirectory,
    GUID = source.guid,
    SUPERUSER = parameters.superuser,
    STAGING_PORT = parameters.stagingPort,
    PRIMARY_HOST = parameters.primaryHost or config.host,
    PRIMARY_PORT = config.port,
    REPL_USER = parameters.replicationUser,
    PRIMARY_VERSION = config.version,
    PGPASSWORD = parameters.replicationPassword,
  },
}
