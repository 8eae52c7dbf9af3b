package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// span is one element of a conflist's "plugins" array: where its bytes are
// in the file and its type.
type span struct {
	start, end int
	typ        string
}

// conflist is a parsed conflist that remembers where each plugin sits in
// the original bytes. Install edits a cluster's conflist by splicing
// ratchet's entry in after the last plugin instead of decoding and
// re-encoding the file: re-encoding would reorder keys, rewrite numbers
// and escapes and drop formatting, and the file belongs to the cluster's
// network plugin, which may compare it or rewrite it by its own rules.
type conflist struct {
	data    []byte
	plugins []span
}

// parseConflist walks the top level of a conflist. It refuses what the
// runtime would refuse or what install cannot chain onto: invalid JSON, a
// missing or empty "plugins" array, a plugin that is not an object with a
// string type.
func parseConflist(data []byte) (*conflist, error) {
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("not valid JSON (byte %d): %w", syn.Offset, err)
		}
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, _ := dec.Token(); tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	c := &conflist{data: data}
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		if key != "plugins" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, err
			}
			continue
		}
		if seen {
			// Go's decoder would take the last one, others may take the
			// first: the file is ambiguous, so leave it alone.
			return nil, errors.New(`"plugins" appears twice`)
		}
		seen = true
		if err := c.readPlugins(dec); err != nil {
			return nil, err
		}
	}
	if !seen {
		// Without "plugins", libcni loads the plugins from the directory
		// <conf-dir>/<name>/: an inline ratchet entry would run before
		// them instead of after, so install does not guess.
		return nil, errors.New(`no "plugins" array (plugins loaded from a directory are not supported)`)
	}
	if len(c.plugins) == 0 {
		return nil, errors.New(`"plugins" is empty`)
	}
	return c, nil
}

// readPlugins reads the "plugins" array, recording each element's span.
func (c *conflist) readPlugins(dec *json.Decoder) error {
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return errors.New(`"plugins" is not an array`)
	}
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		// The decoder stops right after the value and RawMessage holds it
		// without surrounding blanks, so it ends at InputOffset.
		end := int(dec.InputOffset())
		start := end - len(raw)
		if start < 0 || !bytes.Equal(c.data[start:end], raw) {
			return fmt.Errorf("plugins[%d]: cannot locate it in the file", i)
		}
		if raw[0] != '{' {
			return fmt.Errorf("plugins[%d] is not an object", i)
		}
		var p struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("plugins[%d]: %w", i, err)
		}
		if p.Type == "" {
			return fmt.Errorf("plugins[%d] has no type", i)
		}
		c.plugins = append(c.plugins, span{start: start, end: end, typ: p.Type})
	}
	_, err := dec.Token() // the closing ']'
	return err
}

// indexOf returns the index of the first plugin of type typ, or -1.
func (c *conflist) indexOf(typ string) int {
	for i, p := range c.plugins {
		if p.typ == typ {
			return i
		}
	}
	return -1
}

// raw returns plugin i's bytes as they are in the file.
func (c *conflist) raw(i int) []byte {
	return c.data[c.plugins[i].start:c.plugins[i].end]
}

// appendPlugin returns the file with entry inserted after the last plugin,
// formatted like that plugin: on its own line with the same indentation
// when the list is one plugin per line, inline when the file is compact.
// Every other byte of the file is kept.
func (c *conflist) appendPlugin(entry []byte) []byte {
	last := c.plugins[len(c.plugins)-1]
	nl := "\n"
	if bytes.Contains(c.data, []byte("\r\n")) {
		nl = "\r\n"
	}
	lineStart := bytes.LastIndexByte(c.data[:last.start], '\n') + 1
	indent := string(c.data[lineStart:last.start])

	var ins bytes.Buffer
	ins.WriteByte(',')
	if lineStart == 0 || strings.Trim(indent, " \t") != "" {
		// The last plugin shares its line with other text: compact style.
		ins.Write(entry)
	} else if unit := indentUnit(c.raw(len(c.plugins)-1), indent); unit == "" {
		// One plugin per line, each on a single line.
		ins.WriteString(nl + indent)
		ins.Write(entry)
	} else {
		var pretty bytes.Buffer
		_ = json.Indent(&pretty, entry, indent, unit) // entry is valid JSON: we built it
		ins.WriteString(nl + indent)
		ins.WriteString(strings.ReplaceAll(pretty.String(), "\n", nl))
	}

	out := make([]byte, 0, len(c.data)+ins.Len())
	out = append(out, c.data[:last.end]...)
	out = append(out, ins.Bytes()...)
	return append(out, c.data[last.end:]...)
}

// indentUnit guesses one level of indentation from a multi-line plugin: the
// blanks its second line has beyond the plugin's own indentation. It
// returns "" when the plugin is written on one line.
func indentUnit(plugin []byte, indent string) string {
	i := bytes.IndexByte(plugin, '\n')
	if i < 0 {
		return ""
	}
	line := string(plugin[i+1:])
	ws := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
	if strings.HasPrefix(ws, indent) && len(ws) > len(indent) {
		return ws[len(indent):]
	}
	return "  "
}

// generatedKey marks the conflists install writes itself (wrappers and the
// standalone file), so that a later run can tell them from the cluster's
// files: it regenerates or removes its own and never deletes anyone
// else's. Runtimes ignore unknown top-level keys.
const generatedKey = "ratchet.cni.dev/generated"

// generated is the value under generatedKey.
type generated struct {
	By string `json:"by"`
	// Wraps names the single-plugin config a wrapper copies.
	Wraps string `json:"wraps,omitempty"`
}

// isGenerated reports whether data is a conflist install wrote.
func isGenerated(data []byte) bool {
	var top struct {
		Gen *generated `json:"ratchet.cni.dev/generated"`
	}
	return json.Unmarshal(data, &top) == nil && top.Gen != nil
}

// renderConflist writes a conflist install owns: the given cniVersion and
// name (raw JSON, copied verbatim from the source when there is one), the
// marker, then the plugins, indented two spaces.
func renderConflist(cniVersion, name json.RawMessage, gen generated, plugins ...[]byte) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if cniVersion != nil {
		b.WriteString(`"cniVersion":`)
		b.Write(cniVersion)
		b.WriteByte(',')
	}
	b.WriteString(`"name":`)
	b.Write(name)
	marker, err := json.Marshal(gen)
	if err != nil {
		return nil, err
	}
	b.WriteString(`,"` + generatedKey + `":`)
	b.Write(marker)
	b.WriteString(`,"plugins":[`)
	for i, p := range plugins {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := json.Compact(&b, p); err != nil {
			return nil, err
		}
	}
	b.WriteString("]}")
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}
