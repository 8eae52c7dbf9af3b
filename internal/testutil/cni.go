package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildCommands builds this module's commands named in cmds (directories
// under cmd/: "ratchet", "ratchetctl", "ratchetd") statically into a new
// temporary directory, as `make build` does; remove deletes it. For a
// TestMain whose tests exec the binaries as a runtime or a user would.
func BuildCommands(cmds ...string) (dir string, remove func(), err error) {
	dir, err = os.MkdirTemp("", "ratchet-test-bin-")
	if err != nil {
		return "", nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	args := []string{"build", "-o", dir + "/"}
	for _, c := range cmds {
		args = append(args, "github.com/ratchet-cni/ratchet/cmd/"+c)
	}
	build := exec.Command("go", args...)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		remove()
		return "", nil, fmt.Errorf("go build %s: %w\n%s", strings.Join(cmds, " "), err, out)
	}
	return dir, remove, nil
}

// PodCNI runs the ratchet plugin in binDir for pod lab/POD as containerd's
// CRI runs it: command cmd (ADD, DEL, CHECK), the pod's namespace at
// netnsPath, a local store in storeDir, and annotation as the pod's
// ratchet.cni.dev/links annotation (in runtimeConfig). It returns the
// plugin's stdout (on a failure, the CNI error it printed) and an error
// carrying its stderr when it failed.
func PodCNI(binDir, cmd, storeDir, pod, netnsPath, annotation string) (string, error) {
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"lab","type":"ratchet","store":{"dir":%q},"maxLinksPerPod":1000,
	  "capabilities":{"io.kubernetes.cri.pod-annotations":true},
	  "runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"ratchet.cni.dev/links":%q}}}`, storeDir, annotation)
	c := exec.Command(filepath.Join(binDir, "ratchet"))
	c.Env = []string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=sb-" + pod, "CNI_NETNS=" + netnsPath, "CNI_IFNAME=eth0",
		"CNI_PATH=" + binDir, "CNI_ARGS=K8S_POD_NAMESPACE=lab;K8S_POD_NAME=" + pod}
	c.Stdin = strings.NewReader(conf)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s%s", cmd, pod, err, out, stderr.Bytes())
	}
	return string(out), nil
}
