// Package printable makes names and messages from the store or the kernel
// safe to print on an operator's terminal.
package printable

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Name returns a name from the store or the kernel as it can be printed
// safely: as is when every rune is printable, quoted (strconv.Quote)
// otherwise. Names reach the store from pod annotations and CNI arguments,
// so a raw escape sequence or newline in one could rewrite the operator's
// terminal or forge rows of the table. A name that itself starts with a
// quote is quoted too, so that a quoted name cannot be forged.
func Name(s string) string {
	if !utf8.ValidString(s) || strings.HasPrefix(s, `"`) || strings.IndexFunc(s, notPrintable) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// notPrintable is true for the runes a terminal or tabwriter may act on:
// control and format characters and every space but the plain one.
func notPrintable(r rune) bool { return !unicode.IsPrint(r) }

// Message escapes the non-printable runes of a whole message (an
// error can carry a name from the store or the kernel) as Go would in a
// quoted string, leaving the rest of it as written.
func Message(s string) string {
	if utf8.ValidString(s) && strings.IndexFunc(s, notPrintable) < 0 {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if (r == utf8.RuneError && size == 1) || notPrintable(r) {
			q := strconv.Quote(s[:size])
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}
