# bash completion for tcpunch and tcpunch-rendezvous; installed by `cmake --install` into
# share/bash-completion/completions (loaded on demand), or source it from ~/.bashrc.

# The peer names in known_peers (the first word of each line that is not a comment).
_tcpunch_peers()
{
    local f=${TCPUNCH_HOME:-$HOME/.config/tcpunch}/known_peers
    [ -r "$f" ] && awk '$1 !~ /^#/ && NF >= 2 { print $1 }' "$f" 2>/dev/null | sort -u
}

_tcpunch()
{
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
    fi
    local commands="listen connect chat send receive direct nat-check id config help"
    local opts="--server --id --port --timeout --direct-timeout --no-relay --relay-only
        --peer-key --plain --secret-file --no-retry --no-report --forward --allow --allow-anyone --local
        --max-sessions --dir --force --from --from-anyone --dotfiles --max-bytes --max-files
        --birthday-k --birthday-m --resume-timeout --resume-buffer --relay-grace --direct-first
        --verbose --quiet --json --help --version"

    case $prev in
    --dir)
        COMPREPLY=($(compgen -d -- "$cur"))
        return
        ;;
    --secret-file)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    --from)
        COMPREPLY=($(compgen -W "$(_tcpunch_peers)" -- "$cur"))
        return
        ;;
    -s | --server | -i | --id | -p | --port | -t | --timeout | --direct-timeout | --peer-key | \
        --forward | --allow | --local | --max-sessions | --max-bytes | --max-files | --birthday-k | \
        --birthday-m | --resume-timeout | --resume-buffer | --relay-grace)
        return
        ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi

    # the command and how many arguments follow it, options (and their values) left out
    local i cmd= nargs=0
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        -s | --server | -i | --id | -p | --port | -t | --timeout | --direct-timeout | \
            --peer-key | --secret-file | --forward | --allow | --local | --max-sessions | --dir | \
            --from | --max-bytes | --max-files | --birthday-k | --birthday-m | --resume-timeout | \
            --resume-buffer | --relay-grace)
            ((i++))
            ;;
        -*) ;;
        *)
            if [ -z "$cmd" ]; then
                cmd=${words[i]}
            else
                ((nargs++))
            fi
            ;;
        esac
    done
    case $cmd in
    '')
        COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        ;;
    connect | chat)
        [ "$nargs" -eq 0 ] && COMPREPLY=($(compgen -W "$(_tcpunch_peers)" -- "$cur"))
        ;;
    send)
        if [ "$nargs" -eq 0 ]; then
            COMPREPLY=($(compgen -W "$(_tcpunch_peers)" -- "$cur"))
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        ;;
    esac
}
complete -F _tcpunch tcpunch

_tcpunch_rendezvous()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    case $prev in
    --secret-file | --authorized | --id-db | --redis-password-file | --cluster-secret-file)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    esac
    COMPREPLY=($(compgen -W "--listen --probe-listen --metrics-listen --keepalive --hello-timeout --max-peers --drain
        --no-relay --relay-max --relay-bytes --relay-seconds --relay-rate --relay-wait
        --relay-idle --relay-per-peer --relay-per-ip --relay-offers-per-peer
        --birthday-k-max --birthday-m-max --no-resume --code-ttl --code-max --code-rate --no-code
        --secret-file --authorized --id-db --max-ids --ids-per-key --new-ids-per-hour --id-expire
        --max-per-ip --rate-per-ip --connect-rate
        --redis --redis-password-file --cluster-secret-file --redis-prefix --public-address --instance-id --cluster-ttl
        --verbose --quiet --help --version" -- "$cur"))
}
complete -F _tcpunch_rendezvous tcpunch-rendezvous
