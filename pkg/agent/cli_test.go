package agent

import (
	"slices"
	"testing"
)

func TestParseEndpoints(t *testing.T) {
	for in, want := range map[string][]string{
		"http://a:2379":                       {"http://a:2379"},
		"http://a:2379, http://b:2379,":       {"http://a:2379", "http://b:2379"},
		`["https://a:2379","https://b:2379"]`: {"https://a:2379", "https://b:2379"},
	} {
		got, err := parseEndpoints(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseEndpoints(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := parseEndpoints(`["a",`); err == nil {
		t.Error("a broken JSON array was accepted")
	}
}
