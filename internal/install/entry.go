package install

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/ratchet-cni/ratchet/internal/netconf"
)

// reserved are the keys of ratchet's entry that install itself sets; Extra
// may not override them.
var reserved = map[string]string{
	"type":         "install sets it to " + PluginType,
	"capabilities": "install declares " + netconf.PodAnnotationsCapability,
	// The runtime injects the list's name and cniVersion into every plugin
	// of a conflist, so a value here would be overridden and only mislead.
	"name":       "the runtime sets it from the conflist",
	"cniVersion": "the runtime sets it from the conflist",
}

// entry is ratchet's plugin entry as compact JSON, in a fixed key order:
// type, capabilities, then the Extra keys sorted, so that the same Options
// always produce the same bytes (idempotence depends on it).
type entry struct {
	compact []byte
}

// newEntry builds the entry from Extra, refusing reserved keys and values
// that do not encode as JSON.
func newEntry(extra map[string]any) (*entry, error) {
	var b bytes.Buffer
	b.WriteString(`{"type":"` + PluginType + `","capabilities":{"` + netconf.PodAnnotationsCapability + `":true}`)
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("install: Extra: empty key")
		}
		if why, ok := reserved[k]; ok {
			return nil, fmt.Errorf("install: Extra[%q]: not configurable: %s", k, why)
		}
		v, err := json.Marshal(extra[k])
		if err != nil {
			return nil, fmt.Errorf("install: Extra[%q]: %w", k, err)
		}
		kb, _ := json.Marshal(k) // a string always encodes
		b.WriteByte(',')
		b.Write(kb)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return &entry{compact: b.Bytes()}, nil
}

// validate runs the entry through the plugin's own config validation, so a
// bad Extra (a wrong store type, a relative log file...) fails here, once,
// instead of failing every pod's ADD on the node. chained adds a
// prevResult, as the runtime will when ratchet follows another plugin,
// which turns on the chained-mode rules (every static link needs a name).
func (e *entry) validate(chained bool) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(e.compact, &m); err != nil {
		return fmt.Errorf("install: ratchet entry: %w", err)
	}
	m["cniVersion"] = json.RawMessage(`"1.0.0"`)
	m["name"] = json.RawMessage(`"ratchet-install-check"`)
	if chained {
		m["prevResult"] = json.RawMessage(`{"cniVersion":"1.0.0"}`)
	}
	stdin, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("install: ratchet entry: %w", err)
	}
	if _, err := netconf.Load(stdin, "eth0"); err != nil {
		return fmt.Errorf("install: Extra: %w", err)
	}
	return nil
}
