-- Start the VDB again and return the snapshot's metadata (resources/vdb_post_snapshot.sh).
return RunBash {
  command = resources["lib.sh"] .. "\n" .. resources["vdb_lib.sh"] .. "\n" .. resources["vdb_post_snapshot.sh"],
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
  outputSchema = {
    type = "object",
    required = { "lsn", "timeline", "postgresVersion", "origin", "consistency" },
    properties = {
      lsn = { type = "string", pattern = "^[0-9A-F]{1,8}/[0-9A-F]{1,8}$" },
      timeline = { type = "integer", minimum = 1 },
      postgresVersion = { type = "string", maxLength = 64 },
      serverVersionNum = { type = "integer", minimum = 0 },
      port = { type = "integer", minimum = 1, maximum = 65535 },
      origin = { type = "string", enum = { "staging", "vdb" } },
      consistency = { type = "string", enum = { "replayPaused", "shutdown" } },
      lastReplayedCommit = { type = "string", maxLength = 64 },
      takenAt = { type = "string", maxLength = 64 },
    },
    additionalProperties = false,
  },
}
