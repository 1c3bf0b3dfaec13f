-- Provision: recover the snapshot's copy to exactly the snapshot's LSN, promote it and start it on its own port (resources/vdb_configure.sh).
return RunBash {
  command = resources["lib.sh"] .. "\n" .. resources["vdb_lib.sh"] .. "\n" .. resources["vdb_configure.sh"],
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
    EXPECTED_LSN = snapshotJson and string.match(snapshotJson, "\"lsn\"%s*:%s*\"([0-9A-F]+/[0-9A-F]+)\""),
  },
  outputSchema = {
    type = "object",
    additionalProperties = false,
    required = { "name", "dataDirectory", "port", "host" },
    properties = {
      name = { type = "string", minLength = 1 },
      dataDirectory = { type = "string", minLength = 1 },
      port = { type = "integer", minimum = 1, maximum = 65535 },
      host = { type = "string", minLength = 1, maxLength = 255 },
      version = { type = "string", pattern = "^[0-9]+$" },
    },
  },
}
