package linkparam

import "testing"

func TestChecks(t *testing.T) {
	for _, c := range []struct {
		name  string
		check func(int) error
		good  []int
		bad   []int
	}{
		{"MTU", CheckMTU, []int{68, 1500, 65535}, []int{0, 67, 65536}},
		{"VNI", CheckVNI, []int{1, 16777215}, []int{0, -1, 16777216}},
		{"VLAN id", CheckVLANID, []int{1, 4094}, []int{0, 4095}},
		{"port", CheckPort, []int{1, 65535}, []int{0, 65536}},
		{"address count", CheckAddrCount, []int{0, 1, MaxAddrsPerLink}, []int{MaxAddrsPerLink + 1, 15000}},
		{"route count", CheckRouteCount, []int{0, 1, MaxRoutesPerLink}, []int{MaxRoutesPerLink + 1, 15000}},
	} {
		for _, v := range c.good {
			if err := c.check(v); err != nil {
				t.Errorf("%s %d: %v", c.name, v, err)
			}
		}
		for _, v := range c.bad {
			if err := c.check(v); err == nil {
				t.Errorf("%s %d accepted", c.name, v)
			}
		}
	}
	for _, m := range MacvlanModes {
		if err := CheckMacvlanMode(m); err != nil {
			t.Errorf("mode %q: %v", m, err)
		}
	}
	if err := CheckMacvlanMode("turbo"); err == nil {
		t.Error("mode turbo accepted")
	}
	if err := CheckMacvlanMode(DefaultMacvlanMode); err != nil {
		t.Errorf("default mode: %v", err)
	}
}
