-- ACTIVE while the VDB runs and answers (resources/vdb_status.sh).
return RunBash {
  command = resources["lib.sh"] .. "\n" .. resources["vdb_lib.sh"] .. "\n" .. resources["vdb_status.sh"],
  environment = source.environment,
  user = source.environmentUser,
  host = source.host,
  variables = {
    PGBIN = repository.installPath,
    DATA = source.dataDirectory,
    GUID = source.guid,
    SUPERUSER = parameters.superuser,
    PORT = parameters.port,
    LISTEN = parameters.listenAddresses,
  },
  outputSchema = { type = "string", enum = { "ACTIVE", "INACTIVE", "UNKNOWN" } },
}
