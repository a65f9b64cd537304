# The build command under a wrapper that lists what the command changed (see sync.rs: wrap).
# Parameters, in order, then the command itself:
#   $1  the tree in the container        $2  the list file to write
#   $3  a directory to wait in for `go` (empty: start at once)
#   $4  the list's own path to name first (empty: none)   $5  "dirs": list changed directories' entries
d=$1; l=$2; w=$3; own=$4; dirs=$5; shift 5
if [ -n "$w" ]; then
  # The container starts before the sources are synced: wait for the go (10 minutes at most:
  # the kit that would give it is gone by then).
  n=0; while [ ! -e "$w/go" ] && [ $n -lt 60000 ]; do sleep 0.01 2>/dev/null || sleep 1; n=$((n+1)); done
  [ -e "$w/go" ] || exit 125
fi
s="$l.start"; t="$l.tick"; n=0
mkdir -p "${l%/*}"; rm -f "$l"; touch "$s" "$t"
# File times move in clock ticks: start only once the clock has ticked past the start stamp.
while [ -z "$(find "$t" -newer "$s" 2>/dev/null)" ] && [ $n -lt 20000 ]; do touch "$t"; n=$((n+1)); done
"$@"; rc=$?
if cd "$d"; then
  { [ ! -d vendor ] || find ./vendor -cnewer "$s" -print; } > "$l.vendor" & v=$!
  if { { [ -z "$own" ] || echo "$own"; } && find . \( -path ./_output -o -path ./.make -o -path ./_tmp -o -path ./.git -o -path ./vendor \) -prune -o -cnewer "$s" -print && { [ ! -d _output/dockerized/bin ] || find ./_output/dockerized/bin -cnewer "$s" -print; }; } > "$l.tmp" && wait $v && cat "$l.vendor" >> "$l.tmp"; then mv -f "$l.tmp" "$l"; fi
  rm -f "$l.vendor" "$l.tmp"
  # What each changed directory holds now: one whose entries were only created and removed
  # again (a generator's temporary files) is not a difference.
  if [ -n "$dirs" ] && [ -e "$l" ]; then
    while IFS= read -r p; do case "$p" in ./_output*) ;; *) if [ -d "$p" ] && [ ! -L "$p" ]; then echo "$p/"; find "$p" -mindepth 1 -maxdepth 1 -print; fi ;; esac; done < "$l" > "$l.dirs.tmp" && mv -f "$l.dirs.tmp" "$l.dirs"
  fi
fi
exit $rc
