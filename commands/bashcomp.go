package commands

// bashWordsShim stands in for the bash-completion package's
// _get_comp_words_by_ref, which cobra's bash script calls when
// _init_completion is missing: without the package, completion would fail
// with "command not found". Words are the line up to the cursor split on
// blanks only, so key=value stays one word, as -n =: asks.
const bashWordsShim = `# Without the bash-completion package: a minimal _get_comp_words_by_ref.
if ! declare -F _get_comp_words_by_ref >/dev/null 2>&1; then
_get_comp_words_by_ref()
{
    local line=${COMP_LINE:0:COMP_POINT} __w
    local -a __ws
    read -ra __ws <<<"$line"
    [[ -z $line || $line == *[[:space:]] ]] && __ws+=("")
    while (($#)); do
        case $1 in
        -n) shift ;;
        cur) cur=${__ws[${#__ws[@]}-1]} ;;
        prev) prev=${__ws[${#__ws[@]}-2]} ;;
        words) words=("${__ws[@]}") ;;
        cword) cword=$((${#__ws[@]}-1)) ;;
        esac
        shift
    done
}
fi

`
