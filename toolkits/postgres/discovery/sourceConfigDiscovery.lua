-- Find the clusters (data directories, with their port and where to connect) of one installation.
return RunBash {
  command = resources["lib.sh"] .. "\n" .. resources["find_clusters.sh"],
  environment = remote.environment,
  user = remote.environmentUser,
  host = remote.host,
  variables = { PGBIN = repository.installPath, MAJOR = repository.majorVersion },
  outputSchema = {
    type = "array",
    items = {
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
  },
}
