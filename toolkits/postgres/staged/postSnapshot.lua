-- Resume WAL replay on the staging standby; the snapshot's metadata is what preSnapshot recorded (resources/staging_post_snapshot.sh).
return RunBash {
  command = resources["lib.sh"] .. "\n" .. resources["staging_post_snapshot.sh"],
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
