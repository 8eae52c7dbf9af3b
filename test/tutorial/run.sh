#!/usr/bin/env bash
# run.sh -- runs docs/tutorial.md, so that its commands never rot.
#
#   bash test/tutorial/run.sh           # as root, from anywhere
#   bash test/tutorial/run.sh -v        # also print every block and its output
#   bash test/tutorial/run.sh --list    # list the blocks, run nothing
#
# What it runs. The markdown's fenced blocks, by info string:
#   ```sh                  run, in document order, all in ONE bash shell (as a
#                          reader would type them: variables, functions and the
#                          working directory carry over), from the repo root,
#                          with `set -eEo pipefail`: any failing command fails
#                          the block. A command that is meant to fail is written
#                          `cmd || echo "exit status: $?"`.
#   ```sh inside <!-- -->  a hidden check: run the same way, invisible on GitHub,
#                          to assert what an expected-output block shows. The
#                          output of the last visible block is in the file
#                          $TUTORIAL_LAST_OUTPUT (stdout and stderr).
#   ```LANG file=PATH      not run: its text must equal the repo file PATH.
#   ```LANG excerpt=PATH   not run: its text must appear verbatim in PATH.
#   ```text, ```console, ```json, ```yaml, ... (anything else): illustrative,
#                          not run. `bash`, `shell` and `sh ...` with other
#                          words are refused, so that a block meant to run
#                          cannot be skipped by a typo.
#
# The sandbox. The blocks run as root inside
#   unshare --mount --pid --fork --mount-proc
# with a private tmpfs on /tmp (the tutorial works in /tmp/cni-tutorial), on
# /run/netns (so its `ip netns` names never meet the host's), on /var/lib/cni
# (libcni's result cache), on /run/containerd and on /run/docker (where dockerd
# makes a plugins directory). Its network namespaces,
# files and processes (containerd, shims, containers) therefore cannot outlive
# the run: when the sandbox's PID 1 ends, the kernel ends every process in it,
# and the namespaces go with the mounts. The script still cleans up itself on
# exit (each process by PID, each netns by name), and when every block passed
# it first checks that the tutorial's OWN cleanup steps left nothing behind:
# no process but the runner, no netns, no mount. The tutorial never touches
# the host's interfaces, routes or sysctls (its runtimes run in a throwaway
# "host" netns); afterwards this script checks that the real host has the
# same netdevs, the same ip_forward and none of the tutorial's netns.
#
# Output: one line per block, a FAIL line naming the block (number, line in
# docs/tutorial.md, chapter, command, exit status, its output's last lines),
# then the line CI reads:
#   tutorial: N passed, M failed
# N = blocks run or verified; M = 1 when a block or a leftover check failed.
#
# Environment: TUTORIAL_TIMEOUT (seconds for the whole run, default 600),
# E2E_CACHE (where crictl is cached, shared with test/e2e; default
# <repo>/.cache/e2e), TUTORIAL_DOC (run another copy of the page, e.g. to
# test this script's failure reports, or another page: `make lab-doc` runs
# docs/lab.md with TUTORIAL_DOC=docs/lab.md; crictl is built only for a page
# that uses it).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DOC=${TUTORIAL_DOC:-$REPO/docs/tutorial.md} # another copy, to test this script
DOCNAME=${DOC#"$REPO"/}                      # as messages name it
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Debian packages the tutorial's commands use. Installed (quietly) before the
# run when missing, so that the tutorial's own `apt-get install` lines are
# no-ops here.
PACKAGES=(jq iproute2 iputils-ping util-linux containerd runc busybox-static docker.io)
# Installed only for a page that names them (docs/lab.md: its capture is read
# with tshark, its metrics and page fetched with curl). tshark's debconf
# question (may non-root users capture?) is answered by noninteractive: no.
PAGE_PACKAGES=(tshark curl)
CRICTL_VERSION=v1.37.0
E2E_CACHE=${E2E_CACHE:-$REPO/.cache/e2e}
CRICTL_DIR=$E2E_CACHE/crictl-$CRICTL_VERSION # the same cache as test/e2e/lib.sh
# Directories the sandbox mounts a private tmpfs on.
SANDBOX_DIRS=(/tmp /run/netns /var/lib/cni /run/containerd /run/docker)

ts() { echo "${EPOCHREALTIME/./}"; }
secs() { local us=$(($(ts) - $1)); printf '%d.%01ds' $((us / 1000000)) $(((us / 100000) % 10)); }

# ------------------------------------------------------------------ parsing

# parse_blocks: fill the arrays _T_KIND (run, check, file, excerpt), _T_LINE
# (line of the opening fence), _T_INFO, _T_PATH, _T_TEXT and _T_CHAPTER from $DOC.
# Illustrative blocks are counted in SKIPPED and not stored.
_T_KIND=() _T_LINE=() _T_INFO=() _T_PATH=() _T_TEXT=() _T_CHAPTER=()
SKIPPED=0
parse_blocks() {
  local n=0 line infence=0 incomment=0 info="" start=0 text="" chapter="(preamble)"
  [ -f "$DOC" ] || { echo "FAIL: tutorial: no $DOC" >&2; exit 1; }
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    if [ $infence = 1 ]; then
      if [[ $line =~ ^\`\`\`[[:space:]]*$ ]]; then
        infence=0
        add_block "$info" "$start" "$text" "$chapter" "$incomment"
      else
        text+=$line$'\n'
      fi
      continue
    fi
    if [[ $line =~ ^\`\`\`(.*)$ ]]; then
      infence=1 info=${BASH_REMATCH[1]} start=$n text=""
      continue
    fi
    # Markdown HTML comments: a line that opens one; the comment ends on
    # the line holding -->.
    if [ $incomment = 0 ] && [[ $line == '<!--'* ]]; then incomment=1; fi
    if [ $incomment = 1 ] && [[ $line == *'-->'* ]]; then incomment=0; fi
    if [ $incomment = 0 ] && [[ $line =~ ^##\  ]]; then chapter=${line#\#\# }; fi
  done <"$DOC"
  [ $infence = 0 ] || { echo "FAIL: tutorial: $DOC:$start: the block opened here is never closed" >&2; exit 1; }
  return 0
}

add_block() { # INFO LINE TEXT CHAPTER IN_COMMENT
  local info=$1 kind="" path="" word rest
  read -r word rest <<<"$info"
  case "$rest" in
    file=*) kind=file path=${rest#file=} ;;
    excerpt=*) kind=excerpt path=${rest#excerpt=} ;;
    "")
      case "$word" in
        sh) kind=run; [ "$5" = 1 ] && kind=check ;;
        bash | shell | zsh)
          echo "FAIL: tutorial: $DOC:$2: \`\`\`$word block: write \`\`\`sh to run it, or \`\`\`console if it is only illustrative" >&2
          exit 1
          ;;
      esac
      ;;
    *)
      if [ "$word" = sh ]; then
        echo "FAIL: tutorial: $DOC:$2: \`\`\`$info: unknown attribute (want file=PATH or excerpt=PATH)" >&2
        exit 1
      fi
      ;;
  esac
  if [ -z "$kind" ]; then
    SKIPPED=$((SKIPPED + 1))
    return 0
  fi
  if [ "$kind" = run ] || [ "$kind" = check ]; then no_bare_negation "$2" "$3"; fi
  _T_KIND+=("$kind") _T_LINE+=("$2") _T_INFO+=("$info") _T_PATH+=("$path") _T_TEXT+=("$3") _T_CHAPTER+=("$4")
}

# no_bare_negation LINE TEXT: refuse a line of a block that negates a
# command with `!` and stops there. set -e ignores a negated command's
# status, so such a check could never fail: `! cmd || false` can.
no_bare_negation() {
  local l n=$1
  while IFS= read -r l; do
    n=$((n + 1))
    if [[ $l =~ ^[[:space:]]*!\  ]] && ! [[ $l =~ \|\|[[:space:]]*false[[:space:]]*$ ]]; then
      echo "FAIL: tutorial: $DOC:$n: \`${l#"${l%%[![:space:]]*}"}\`: set -e ignores a command negated with !, so this can never fail: end it with \`|| false\`" >&2
      exit 1
    fi
  done <<<"$2"
}

first_line() { local l; l=$(grep -m1 -v '^[[:space:]]*\(#.*\)\?$' <<<"$1" || true); echo "${l:0:90}"; }

# ------------------------------------------------------------------ the sandbox (inner)

# Runs as PID 1 of a new PID namespace, in a private mount namespace. fd 3
# goes to the outer script: one "ok I" line per passed block, then
# "fail I MESSAGE" or "clean".
inner() {
  local _T_verbose=$1 _T_i _T_out _T_t0 _T_kind
  parse_blocks # before /tmp is hidden: TUTORIAL_DOC may live there
  # The checkout may itself live under one of those dirs (CI clones
  # anywhere, /tmp included): carry it across the tmpfs mounts with a bind
  # mount parked on a private tmpfs, then put it back at the same path.
  mkdir -p /mnt
  mount -t tmpfs -o mode=0700 tutorial-repo /mnt
  mkdir /mnt/repo
  mount --bind "$REPO" /mnt/repo
  for d in "${SANDBOX_DIRS[@]}"; do mount -t tmpfs -o mode=0755 tutorial "$d"; done
  chmod 1777 /tmp
  if [ ! -d "$REPO/.git" ] && [ ! -f "$REPO/go.mod" ]; then
    mkdir -p "$REPO"
    mount --move /mnt/repo "$REPO"
  fi
  _T_MOUNTS=$(awk '{print $5}' /proc/self/mountinfo | sort)
  readonly _T_KIND _T_LINE _T_INFO _T_PATH _T_TEXT _T_CHAPTER # no block can clobber them
  # crictl from the cache, so that the tutorial's `command -v crictl ||
  # go install ...` never builds it here.
  if needs_crictl; then
    export PATH=$CRICTL_DIR:$PATH
    [ "$(command -v crictl)" = "$CRICTL_DIR/crictl" ] || { echo "FAIL: tutorial: crictl is not $CRICTL_DIR/crictl" >&2; exit 1; }
  fi
  cd "$REPO"
  _T_out=/tmp/.tutorial-block.out # the tutorial itself works in /tmp/cni-tutorial
  export TUTORIAL_LAST_OUTPUT=/tmp/.tutorial-last.out
  exec 5>&1 6>&2 # the runner's own output, whatever a block redirects
  _T_CUR=-1 _T_ERR_CMD="" _T_ERR_RC=0
  # shellcheck disable=SC2154 # _T_rc is assigned in the trap itself
  trap '_T_rc=$?; [ -n "$_T_ERR_CMD" ] || _T_on_err "$_T_rc" "$LINENO" "$BASH_COMMAND" "${FUNCNAME[*]}" "${BASH_LINENO[*]}"' ERR
  trap 'inner_exit $?' EXIT
  set +u -eEo pipefail # as a reader's shell, but stop at the first failure
  for ((_T_i = 0; _T_i < ${#_T_KIND[@]}; _T_i++)); do
    _T_CUR=$_T_i _T_ERR_CMD="" _T_ERR_LINE="" _T_ERR_FUNC="" _T_t0=$(ts)
    _T_kind=${_T_KIND[_T_i]}
    case $_T_kind in
      run | check)
        if [ "$_T_verbose" = 1 ]; then
          printf '\n\033[1m--- block %d (%s:%d)\033[0m\n%s' "$((_T_i + 1))" "$DOCNAME" "${_T_LINE[_T_i]}" "${_T_TEXT[_T_i]}" >&5
        fi
        # (one line: LINENO inside the eval counts from this line)
        _T_EVAL_LINE=$LINENO; { eval "${_T_TEXT[_T_i]}"; } </dev/null >"$_T_out" 2>&1
        if [ "$_T_verbose" = 1 ]; then echo "--- output:" >&5; cat "$_T_out" >&5; fi
        if [ "$_T_kind" = run ]; then cp "$_T_out" "$TUTORIAL_LAST_OUTPUT"; fi
        ;;
      file | excerpt) verify_text "$_T_i" ;;
    esac
    echo "ok $((_T_i + 1)) - $_T_kind, line ${_T_LINE[_T_i]}: $(first_line "${_T_TEXT[_T_i]}") ($(secs "$_T_t0"))" >&5
    echo "ok $_T_i" >&3
  done
  _T_CUR=-2 # after the last block: checks of the tutorial's own cleanup
  leftovers_check
  echo clean >&3
}

# _T_on_err RC LINENO COMMAND FUNCNAMES BASH_LINENOS: the ERR trap. Records
# the first failing command of a block and its line in the block: bash
# numbers an eval'd line from the line of the eval; when the failure is in a
# function the tutorial defined (crictl), the line is that of its call.
_T_on_err() {
  local -a fn ln
  local k
  read -r -a fn <<<"$4"
  read -r -a ln <<<"$5"
  _T_ERR_RC=$1 _T_ERR_CMD=$3 _T_ERR_LINE="" _T_ERR_FUNC=""
  case "${_T_KIND[_T_CUR]:-}" in run | check) ;; *) return 0 ;; esac
  if [ "${fn[0]}" = inner ]; then
    _T_ERR_LINE=$(($2 - _T_EVAL_LINE + 1))
    return 0
  fi
  for ((k = 1; k < ${#fn[@]}; k++)); do
    if [ "${fn[k]}" = inner ]; then
      _T_ERR_LINE=$((ln[k - 1] - _T_EVAL_LINE + 1)) _T_ERR_FUNC=${fn[0]}
      return 0
    fi
  done
}

# verify_text I: a file= block equals its file, an excerpt= block appears in it.
verify_text() {
  local i=$1 file=$REPO/${_T_PATH[$1]}
  [ -f "$file" ] || { _T_ERR_CMD="${_T_INFO[i]}: no such file ${_T_PATH[i]}"; return 1; }
  if [ "${_T_KIND[i]}" = file ]; then
    if [ "$(cat "$file")" != "${_T_TEXT[i]%$'\n'}" ]; then
      _T_ERR_CMD="the block differs from ${_T_PATH[i]}: $(diff <(printf '%s' "${_T_TEXT[i]}") "$file" | head -5 | tr '\n' ' ')"
      return 1
    fi
  else
    if ! F=$(cat "$file") T=${_T_TEXT[i]%$'\n'} awk 'BEGIN { exit index(ENVIRON["F"], ENVIRON["T"]) ? 0 : 1 }'; then
      _T_ERR_CMD="the block is not an excerpt of ${_T_PATH[i]} (was the file changed?)"
      return 1
    fi
  fi
}

# leftovers_check: after the last block, the tutorial's own clean-up steps
# must have removed everything it made.
leftovers_check() {
  local left="" p mounts_now
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    if [ "$p" = 1 ] || [ "$p" = "$BASHPID" ]; then continue; fi
    [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] || continue # exited, not yet reaped
    [ ! -e "/proc/$p" ] || left+=" [$p] $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
  done
  [ -z "$left" ] || { _T_ERR_CMD="processes left running:$left"; return 1; }
  left=$(ip netns list | tr '\n' ' ')
  [ -z "$left" ] || { _T_ERR_CMD="netns left: $left"; return 1; }
  # `ip netns add` bind-mounts /run/netns onto itself once: not a leftover.
  mounts_now=$(awk '{print $5}' /proc/self/mountinfo | sort)
  left=$(comm -13 <(echo "$_T_MOUNTS") <(echo "$mounts_now") | grep -vx /run/netns | tr '\n' ' ' || true)
  [ -z "$left" ] || { _T_ERR_CMD="mounts left: $left"; return 1; }
  [ ! -e /tmp/cni-tutorial ] || { _T_ERR_CMD="/tmp/cni-tutorial was not removed"; return 1; }
}

inner_exit() {
  local rc=$1 i=$_T_CUR where line text what
  set +eE
  trap - ERR
  if [ "$rc" -ne 0 ]; then
    if [ "$i" -ge 0 ]; then
      where="block $((i + 1)) ($DOCNAME:${_T_LINE[i]}, chapter \"${_T_CHAPTER[i]}\")"
      # Name the block's line that failed: for a pipeline bash names only
      # its last command, and in a function only the function's command.
      what="\`$(head -c 300 <<<"${_T_ERR_CMD:-?}")\`"
      line=${_T_ERR_LINE:-}
      if [[ $line =~ ^[0-9]+$ ]] && [ "$line" -ge 1 ] && [ "$line" -le "$(wc -l <<<"${_T_TEXT[i]}")" ]; then
        where+=", line $((_T_LINE[i] + line))"
        # the command's line and its continuation lines
        text=$(tail -n +"$line" <<<"${_T_TEXT[i]}" | awk '{ print } !/\\$/ { exit }' | sed 's/^[[:space:]]*//' | tr '\n' ' ' | head -c 400)
        text=${text% }
        if [ -n "${_T_ERR_FUNC:-}" ]; then
          what="\`$text\` (in function ${_T_ERR_FUNC}: $what)"
        else
          what="\`$text\`"
        fi
      fi
      {
        echo "FAIL: tutorial: $where: $what failed (status ${_T_ERR_RC:-$rc})"
        if [ -s /tmp/.tutorial-block.out ]; then
          echo "---- last lines of the block's output:"
          tail -n 30 /tmp/.tutorial-block.out | cut -c1-300
        fi
        if [ "${_T_KIND[i]}" = check ] && [ -s /tmp/.tutorial-last.out ]; then
          echo "---- last lines of the output it checks (the block before):"
          tail -n 30 /tmp/.tutorial-last.out | cut -c1-300
        fi
        echo "---- the block:"
        # shellcheck disable=SC2001 # every line, not one substitution
        sed 's/^/  | /' <<<"${_T_TEXT[i]}"
      } >&6
      echo "fail $i $where" >&3
    elif [ "$i" = -2 ]; then
      echo "FAIL: tutorial: after the last block: $_T_ERR_CMD" >&6
      echo "fail -2 leftovers: $_T_ERR_CMD" >&3
    else
      echo "FAIL: tutorial: set-up failed (status $rc)" >&6
      echo "fail -1 set-up" >&3
    fi
  fi
  sandbox_cleanup >&6 2>&1
  exit "$rc"
}

# sandbox_cleanup: end every process of this PID namespace but us (all of
# them were started by the tutorial: containerd, shims, containers...), by
# PID, then delete every netns in our private /run/netns.
sandbox_cleanup() {
  local p pids=() n
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = 1 ] || [ "$p" = "$BASHPID" ] || pids+=("$p")
  done
  if [ ${#pids[@]} -gt 0 ]; then
    echo "cleanup: stopping ${#pids[@]} process(es) the tutorial left: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null
    for _ in $(seq 50); do
      n=0
      for p in "${pids[@]}"; do [ ! -e "/proc/$p" ] || [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] || n=1; done
      [ $n = 1 ] || break
      sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null
  fi
  for n in $(ip netns list | awk '{print $1}'); do ip netns del "$n" 2>/dev/null; done
  return 0
}

# ------------------------------------------------------------------ outer

need_packages() {
  local p missing=() packages=("${PACKAGES[@]}")
  for p in "${PAGE_PACKAGES[@]}"; do
    if grep -qw -- "$p" "$DOC"; then packages+=("$p"); fi
  done
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  # Installing docker.io where systemd runs starts the system's Docker
  # engine on the real host (its bridge, its iptables rules): not ours to
  # do, unless a policy-rc.d denies the start (exit 101), as in containers.
  local rc=0
  if [ -x /usr/sbin/policy-rc.d ]; then /usr/sbin/policy-rc.d docker start >/dev/null 2>&1 || rc=$?; fi
  if [[ " ${missing[*]} " == *" docker.io "* ]] && [ -d /run/systemd/system ] && [ "$rc" != 101 ]; then
    echo "FAIL: tutorial: docker.io is missing; with systemd, installing it starts Docker on this host: install it yourself (apt-get install docker.io), then run again"
    return 1
  fi
  echo "tutorial: apt-get install ${missing[*]}"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# needs_crictl: whether the page uses crictl (docs/lab.md does not).
needs_crictl() { grep -q crictl "$DOC"; }

# need_crictl: crictl is not in go.mod; build it once into the cache that
# test/e2e uses too (its ~700 MB of module and build cache are dropped after).
need_crictl() {
  needs_crictl || return 0
  [ -x "$CRICTL_DIR/crictl" ] && return 0
  local c=$E2E_CACHE/crictl-build t
  t=$(ts)
  echo "tutorial: building crictl $CRICTL_VERSION into $CRICTL_DIR (once; a few minutes)"
  GOBIN=$CRICTL_DIR GOPATH=$c GOMODCACHE=$c/pkg/mod GOCACHE=$c/go-build GOFLAGS=-modcacherw CGO_ENABLED=0 \
    go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  rm -rf "$c"
  echo "tutorial: crictl built in $(secs "$t")"
}

# tutorial_netns: the netns names the tutorial can make: `ip netns add NAME`,
# `ratchetctl run --name NAME`, ratchet's parking netns for its store dirs.
tutorial_netns() {
  local d
  grep -o 'ip netns add [^ ;]*' "$DOC" | awk '{print $4}'
  grep -o -- '--name [a-z0-9.-]*' "$DOC" | awk '{print $2}'
  for d in $(grep -o '"store": *{"dir": *"[^"]*"' "$DOC" | grep -o '"/[^"]*"' | tr -d '"' | sort -u); do
    echo "ratchet-park-$(printf %s "$d" | b2sum -l 256 | cut -c1-8)"
  done
}

host_state() {
  ip -o link show | awk -F': ' '{print $2}' | sort | tr '\n' ' '
  echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward) ipv6_forwarding=$(cat /proc/sys/net/ipv6/conf/all/forwarding 2>/dev/null)"
  ip route show table main | sort
}

outer() {
  local verbose=$1 t0 made=() d passed=0 failed=0 status tpid line before_ns after_ns before_host after_host
  [ "$(id -u)" = 0 ] || { echo "FAIL: tutorial: must run as root (netns, mounts, containerd)"; echo "tutorial: 0 passed, 1 failed"; exit 1; }
  parse_blocks # fail early on a malformed document
  t0=$(ts)
  need_packages || { echo "FAIL: tutorial: apt-get install failed"; echo "tutorial: 0 passed, 1 failed"; exit 1; }
  need_crictl || { echo "FAIL: tutorial: could not build crictl"; echo "tutorial: 0 passed, 1 failed"; exit 1; }
  for d in "${SANDBOX_DIRS[@]}"; do
    [ -d "$d" ] || { mkdir -p "$d" && made+=("$d"); }
  done
  before_ns=$(ip netns list | awk '{print $1}' | sort)
  before_host=$(host_state)
  TALLY=$(mktemp /tmp/ratchet-tutorial-tally.XXXXXX)
  trap 'rm -f "$TALLY"' EXIT
  echo "tutorial: running ${#_T_KIND[@]} blocks of $DOCNAME ($SKIPPED illustrative blocks skipped) in a sandbox"
  # timeout runs the sandbox in its own process group and, on expiry (or
  # when we pass it our Ctrl-C / TERM), sends TERM to that group: the
  # sandbox's PID 1 then cleans up and reports. --kill-child: should unshare
  # itself die, PID 1 gets SIGKILL, and the kernel ends every process of the
  # sandbox with it.
  timeout -k 10 "${TUTORIAL_TIMEOUT:-600}" \
    unshare --mount --propagation private --pid --fork --mount-proc --kill-child \
    bash "$HERE/run.sh" --inner "$verbose" 3>"$TALLY" &
  tpid=$!
  INTERRUPTED=""
  trap 'INTERRUPTED=1; kill -TERM "$tpid" 2>/dev/null' INT TERM
  status=0
  wait "$tpid" || status=$?
  while kill -0 "$tpid" 2>/dev/null; do
    status=0
    wait "$tpid" || status=$?
  done
  trap - INT TERM
  while read -r line; do
    case $line in
      ok\ *) passed=$((passed + 1)) ;;
      fail\ *) failed=1 ;;
    esac
  done <"$TALLY"
  if [ "$status" -ne 0 ] && [ "$failed" = 0 ]; then
    failed=1
    if [ -n "$INTERRUPTED" ]; then
      echo "FAIL: tutorial: interrupted in block $((passed + 1)) ($DOCNAME:${_T_LINE[passed]:-?})"
    elif [ "$status" = 124 ] || [ "$status" = 137 ]; then
      echo "FAIL: tutorial: timed out after ${TUTORIAL_TIMEOUT:-600}s in block $((passed + 1)) ($DOCNAME:${_T_LINE[passed]:-?})"
    else
      echo "FAIL: tutorial: the sandbox ended with status $status during block $((passed + 1))"
    fi
  elif [ "$status" = 0 ] && ! grep -qx clean "$TALLY"; then
    failed=1
    echo "FAIL: tutorial: the sandbox did not report its final checks"
  fi
  rm -f "$TALLY"
  for d in "${made[@]}"; do rmdir "$d" 2>/dev/null || true; done

  # The real host: untouched. Only the tutorial's own netns names count
  # (other tests may come and go on this machine while it runs).
  after_ns=$(ip netns list | awk '{print $1}' | sort)
  line=$(comm -13 <(echo "$before_ns") <(echo "$after_ns") | grep -Fx -f <(tutorial_netns) | tr '\n' ' ' || true)
  if [ -n "$line" ]; then failed=1; echo "FAIL: tutorial: the tutorial's netns appeared on the host: $line"; fi
  after_host=$(host_state)
  if [ "$before_host" != "$after_host" ]; then
    failed=1
    echo "FAIL: tutorial: the host's netdevs, forwarding or routes changed: $(diff <(echo "$before_host") <(echo "$after_host") | grep '^[<>]' | tr '\n' ' ')"
  fi
  line=$(grep -c cni-tutorial /proc/self/mountinfo || true)
  if [ "$line" != 0 ]; then failed=1; echo "FAIL: tutorial: $line mounts of /tmp/cni-tutorial on the host"; fi
  echo "TIME tutorial: $(secs "$t0")"
  echo "tutorial: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}

# ------------------------------------------------------------------ main

case "${1:-}" in
  --inner) inner "${2:-0}" ;;
  --list)
    parse_blocks
    for ((i = 0; i < ${#_T_KIND[@]}; i++)); do
      printf '%3d  %-7s %s:%-4d %s\n' "$((i + 1))" "${_T_KIND[i]}" "$DOCNAME" "${_T_LINE[i]}" "$(first_line "${_T_TEXT[i]}")"
    done
    echo "($SKIPPED illustrative blocks not run)"
    ;;
  -v) outer 1 ;;
  "") outer 0 ;;
  *) echo "usage: $0 [-v | --list]" >&2; exit 2 ;;
esac
