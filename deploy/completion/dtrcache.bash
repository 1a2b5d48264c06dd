# bash completion for dtrcache. Install:
#   cp deploy/completion/dtrcache.bash /etc/bash_completion.d/dtrcache     (or: source it from ~/.bashrc)
# Static lists: controller/src/cli/completion.test.ts fails when a verb or flag is missing here.
_dtrcache() {
  local cur prev verb i
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  local verbs="run reconcile plan apply diff get describe history delete rollback edit validate status help"
  verb=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in -*) ;; *) verb="${COMP_WORDS[i]}"; break ;; esac
  done
  case "$prev" in
    -f|--file|--status-token-file|--token-file)
      COMPREPLY=($(compgen -f -- "$cur")); return 0 ;;
    --log-level) COMPREPLY=($(compgen -W "debug info warn error" -- "$cur")); return 0 ;;
    --log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return 0 ;;
    -o|--output)
      if [ "$verb" = get ]; then COMPREPLY=($(compgen -W "table wide yaml json" -- "$cur"));
      else COMPREPLY=($(compgen -W "table json yaml" -- "$cur")); fi
      return 0 ;;
    --kind) COMPREPLY=($(compgen -W "ContentCache DTR" -- "$cur")); return 0 ;;
    --lease-duration|--listen|--id|--timeout|--url|--events|--to-revision|--interval|--dtr-check-interval) return 0 ;;
  esac
  local flags=""
  case "$verb" in
    run) flags="-f --file --lease-duration --listen --status-token-file --dtr-check-interval --allow-empty --id --log-level --log-format" ;;
    reconcile) flags="--once -f --file --timeout --allow-empty --id --log-level --log-format" ;;
    plan) flags="-f --file --allow-empty --id" ;;
    apply) flags="-f --file --id --wait --timeout --url --token-file" ;;
    diff) flags="-f --file --id" ;;
    get) flags="-o --output --id" ;;
    describe) flags="--kind --id --url --token-file --events" ;;
    history|delete|edit) flags="--kind --id" ;;
    rollback) flags="--kind --to-revision --id" ;;
    validate) flags="-f --file" ;;
    status) flags="--url --token-file -o --output -w --watch --interval" ;;
    help) COMPREPLY=($(compgen -W "$verbs" -- "$cur")); return 0 ;;
    "") COMPREPLY=($(compgen -W "$verbs --help --version" -- "$cur")); return 0 ;;
  esac
  COMPREPLY=($(compgen -W "$flags --help" -- "$cur"))
}
complete -o default -F _dtrcache dtrcache
