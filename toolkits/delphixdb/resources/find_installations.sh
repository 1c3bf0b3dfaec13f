# Write a JSON array of the Delphix DB installations on this host into
# $DLPX_OUTPUT_FILE: the delphixdb program on the PATH, in /opt/delphixdb/bin
# and in /usr/local/bin. Each is {"installPath": ..., "version": ...}.
found=()
if p=$(command -v delphixdb 2>/dev/null); then found+=("$p"); fi
for p in /opt/delphixdb/bin/delphixdb /usr/local/bin/delphixdb; do
  if [[ -x $p ]]; then found+=("$p"); fi
done
printf '[' > "$DLPX_OUTPUT_FILE"
sep=""
while IFS= read -r p; do
  [[ -n $p ]] || continue
  v=$("$p" version 2>/dev/null || echo unknown)
  printf '%s{"installPath":"%s","version":"%s"}' "$sep" "$p" "$v" >> "$DLPX_OUTPUT_FILE"
  sep=","
done < <(printf '%s\n' "${found[@]}" | sort -u)
printf ']\n' >> "$DLPX_OUTPUT_FILE"
