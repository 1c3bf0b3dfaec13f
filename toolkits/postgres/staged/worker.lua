-- Worker: start the staging standby again if it stopped (resources/staging_start.sh with WORKER=1).
RunBash {
  command = resources["lib.sh"] .. "\n" .. resources["staging_configure.sh"] .. "\n" .. resources["staging_start.sh"],
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
    PGPASSWORD = parameters.replicationPassword,
    WORKER = 1,
  },
}
