package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// configError is a bad flag or config value; wsd exits 2 with it.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// applyFile sets every flag named by a top-level key of the TOML file at
// path, unless the flag was given on the command line (flags win). Keys are
// the flag names with '_' for '-': max_message = --max-message. Tables
// (like [namespaces.chat]) are returned for the caller to interpret.
func applyFile(fs *flag.FlagSet, path string) (tables map[string]any, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &configError{fmt.Sprintf("config %s: %v", path, err)}
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, &configError{fmt.Sprintf("config %s: %s", path, parseErrorText(perr, string(data)))}
		}
		return nil, &configError{fmt.Sprintf("config %s: %v", path, err)}
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tables = map[string]any{}
	for _, key := range keys {
		v := raw[key]
		if _, isTable := v.(map[string]any); isTable {
			tables[key] = v
			continue
		}
		name := strings.ReplaceAll(key, "_", "-")
		f := fs.Lookup(name)
		if f == nil || name == "config" {
			return nil, &configError{fmt.Sprintf("config %s: unknown key %q", path, key)}
		}
		if explicit[name] {
			continue
		}
		if err := fs.Set(name, tomlString(v)); err != nil {
			return nil, &configError{fmt.Sprintf("config %s: key %q: %v", path, key, err)}
		}
	}
	return tables, nil
}

// parseErrorText shows the offending line when the parser's position is on
// one. The library indexes its lines by Position.Line without a check, and
// reports line 0 for some errors (an unterminated string before CRLF), so an
// out-of-range position falls back to the one-line message.
func parseErrorText(perr toml.ParseError, input string) string {
	if l := perr.Position.Line; l < 1 || l > strings.Count(input, "\n")+1 || perr.Position.Col < 1 {
		return perr.Error()
	}
	return perr.ErrorWithPosition()
}

// tomlString renders a TOML value the way the flag would be typed.
func tomlString(v any) string {
	if list, ok := v.([]any); ok {
		parts := make([]string, len(list))
		for i, x := range list {
			parts[i] = fmt.Sprint(x)
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v)
}
