// Package shellwords splits a CLI's configured command line into words the
// way sh does for simple commands, so that a backend can derive its own
// command line (its flags, the binary's path) from the one-shot command a
// CLI is configured with.
package shellwords

import (
	"errors"
	"regexp"
	"strings"
)

// IsAssignment reports whether word is a shell variable assignment
// (NAME=value), as written before a command.
func IsAssignment(word string) bool { return assignment.MatchString(word) }

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// SplitCommand splits a command line (Split) into the NAME=value
// assignments written before the command (env) and the command's own words
// (words: the program, then its arguments; empty when there is none).
func SplitCommand(s string) (env, words []string, err error) {
	words, err = Split(s)
	if err != nil {
		return nil, nil, err
	}
	for len(words) > 0 && IsAssignment(words[0]) {
		env, words = append(env, words[0]), words[1:]
	}
	return env, words, nil
}

// Split splits a command line into words the way sh does for simple
// commands: blanks separate words; single quotes keep everything; double
// quotes keep everything except \" \\ \$ \` and line continuations; a
// backslash outside quotes keeps the next character. Expansions and
// operators are not interpreted (they make the command not-codex anyway,
// or are dropped with the other words).
func Split(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' {
						continue
					}
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("backslash at the end")
			}
			i++
			if s[i] == '\n' {
				continue // a line continuation
			}
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
