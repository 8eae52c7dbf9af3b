#!/usr/bin/env bash
# dummy: the smallest CNI plugin a runtime accepts. It wires nothing; it shows
# what a plugin receives (CNI_* variables and the config on stdin) and what it
# must answer on stdout. Needs bash and jq. Log file: $DUMMY_LOG_FILE, else the
# config's "logFile"; the log always goes to stderr too (stdout is the answer).
config=$(cat)
log=${DUMMY_LOG_FILE:-$(jq -r '.logFile // empty' <<<"$config" 2>/dev/null)}
line="dummy: CNI_COMMAND=$CNI_COMMAND CNI_CONTAINERID=$CNI_CONTAINERID CNI_NETNS=$CNI_NETNS CNI_IFNAME=$CNI_IFNAME config: $config"
echo "$line" >&2
if [ -n "$log" ]; then echo "$line" >>"$log"; fi
case $CNI_COMMAND in
VERSION) echo '{"cniVersion":"1.1.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}' ;;
ADD) jq -c '{cniVersion}' <<<"$config" ;; # the minimal valid result: nothing made
esac # DEL, CHECK, STATUS, GC: nothing was made, so success (exit 0) is the answer
