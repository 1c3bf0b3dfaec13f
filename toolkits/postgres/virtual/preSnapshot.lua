-- Shut the VDB down cleanly so its files are consistent for the snapshot (resources/vdb_pre_snapshot.sh).
RunBash {
  command = resources["lib.sh"] .. "\n" .. resources["vdb_lib.sh"] .. "\n" .. resources["vdb_pre_snapshot.sh"],
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
}
