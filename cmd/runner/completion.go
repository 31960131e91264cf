package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/runner-dev/runner/internal/config"
	"github.com/runner-dev/runner/internal/names"
)

// Shell completion: each script asks the hidden `runner __complete -- WORDS`
// what may follow, so commands, flags and argument kinds come from the
// command table and the commands' own flag sets. Agent names are read from
// the config file on the line; the engine is never contacted.

// Directives __complete prints instead of words: the shell completes file
// names itself (config files, or any file).
const (
	completeFiles   = ":files"
	completeDefault = ":default"
)

func cmdCompletion(_ context.Context, g *globals, args []string, stdout, stderr io.Writer) error {
	fs := g.newFlags("completion", stderr)
	pos, err := g.parseFlags(fs, "completion", args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		usageLine(stderr, "completion")
		return exitError{2}
	}
	script, ok := completionScripts[pos[0]]
	if !ok {
		fmt.Fprintf(stderr, "Error: no completion for shell %q; use bash, zsh or fish\n", pos[0])
		return exitError{2}
	}
	_, err = io.WriteString(stdout, script)
	return err
}

var completionScripts = map[string]string{
	"bash": `# runner completion for bash. Load it with
#   source <(runner completion bash)
# or save it as /etc/bash_completion.d/runner.
_runner() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local IFS=$'\n'
    local -a out
    out=($(runner __complete -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
    case ${out[0]} in
    :files)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -X '!*.hcl' -- "$cur") $(compgen -d -- "$cur"))
        ;;
    :default)
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -f -- "$cur"))
        ;;
    *)
        COMPREPLY=($(compgen -W "${out[*]}" -- "$cur"))
        ;;
    esac
}
complete -F _runner runner
`,
	"zsh": `#compdef runner
# runner completion for zsh. Load it with
#   source <(runner completion zsh)
# (after compinit), or save it as _runner in a directory of $fpath.
_runner() {
    local -a out
    out=("${(@f)$(runner __complete -- "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    case ${out[1]} in
    :files) _files -g '*.hcl' ;;
    :default) _files ;;
    *) compadd -a out ;;
    esac
}
if [ "$funcstack[1]" = "_runner" ]; then
    _runner "$@"
else
    compdef _runner runner
fi
`,
	"fish": `# runner completion for fish. Load it with
#   runner completion fish | source
# or save it as ~/.config/fish/completions/runner.fish.
function __runner_complete
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l cur (commandline -ct)
    set -l out (runner __complete -- $tokens "$cur" 2>/dev/null)
    switch "$out[1]"
        case :files
            __fish_complete_suffix .hcl
        case :default
            __fish_complete_path "$cur"
        case '*'
            printf '%s\n' $out
    end
end
complete -c runner -f -a '(__runner_complete)'
`,
}

// cmdComplete is `runner __complete -- WORD... CURRENT`: the words after
// "runner" up to the one being completed (possibly empty). It prints one
// candidate a line, or a directive.
func cmdComplete(ctx context.Context, _ *globals, args []string, stdout, _ io.Writer) error {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		args = []string{""}
	}
	for _, w := range complete(ctx, args[:len(args)-1], args[len(args)-1]) {
		fmt.Fprintln(stdout, w)
	}
	return nil
}

// globalValueFlags are the global flags that take a value.
var globalValueFlags = map[string]bool{"var": true, "var-file": true, "log-level": true}

func complete(ctx context.Context, prev []string, cur string) []string {
	vars := map[string]string{}
	// The global flags before the command.
	i := 0
	for ; i < len(prev) && strings.HasPrefix(prev[i], "-"); i++ {
		name, value, hasValue := strings.Cut(strings.TrimLeft(prev[i], "-"), "=")
		if globalValueFlags[name] && !hasValue && i+1 < len(prev) {
			i++
			value = prev[i]
		}
		if name == "var" {
			k, v, _ := strings.Cut(value, "=")
			vars[k] = v
		}
	}
	if i == len(prev) {
		if strings.HasPrefix(cur, "-") {
			return withPrefix([]string{"--help", "--version", "--log-level", "--log-json", "-var", "-var-file"}, cur)
		}
		return withPrefix(visibleCommands(), cur)
	}
	c, ok := lookup(prev[i])
	if !ok || c.hidden {
		return nil
	}
	fs := probeFlags(ctx, c)
	var positional []string
	rest := prev[i+1:]
	for j := 0; j < len(rest); j++ {
		w := rest[j]
		if w == "--" {
			return []string{completeDefault} // the argv of exec
		}
		if !strings.HasPrefix(w, "-") || w == "-" {
			positional = append(positional, w)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
		if takesValue(fs, name) && !hasValue {
			if j+1 == len(rest) {
				return []string{completeDefault} // cur is the flag's value
			}
			j++
			value = rest[j]
		}
		if name == "var" {
			k, v, _ := strings.Cut(value, "=")
			vars[k] = v
		}
	}
	// Which argument cur is: the table's args, in order; a last one
	// ending in "..." repeats.
	slots := strings.Fields(c.args)
	slot := ""
	if n := len(positional); n < len(slots) {
		slot = slots[n]
	} else if len(slots) > 0 && strings.HasSuffix(slots[len(slots)-1], "...") {
		slot = slots[len(slots)-1]
	}
	if strings.HasPrefix(cur, "-") {
		var flags []string
		if fs != nil {
			fs.VisitAll(func(f *flag.Flag) { flags = append(flags, flagWord(f.Name)) })
		}
		flags = append(flags, "--help")
		if slot == "--" {
			flags = append(flags, "--")
		}
		return withPrefix(flags, cur)
	}
	switch {
	case slot == "FILE" || slot == "[FILE...]":
		return []string{completeFiles}
	case slot == "AGENT" || slot == "[AGENT]":
		// The file is the positional argument in the FILE slot.
		file := ""
		for k, s := range slots {
			if s == "FILE" && k < len(positional) {
				file = positional[k]
			}
		}
		return withPrefix(agentNames(file, vars), cur)
	case slot == "[COMMAND]":
		return withPrefix(visibleCommands(), cur)
	case slot == "--":
		return []string{"--"}
	case strings.Contains(slot, "|") && slot == strings.ToLower(slot):
		return withPrefix(strings.Split(slot, "|"), cur)
	case slot != "" && slot == strings.ToLower(slot) && !strings.ContainsAny(slot, "[]|:"):
		return withPrefix([]string{slot}, cur) // a literal word: image build
	}
	return nil
}

// probeFlags returns command c's flag set without running it: parseFlags
// hands it over before looking at any argument.
func probeFlags(ctx context.Context, c command) *flag.FlagSet {
	g := &globals{vars: varFlags{}, probe: true}
	c.run(ctx, g, nil, io.Discard, io.Discard)
	return g.probed
}

func takesValue(fs *flag.FlagSet, name string) bool {
	if globalValueFlags[name] {
		return true
	}
	if fs == nil {
		return false
	}
	f := fs.Lookup(name)
	if f == nil {
		return false
	}
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return !ok || !b.IsBoolFlag()
}

// flagWord is how help spells a flag: -o, --lines, and Terraform's -var.
func flagWord(name string) string {
	if len(name) == 1 || name == "var" || name == "var-file" {
		return "-" + name
	}
	return "--" + name
}

// agentNames are the agents of the config at path. Only the file system
// is read. A file that does not load (a missing -var, a brief that is not
// there yet) still offers its agent blocks' labels.
func agentNames(path string, vars map[string]string) []string {
	cfg, diags := config.Load(path, vars)
	if diags.HasErrors() || cfg == nil {
		return agentLabels(path)
	}
	var out []string
	for _, a := range cfg.Agents {
		out = append(out, a.Name)
	}
	return out
}

// agentLabels are the labels of the file's agent blocks, from its syntax
// alone (count is not expanded).
func agentLabels(path string) []string {
	f, diags := hclparse.NewParser().ParseHCLFile(path)
	if diags.HasErrors() {
		return nil
	}
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var out []string
	for _, b := range body.Blocks {
		if b.Type == "agent" && len(b.Labels) == 1 && names.Valid(b.Labels[0]) {
			out = append(out, b.Labels[0])
		}
	}
	return out
}

func withPrefix(words []string, prefix string) []string {
	var out []string
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			out = append(out, w)
		}
	}
	return out
}
