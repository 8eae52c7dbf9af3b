package printable

import "testing"

func TestNameQuotesNonPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"lab/r1":            "lab/r1",
		"ns-ü/pod":          "ns-ü/pod",
		"a b":               "a b",
		"e\x1b[2J":          `"e\x1b[2J"`,
		"e1\nup lab/x:y":    `"e1\nup lab/x:y"`,
		"tab\there":         `"tab\there"`,
		"\u202eevil":        `"\u202eevil"`,
		"bad\xffutf8":       `"bad\xffutf8"`,
		`"looks-quoted"`:    `"\"looks-quoted\""`,
		"del\x7f":           `"del\x7f"`,
		"nbsp\u00a0x":       `"nbsp\u00a0x"`,
		"zero-width\u200bx": `"zero-width\u200bx"`,
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestMessageEscapesControls(t *testing.T) {
	for in, want := range map[string]string{
		`open "x": no such file`:      `open "x": no such file`,
		"link e\x1b]0;pwned\a1: gone": `link e\x1b]0;pwned\a1: gone`,
		"two\nlines\xff":              `two\nlines\xff`,
	} {
		if got := Message(in); got != want {
			t.Errorf("Message(%q) = %s, want %s", in, got, want)
		}
	}
}
