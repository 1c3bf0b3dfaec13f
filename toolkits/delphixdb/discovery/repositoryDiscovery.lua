-- Find the Delphix DB installations (the delphixdb program) on the environment.
repositories = RunBash { command = resources["find_installations.sh"], environment = remote.environment, user = remote.environmentUser, host = remote.host, variables = {}, outputSchema = { type = "array", items = { type = "object", required = { "installPath" }, properties = { installPath = { type = "string" }, version = { type = "string" } } } } }
return repositories
