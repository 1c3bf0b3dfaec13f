# find_clusters.sh (sourceConfigDiscovery): write a JSON array of the
# clusters (data directories) of one installation into $DLPX_OUTPUT_FILE.
# Uses: PGBIN (the installation's bin directory), MAJOR (its major version).
#
# Where clusters are found: every running postmaster of this installation
# that the environment user may inspect (its working directory is its data
# directory; postmaster.pid gives the port, socket directory and listen
# address), Debian's pg_lsclusters, and the usual data directories
# (/var/lib/postgresql/MAJOR/*, /var/lib/pgsql[/MAJOR]/data,
# /usr/local/pgsql/data). A directory counts only when its PG_VERSION is
# MAJOR. Copies this toolkit made (staging standbys, VDBs: they hold
# lunabox_hba.conf) are left out. Each item is {"name" (the data
# directory), "dataDirectory", "port", "host" (where to connect: the listen
# address, "localhost" for all addresses, else the socket directory),
# "version" (the major version)}.
[[ -n $PGBIN && -n $MAJOR ]] || die "the repository needs installPath and majorVersion"
postgres_bin=$(readlink -f "$PGBIN/postgres") || die "$PGBIN/postgres does not exist"
declare -A port_of=() host_of=() seen=()
order=()

add() {
  local dir=$1 port=$2 host=$3 real
  real=$(readlink -f "$dir" 2>/dev/null) || return 0
  [[ -f $real/PG_VERSION && ! -e $real/lunabox_hba.conf ]] || return 0
  [[ $(head -n 1 "$real/PG_VERSION" 2>/dev/null) == "$MAJOR" ]] || return 0
  if [[ -z ${seen[$real]:-} ]]; then
    seen[$real]=1
    order+=("$real")
  fi
  [[ -n $port && -z ${port_of[$real]:-} ]] && port_of[$real]=$port
  [[ -n $host && -z ${host_of[$real]:-} ]] && host_of[$real]=$host
  return 0
}

# The port set in a postgresql.conf, if any (the last setting wins).
conf_port() {
  [[ -r $1 ]] || return 0
  sed -nE "s/^[[:space:]]*port[[:space:]]*=[[:space:]]*'?([0-9]+)'?.*/\1/p" "$1" | tail -n 1
}

# 1. Running postmasters (a postgres process whose parent is not one).
for p in /proc/[0-9]*; do
  exe=$(readlink "$p/exe" 2>/dev/null) || continue
  [[ $exe == "$postgres_bin" ]] || continue
  ppid=$(awk '/^PPid:/ {print $2}' "$p/status" 2>/dev/null) || continue
  [[ $(readlink "/proc/$ppid/exe" 2>/dev/null) == "$postgres_bin" ]] && continue
  dir=$(readlink "$p/cwd" 2>/dev/null) || continue
  [[ -r $dir/postmaster.pid ]] || continue
  mapfile -t pid_lines < "$dir/postmaster.pid"
  port=${pid_lines[3]:-}
  sock=${pid_lines[4]:-}
  listen=${pid_lines[5]:-}
  case $listen in
    '') host=$sock ;;
    '*' | 0.0.0.0 | ::) host=localhost ;;
    *) host=$listen ;;
  esac
  add "$dir" "$port" "$host"
done

# 2. Debian's clusters: "VERSION CLUSTER PORT STATUS OWNER DATADIR LOGFILE".
if command -v pg_lsclusters >/dev/null 2>&1; then
  while read -r ver _cluster port _status _owner dir _log; do
    [[ $ver == "$MAJOR" ]] && add "$dir" "$port" localhost
  done < <(pg_lsclusters -h 2>/dev/null)
fi

# 3. The usual places.
for dir in /var/lib/postgresql/"$MAJOR"/* /var/lib/pgsql/"$MAJOR"/data /var/lib/pgsql/data /usr/local/pgsql/data; do
  [[ -d $dir ]] && add "$dir" "$(conf_port "$dir/postgresql.conf")" localhost
done

sep=""
printf '[' > "$DLPX_OUTPUT_FILE"
for dir in "${order[@]}"; do
  name=$(json_str "$dir") || continue
  host=$(json_str "${host_of[$dir]:-localhost}") || continue
  port=${port_of[$dir]:-5432}
  [[ $port =~ ^[0-9]+$ ]] || port=5432
  printf '%s{"name":%s,"dataDirectory":%s,"port":%d,"host":%s,"version":"%s"}' \
    "$sep" "$name" "$name" "$port" "$host" "$MAJOR" >> "$DLPX_OUTPUT_FILE"
  sep=","
done
printf ']\n' >> "$DLPX_OUTPUT_FILE"
