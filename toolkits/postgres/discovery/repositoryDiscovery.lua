-- Find the PostgreSQL installations (bin directories with pg_ctl and postgres) on the environment.
return RunBash {
  command = resources["lib.sh"] .. "\n" .. resources["find_installations.sh"],
  environment = remote.environment,
  user = remote.environmentUser,
  host = remote.host,
  variables = {},
  outputSchema = {
    type = "array",
    items = {
      type = "object",
      additionalProperties = false,
      required = { "installPath", "version", "majorVersion" },
      properties = {
        installPath = { type = "string", minLength = 1 },
        version = { type = "string" },
        majorVersion = { type = "integer", minimum = 10 },
      },
    },
  },
}
