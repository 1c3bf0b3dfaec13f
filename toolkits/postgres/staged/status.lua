-- ACTIVE while the staging standby runs and streams from the primary (resources/staging_status.sh).
return RunBash {
  command = resources["lib.sh"] .. "\n" .. resources["staging_status.sh"],
  environment = source.stagingEnvironment,
  user = source.stagingEnvironmentUser,
  host = source.stagingHost,
  variables = {
    PGBIN = repository.installPath,
    DATA = source.dataDirectory,
    GUID = source.guid,
    SUPERUSER = parameters.superuser,
    STAGING_PORT = parameters.stagingPort,
  },
  outputSchema = { type = "string", enum = { "ACTIVE", "INACTIVE", "UNKNOWN" } },
}
