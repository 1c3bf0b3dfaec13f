# find_installations.sh (repositoryDiscovery): write a JSON array of the
# PostgreSQL installations on this host into $DLPX_OUTPUT_FILE. An
# installation is a bin directory holding both pg_ctl and postgres: Debian's
# /usr/lib/postgresql/*/bin, the PGDG RPM layout /usr/pgsql-*/bin, source
# builds in /usr/local/pgsql/bin and /opt, and every directory of PATH
# (the postgres program's symlinks resolved, so one installation is listed
# once). Each item is
# {"installPath", "version" (e.g. "15.18"), "majorVersion" (15)}.
declare -A seen=()
candidates=()
for d in /usr/lib/postgresql/*/bin /usr/pgsql-*/bin /usr/local/pgsql/bin /opt/postgresql*/bin /opt/pgsql*/bin; do
  candidates+=("$d")
done
IFS=: read -r -a path_dirs <<< "${PATH:-}"
for d in "${path_dirs[@]}"; do
  [[ -n $d ]] && candidates+=("$d")
done
sep=""
printf '[' > "$DLPX_OUTPUT_FILE"
for d in "${candidates[@]}"; do
  [[ -x $d/pg_ctl && -x $d/postgres && ! -d $d/postgres ]] || continue
  # The directory the postgres program really is in (PATH entries are
  # often symlinks into an installation).
  real=$(readlink -f "$d/postgres") || continue
  real=${real%/*}
  [[ -x $real/pg_ctl ]] || continue
  [[ -z ${seen[$real]:-} ]] || continue
  seen[$real]=1
  # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
  line=$("$real/postgres" --version 2>/dev/null) || continue
  [[ $line =~ \(PostgreSQL\)\ ([0-9]+)(\.[0-9]+)?([a-z]+[0-9]*)? ]] || continue
  version="${BASH_REMATCH[1]}${BASH_REMATCH[2]}${BASH_REMATCH[3]}"
  major=${BASH_REMATCH[1]}
  path_json=$(json_str "$real") || continue
  printf '%s{"installPath":%s,"version":"%s","majorVersion":%d}' "$sep" "$path_json" "$version" "$major" >> "$DLPX_OUTPUT_FILE"
  sep=","
done
printf ']\n' >> "$DLPX_OUTPUT_FILE"
